"""Key material in the forms gateways that do not read JWKs want (pure): PEM, one algorithm, HMAC text."""

from __future__ import annotations

import base64
import binascii
import functools
from collections.abc import Collection, Mapping
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization

from jwks_operator.keys.keyset import ALGORITHMS, PUBLIC_MEMBERS, key_algorithms

ASYMMETRIC = ("RSA", "EC", "OKP")


def public_pem(jwk: Mapping[str, Any]) -> str:
    """The SubjectPublicKeyInfo PEM ("-----BEGIN PUBLIC KEY-----") of an RSA, EC or OKP public JWK;
    ValueError for any other key (an `oct` secret has none) or unreadable material."""
    kty = jwk.get("kty")
    if kty not in ASYMMETRIC:
        raise ValueError(f"a {kty} key has no public key PEM")
    names = PUBLIC_MEMBERS[str(kty)]
    values = [jwk.get(m) for m in names]
    if not all(isinstance(v, str) and v for v in values):
        raise ValueError(f"the {kty} key lacks {', '.join(names)}")
    return _pem(str(kty), tuple(zip(names, map(str, values), strict=True)))


@functools.lru_cache(maxsize=512)
def _pem(kty: str, members: tuple[tuple[str, str], ...]) -> str:
    """PyJWT reads the key (its alg inferred from kty and crv, but for Ed448); cached: every plan renders
    every key."""
    try:
        key = jwt.PyJWK({"kty": kty, **dict(members)}, "EdDSA" if kty == "OKP" else None).key
        pem: bytes = key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError, AttributeError) as exc:
        raise ValueError(f"unreadable {kty} key: {type(exc).__name__}") from None
    return pem.decode()


def algorithm_for(jwk: Mapping[str, Any], allowed: Collection[str], supported: Collection[str]) -> str | None:
    """The one algorithm a gateway that pins one per key should verify it with: the first (in the
    operator's table order: RS256 before PS256) the key can verify, the gateway supports and the spec
    allows (`allowed` empty: any); None when there is none."""
    usable = key_algorithms(jwk)
    return next(
        (a for a in ALGORITHMS if a in usable and a in supported and (not allowed or a in allowed)), None
    )


def hmac_text(jwk: Mapping[str, Any]) -> str | None:
    """An `oct` key's secret as text, for gateways that keep it as a string and use its UTF-8 bytes;
    None when the secret is not valid UTF-8 (it would not survive as a string) or unreadable."""
    k = jwk.get("k")
    if jwk.get("kty") != "oct" or not isinstance(k, str):
        return None
    try:
        return base64.urlsafe_b64decode(k + "=" * (-len(k) % 4)).decode("utf-8")
    except (binascii.Error, ValueError):
        return None
