"""Keys from static sources (pure): PEM public keys and certificates, and HMAC secrets, as JWKs."""

from __future__ import annotations

import base64
import dataclasses
import re
from collections.abc import Sequence
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from jwks_operator.keys.keyset import (
    CURVES_BY_KTY,
    EC_ALG_CURVE,
    MAX_KEYS,
    MIN_HMAC_BYTES,
    InvalidKey,
    KeySet,
    Rejection,
    build_key_set,
    one_of,
    require_keys,
    short_error,
    thumbprint,
)
from jwks_operator.keys.members import MAX_KID_CHARS, quoted
from jwks_operator.model.errors import KeySetError

_PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----\s*(.*?)\s*-----END \1-----", re.DOTALL)


MISSING_Y = "missing or invalid member 'y' for kty EC"
QUOTE_Y = (
    f'{MISSING_Y}: in YAML write "y": quoted, since kubectl (YAML 1.1) reads a bare y: as the boolean '
    "true and the key loses its y coordinate"
)


def keys_from_jwks(keys: Sequence[Any], *, algorithms: Sequence[str] = ()) -> KeySet:
    """spec.static.jwks's keys, validated; an EC key without y (its bare `y:` read as `true` by kubectl)
    is rejected with a reason that says to quote it. KeySetError when no key is usable."""
    key_set = build_key_set(keys, algorithms=algorithms)
    if any(r.reason == MISSING_Y for r in key_set.rejected):
        rejected = tuple(
            Rejection(r.index, r.kid, QUOTE_Y) if r.reason == MISSING_Y else r for r in key_set.rejected
        )
        key_set = dataclasses.replace(key_set, rejected=rejected)
    return require_keys(key_set, "spec.static.jwks")


def keys_from_pem(pem: str, *, kid: str | None = None, algorithms: Sequence[str] = ()) -> KeySet:
    """Convert PEM public keys/certificates to JWKs (kid: the given one for a single block, else the RFC 7638
    thumbprint); blocks past MAX_KEYS are not converted."""
    blocks = _PEM_BLOCK.findall(pem)
    if not blocks:
        raise KeySetError("spec.static.pem: no PEM block found")
    rejected: list[Rejection] = []
    converted: list[tuple[int, dict[str, Any]]] = []
    for index, (label, body) in enumerate(blocks):
        if index >= MAX_KEYS:
            rejected.append(Rejection(index, None, f"more than {MAX_KEYS} keys in one set"))
            continue
        try:
            converted.append((index, _pem_block_to_jwk(label, body, len(blocks), kid)))
        except InvalidKey as exc:
            rejected.append(Rejection(index, None, str(exc)))
    key_set = build_key_set([jwk for _, jwk in converted], algorithms=algorithms)
    rejected += [Rejection(converted[r.index][0], r.kid, r.reason) for r in key_set.rejected]
    rejected.sort(key=lambda r: r.index)
    return require_keys(KeySet(key_set.keys, tuple(rejected)), "spec.static.pem")


def _pem_block_to_jwk(label: str, body: str, count: int, kid: str | None) -> dict[str, Any]:
    if "PRIVATE" in label:
        raise InvalidKey(f"{label} is private key material; give the public key or certificate instead")
    text = f"-----BEGIN {label}-----\n{body}\n-----END {label}-----\n".encode()
    x5c: list[str] | None = None
    try:
        if label == "CERTIFICATE":
            cert = x509.load_pem_x509_certificate(text)
            public_key: Any = cert.public_key()
            x5c = [base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()]
        elif label in ("PUBLIC KEY", "RSA PUBLIC KEY"):
            public_key = serialization.load_pem_public_key(text)
        else:
            raise InvalidKey(f"unsupported PEM block {quoted(label)}")
    except ValueError as exc:
        if isinstance(exc, InvalidKey):
            raise
        raise InvalidKey(f"invalid {label}: {short_error(exc)}") from None
    jwk = _public_key_to_jwk(public_key)
    jwk["use"] = "sig"
    if x5c is not None:
        jwk["x5c"] = x5c
    jwk["kid"] = kid if kid is not None and count == 1 else thumbprint(jwk)
    return jwk


def _public_key_to_jwk(key: Any) -> dict[str, Any]:
    if isinstance(key, rsa.RSAPublicKey):
        return dict(RSAAlgorithm.to_jwk(key, as_dict=True))
    if isinstance(key, ec.EllipticCurvePublicKey):
        jwk = dict(ECAlgorithm.to_jwk(key, as_dict=True))
        alg = next((a for a, crv in EC_ALG_CURVE.items() if crv == jwk.get("crv")), None)
        if alg is None:
            raise InvalidKey(f"unsupported EC curve {key.curve.name}; expected {one_of(CURVES_BY_KTY['EC'])}")
        jwk["alg"] = alg
        return jwk
    if isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        jwk = dict(OKPAlgorithm.to_jwk(key, as_dict=True))
        jwk["alg"] = "EdDSA"
        return jwk
    raise InvalidKey(f"unsupported public key type {type(key).__name__}")


def key_from_hmac(
    secret: bytes, *, kid: str | None = None, algorithms: Sequence[str] = (), exportable: bool = False
) -> KeySet:
    """An `oct` JWK from raw HMAC secret bytes (validated for length; never echoed); `exportable`: its
    Secret's owner lets it be written outside Secrets."""
    hs = [a for a in algorithms if a in MIN_HMAC_BYTES]
    if algorithms and not hs:
        raise KeySetError("spec.algorithms allows no HS* algorithm for an HMAC secret")
    needed = max((MIN_HMAC_BYTES[a] for a in hs), default=MIN_HMAC_BYTES["HS256"])
    if kid is not None and (len(kid) > MAX_KID_CHARS or not kid.isprintable()):
        raise KeySetError(f"the HMAC key's kid must be at most {MAX_KID_CHARS} printable characters")
    if len(secret) < needed:
        raise KeySetError(
            f"the HMAC secret is {len(secret)} bytes; at least {needed} are required"
            + (f" for {', '.join(hs)}" if hs else "")
        )
    jwk: dict[str, Any] = {"kty": "oct", "k": base64.urlsafe_b64encode(secret).rstrip(b"=").decode()}
    if len(hs) == 1:
        jwk["alg"] = hs[0]
    if kid is not None:
        jwk["kid"] = kid
    jwk["use"] = "sig"
    return KeySet((jwk,), exportable=exportable)
