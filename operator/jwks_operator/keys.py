"""Key validation (pure): the algorithm table, JWKs checked one by one, JWK Set documents to key sets."""

from __future__ import annotations

import base64
import functools
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from .errors import KeySetError

MIN_RSA_BITS = 2048
MAX_KEYS = 100

PUBLIC_MEMBERS: Mapping[str, tuple[str, ...]] = {
    "RSA": ("n", "e"),
    "EC": ("crv", "x", "y"),
    "OKP": ("crv", "x"),
    "oct": ("k",),
}
# The private members of an asymmetric JWK (RFC 7518 sections 6.2.2 and 6.3.2; `oth`, a list, holds the
# further primes of a multi-prime RSA key): a key with any of them is exposed and is never published.
PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth")
# What must never reach a ConfigMap: the private members and the secret of an HMAC (`oct`) key.
SECRET_MEMBERS = (*PRIVATE_MEMBERS, *PUBLIC_MEMBERS["oct"])
METADATA_MEMBERS = ("kid", "alg", "use", "key_ops", "x5c", "x5t", "x5t#S256")


@dataclass(frozen=True)
class Algorithm:
    """What a JWS algorithm (RFC 7518 section 3) asks of a key."""

    kty: str
    hash_bits: int | None  # its SHA-2 digest; None for EdDSA, whose curve fixes the hash
    curves: tuple[str, ...] = ()  # EC and OKP: the curves it signs with


# Every algorithm the operator accepts (the CRD's spec.algorithms enum, in its order); `none` never is.
# The other algorithm tables are derived from this one.
ALGORITHM_TABLE: Mapping[str, Algorithm] = {
    "RS256": Algorithm("RSA", 256),
    "RS384": Algorithm("RSA", 384),
    "RS512": Algorithm("RSA", 512),
    "PS256": Algorithm("RSA", 256),
    "PS384": Algorithm("RSA", 384),
    "PS512": Algorithm("RSA", 512),
    "ES256": Algorithm("EC", 256, ("P-256",)),
    "ES384": Algorithm("EC", 384, ("P-384",)),
    "ES512": Algorithm("EC", 512, ("P-521",)),
    "EdDSA": Algorithm("OKP", None, ("Ed25519", "Ed448")),
    "HS256": Algorithm("oct", 256),
    "HS384": Algorithm("oct", 384),
    "HS512": Algorithm("oct", 512),
}
ALGORITHMS = tuple(ALGORITHM_TABLE)
KTY_BY_ALG: Mapping[str, str] = {alg: spec.kty for alg, spec in ALGORITHM_TABLE.items()}
ALGS_BY_KTY: Mapping[str, frozenset[str]] = {
    kty: frozenset(alg for alg, spec in ALGORITHM_TABLE.items() if spec.kty == kty) for kty in PUBLIC_MEMBERS
}
HMAC_ALGS = ALGS_BY_KTY["oct"]
# RFC 7518 section 3.2: an HMAC key at least as long as the hash output.
MIN_HMAC_BYTES: Mapping[str, int] = {
    alg: spec.hash_bits // 8 for alg, spec in ALGORITHM_TABLE.items() if spec.kty == "oct" and spec.hash_bits
}
EC_ALG_CURVE: Mapping[str, str] = {
    alg: spec.curves[0] for alg, spec in ALGORITHM_TABLE.items() if spec.kty == "EC"
}
CURVES_BY_KTY: Mapping[str, tuple[str, ...]] = {
    kty: tuple(dict.fromkeys(c for spec in ALGORITHM_TABLE.values() if spec.kty == kty for c in spec.curves))
    for kty in ("EC", "OKP")
}


def key_algorithms(jwk: Mapping[str, Any]) -> frozenset[str]:
    """The algorithms a JWK can verify: those of its kty (and EC/OKP curve), narrowed to its alg if set."""
    alg = jwk.get("alg")
    return frozenset(
        name
        for name, spec in ALGORITHM_TABLE.items()
        if spec.kty == jwk.get("kty")
        and (not spec.curves or jwk.get("crv") in spec.curves)
        and alg in (None, name)
    )


class InvalidKey(ValueError):
    """One key is unusable; the message is the reason (never contains key material)."""


@dataclass(frozen=True)
class Rejection:
    """A dropped key: its position in the source, its kid if any, and why."""

    index: int
    kid: str | None
    reason: str

    def as_status(self) -> dict[str, Any]:
        """The status.rejectedKeys entry."""
        entry: dict[str, Any] = {"index": self.index, "reason": self.reason}
        if self.kid is not None:
            entry["kid"] = self.kid
        return entry


@dataclass(frozen=True)
class KeySet:
    """Validated public (or, for HMAC, secret) JWKs plus what was dropped."""

    keys: tuple[dict[str, Any], ...]
    rejected: tuple[Rejection, ...] = ()

    def document(self) -> dict[str, Any]:
        """The JWK Set document `{"keys": [...]}`."""
        return {"keys": [dict(k) for k in self.keys]}

    @functools.cached_property
    def rendered(self) -> str:
        """The document as published (stable formatting), rendered once per KeySet: the JwtSecrets of one
        URL (with the same spec.algorithms) share its KeySet, so thousands of them share one string."""
        return json.dumps(self.document(), indent=2, sort_keys=True) + "\n"

    def summary(self) -> list[dict[str, str]]:
        """Public identification of each key for status.keys (no key material)."""
        return [{m: str(k[m]) for m in ("kid", "kty", "alg", "use") if m in k} for k in self.keys]


def thumbprint(jwk: Mapping[str, Any]) -> str:
    """The RFC 7638 JWK thumbprint (SHA-256, base64url)."""
    members = {m: jwk[m] for m in ("kty", *PUBLIC_MEMBERS[str(jwk["kty"])])}
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(hashlib.sha256(canonical).digest()).rstrip(b"=").decode()


def validate_jwk(
    jwk: Any, *, allow_symmetric: bool = False, algorithms: Sequence[str] = ()
) -> dict[str, Any]:
    """Check one JWK and return its public form (for `oct`, with its secret `k`); raise InvalidKey with the
    reason."""
    if not isinstance(jwk, Mapping):
        raise InvalidKey("a JWK must be a JSON object")
    kty = jwk.get("kty")
    if not isinstance(kty, str) or kty not in PUBLIC_MEMBERS:
        raise InvalidKey(f"unsupported kty {kty!r}; expected RSA, EC or OKP")
    if kty == "oct" and not allow_symmetric:
        raise InvalidKey("symmetric (oct) keys are only accepted from a Secret reference")
    private = [m for m in PRIVATE_MEMBERS if m in jwk]
    if kty != "oct" and private:
        raise InvalidKey(
            f"contains private key members ({', '.join(private)}); the key is exposed and is not published"
        )
    for member in ("kid", "alg", "use"):
        if member in jwk and not isinstance(jwk[member], str):
            raise InvalidKey(f"{member} must be a string")
    use = jwk.get("use")
    if use is not None and use != "sig":
        raise InvalidKey(f"use {use!r} is not a signature key")
    key_ops = jwk.get("key_ops")
    if key_ops is not None and (not isinstance(key_ops, list) or "verify" not in key_ops):
        raise InvalidKey("key_ops does not allow verify")
    for member in PUBLIC_MEMBERS[kty]:
        if not isinstance(jwk.get(member), str) or not jwk[member]:
            raise InvalidKey(f"missing or invalid member {member!r} for kty {kty}")
    _check_curve(kty, jwk)
    alg = jwk.get("alg")
    _check_alg(kty, jwk, alg)
    if algorithms and not key_algorithms(jwk) & set(algorithms):
        raise InvalidKey(f"alg {alg or 'for kty ' + kty} is not in spec.algorithms")
    _check_material(kty, jwk)
    public = {m: jwk[m] for m in (*METADATA_MEMBERS, "kty", *PUBLIC_MEMBERS[kty]) if m in jwk}
    x5c = public.get("x5c")
    if x5c is not None and not (isinstance(x5c, list) and all(isinstance(c, str) for c in x5c)):
        del public["x5c"]
    return public


def _check_curve(kty: str, jwk: Mapping[str, Any]) -> None:
    curves = CURVES_BY_KTY.get(kty)
    if curves is not None and jwk.get("crv") not in curves:
        raise InvalidKey(f"unsupported {kty} curve {jwk.get('crv')!r}; expected {one_of(curves)}")


def _check_alg(kty: str, jwk: Mapping[str, Any], alg: str | None) -> None:
    if alg is None:
        return
    spec = ALGORITHM_TABLE.get(alg)
    if spec is None or spec.kty != kty:
        raise InvalidKey(f"alg {alg!r} does not match kty {kty}")
    if spec.curves and jwk.get("crv") not in spec.curves:
        raise InvalidKey(f"alg {alg} requires crv {one_of(spec.curves)}, got {jwk.get('crv')!r}")


def _check_material(kty: str, jwk: Mapping[str, Any]) -> None:
    """Load the key with cryptography to prove it is well-formed and strong enough (an HMAC secret: long
    enough for its alg, HS256 when it names none)."""
    if kty == "oct":
        secret = _b64url_decode(str(jwk["k"]), "k")
        alg = str(jwk.get("alg") or "HS256")
        if len(secret) < MIN_HMAC_BYTES[alg]:
            raise InvalidKey(f"HMAC secret is shorter than {MIN_HMAC_BYTES[alg]} bytes required for {alg}")
        return
    try:
        key = jwt.PyJWK(dict(jwk)).key
    except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError) as exc:
        raise InvalidKey(f"invalid {kty} key material: {short_error(exc)}") from None
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < MIN_RSA_BITS:
        raise InvalidKey(f"RSA key is {key.key_size} bits; at least {MIN_RSA_BITS} are required")


def _b64url_decode(value: str, member: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (ValueError, TypeError):
        raise InvalidKey(f"member {member!r} is not base64url") from None


def short_error(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 120 else text[:117] + "..."


def one_of(names: Sequence[str]) -> str:
    """`a, b or c`."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def build_key_set(
    candidates: Iterable[Any], *, allow_symmetric: bool = False, algorithms: Sequence[str] = ()
) -> KeySet:
    """Validate candidate JWKs; drop invalid ones, those past MAX_KEYS, repeats of an earlier key, and every
    key of a kid that names different key material."""
    accepted: list[tuple[int, dict[str, Any]]] = []
    rejected: list[Rejection] = []
    for index, candidate in enumerate(candidates):
        kid = candidate.get("kid") if isinstance(candidate, Mapping) else None
        kid = kid if isinstance(kid, str) else None
        if index >= MAX_KEYS:
            rejected.append(Rejection(index, kid, f"more than {MAX_KEYS} keys in one set"))
            continue
        try:
            accepted.append(
                (index, validate_jwk(candidate, allow_symmetric=allow_symmetric, algorithms=algorithms))
            )
        except InvalidKey as exc:
            rejected.append(Rejection(index, kid, str(exc)))
    keys: list[dict[str, Any]] = []
    by_kid: dict[str, str] = {}
    clashing = _clashing_kids(accepted)
    for index, key in accepted:
        kid = key.get("kid")
        if kid in clashing:
            rejected.append(Rejection(index, kid, "duplicate kid with different key material"))
        elif kid is not None and kid in by_kid:
            rejected.append(Rejection(index, kid, "duplicate of an earlier key"))
        else:
            if kid is not None:
                by_kid[kid] = thumbprint(key)
            keys.append(key)
    rejected.sort(key=lambda r: r.index)
    return KeySet(tuple(keys), tuple(rejected))


def _clashing_kids(accepted: Sequence[tuple[int, Mapping[str, Any]]]) -> set[str]:
    prints: dict[str, set[str]] = {}
    for _, key in accepted:
        if "kid" in key:
            prints.setdefault(key["kid"], set()).add(thumbprint(key))
    return {kid for kid, tps in prints.items() if len(tps) > 1}


def require_keys(key_set: KeySet, where: str) -> KeySet:
    """Raise KeySetError when no key survived validation."""
    if key_set.keys:
        return key_set
    reasons = "; ".join(f"key {r.index}: {r.reason}" for r in key_set.rejected[:3])
    raise KeySetError(f"{where} has no usable key" + (f" ({reasons})" if reasons else ""))


def parse_jwks_document(body: bytes, *, algorithms: Sequence[str] = ()) -> KeySet:
    """Parse a JWK Set served at a URL (asymmetric keys only)."""
    try:
        doc = json.loads(body)
    except RecursionError:
        raise KeySetError("JWK Set is nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise KeySetError(f"JWK Set is not valid JSON: {short_error(exc)}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
        raise KeySetError('JWK Set must be a JSON object with a "keys" array')
    return require_keys(build_key_set(doc["keys"], algorithms=algorithms), "the JWK Set")
