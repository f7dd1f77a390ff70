"""Key validation (pure): the algorithm table, JWKs checked one by one, JWK Set documents to key sets.

Bounds (one tenant's JWK Set must not exhaust the operator that serves every namespace): a document is
parsed as strict JSON (no NaN or Infinity), within fetch's 1 MiB cap; more than MAX_DOCUMENT_ENTRIES
entries refuse it, and only the first MAX_KEYS are examined; a key publishes only the members checked
in keys.members (sizes bounded there) and keys.checks; a set rendered to more than MAX_RENDERED_BYTES is
refused (jwks.json is stored twice in one ConfigMap, whose limit is 1 MiB), so the last good keys stay.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import jwt

from jwks_operator.keys.checks import MAX_RSA_BITS, MIN_RSA_BITS, check_certificates, check_public_key
from jwks_operator.keys.members import (
    MAX_KID_CHARS,
    InvalidKey,
    b64url_decode,
    check_key_members,
    check_metadata,
    printable,
    quoted,
)
from jwks_operator.model.errors import KeySetError

__all__ = ["MAX_RSA_BITS", "MIN_RSA_BITS", "InvalidKey", "printable"]  # re-exported

MAX_KEYS = 100
MAX_DOCUMENT_ENTRIES = MAX_KEYS * 10  # a JWK Set with more entries is refused unread
MAX_RENDERED_BYTES = 256 * 1024  # jwks.json, as rendered; stored twice (jwks.json and jwks) per ConfigMap
MAX_REASON_CHARS = 300

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
# The metadata members published, each once checked by members.check_metadata (x5u never is).
METADATA_MEMBERS = ("kid", "alg", "use", "key_ops", "x5c", "x5t", "x5t#S256")


@dataclass(frozen=True, slots=True)
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


@dataclass(frozen=True, slots=True)
class Rejection:
    """A dropped key: its position in the source, its kid if any, and why (both made printable and cut
    short here, whoever builds it: they reach status, events and text logs)."""

    index: int
    kid: str | None
    reason: str

    def __post_init__(self) -> None:
        if self.kid is not None:
            object.__setattr__(self, "kid", printable(self.kid, MAX_KID_CHARS))
        object.__setattr__(self, "reason", printable(self.reason, MAX_REASON_CHARS))

    def as_status(self) -> dict[str, Any]:
        """The status.rejectedKeys entry."""
        entry: dict[str, Any] = {"index": self.index, "reason": self.reason}
        if self.kid is not None:
            entry["kid"] = self.kid
        return entry


@dataclass(frozen=True)
class KeySet:
    """Validated public (or, for HMAC, secret) JWKs plus what was dropped; `exportable`: for an HMAC
    secret, its Secret's owner lets it be written outside Secrets (publish.allow.HMAC_EXPORT_ANNOTATION).
    It says nothing about what the keys are, so it takes no part in comparing key sets."""

    keys: tuple[dict[str, Any], ...]
    rejected: tuple[Rejection, ...] = ()
    exportable: bool = field(default=False, compare=False)

    def document(self) -> dict[str, Any]:
        """The JWK Set document `{"keys": [...]}`."""
        return {"keys": [dict(k) for k in self.keys]}

    @functools.cached_property
    def rendered(self) -> str:
        """The document as published: strict, compact JSON with sorted members, rendered once per KeySet
        (the JwtSecrets of one URL with the same spec.algorithms share its KeySet, so thousands of them
        share one string). KeySetError when it is not strict JSON or over MAX_RENDERED_BYTES."""
        try:
            text = json.dumps(self.document(), separators=(",", ":"), sort_keys=True, allow_nan=False) + "\n"
        except ValueError as exc:
            raise KeySetError(f"the keys cannot be published as strict JSON: {short_error(exc)}") from None
        if len(text) > MAX_RENDERED_BYTES:  # ASCII: json.dumps escapes the rest
            raise KeySetError(
                f"the {len(self.keys)} key(s) would publish a jwks.json of {len(text)} bytes, over the "
                f"{MAX_RENDERED_BYTES}-byte cap (the set is stored twice in a ConfigMap of at most 1 MiB)"
            )
        return text

    def summary(self) -> list[dict[str, str]]:
        """Public identification of each key for status.keys (no key material)."""
        return [
            {m: printable(str(k[m]), MAX_KID_CHARS) for m in ("kid", "kty", "alg", "use") if m in k}
            for k in self.keys
        ]


def thumbprint(jwk: Mapping[str, Any]) -> str:
    """The RFC 7638 JWK thumbprint (SHA-256, base64url)."""
    members = {m: jwk[m] for m in ("kty", *PUBLIC_MEMBERS[str(jwk["kty"])])}
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(hashlib.sha256(canonical).digest()).rstrip(b"=").decode()


def validate_jwk(
    jwk: Any, *, allow_symmetric: bool = False, algorithms: Sequence[str] = ()
) -> dict[str, Any]:
    """Check one JWK and return its public form (for `oct`, with its secret `k`): kty, its key members and
    the checked metadata members, nothing else; raise InvalidKey with the reason."""
    if not isinstance(jwk, Mapping):
        raise InvalidKey("a JWK must be a JSON object")
    kty = jwk.get("kty")
    if not isinstance(kty, str) or kty not in PUBLIC_MEMBERS:
        raise InvalidKey(f"unsupported kty {quoted(kty)}; expected RSA, EC or OKP")
    if kty == "oct" and not allow_symmetric:
        raise InvalidKey("symmetric (oct) keys are only accepted from a Secret reference")
    private = [m for m in PRIVATE_MEMBERS if m in jwk]
    if kty != "oct" and private:
        raise InvalidKey(
            f"contains private key members ({', '.join(private)}); the key is exposed and is not published"
        )
    metadata, certificates = check_metadata(jwk)
    check_key_members(jwk, kty, PUBLIC_MEMBERS[kty])
    public = {"kty": kty, **{m: jwk[m] for m in PUBLIC_MEMBERS[kty]}}
    _check_curve(kty, public)
    alg = metadata.get("alg")
    _check_alg(kty, public, alg)
    if algorithms and not key_algorithms({**public, **metadata}) & set(algorithms):
        raise InvalidKey(f"alg {alg or 'for kty ' + kty} is not in spec.algorithms")
    _check_material(kty, public, alg, certificates, metadata)
    return {**metadata, **public}


def _check_curve(kty: str, jwk: Mapping[str, Any]) -> None:
    curves = CURVES_BY_KTY.get(kty)
    if curves is not None and jwk.get("crv") not in curves:
        raise InvalidKey(f"unsupported {kty} curve {quoted(jwk.get('crv'))}; expected {one_of(curves)}")


def _check_alg(kty: str, jwk: Mapping[str, Any], alg: str | None) -> None:
    if alg is None:
        return
    spec = ALGORITHM_TABLE.get(alg)
    if spec is None or spec.kty != kty:
        raise InvalidKey(f"alg {quoted(alg)} does not match kty {kty}")
    if spec.curves and jwk.get("crv") not in spec.curves:
        raise InvalidKey(f"alg {alg} requires crv {one_of(spec.curves)}, got {quoted(jwk.get('crv'))}")


def _check_material(
    kty: str,
    jwk: Mapping[str, Any],
    alg: str | None,
    certificates: Sequence[bytes],
    metadata: Mapping[str, Any],
) -> None:
    """Load the key with cryptography to prove it is well-formed and strong enough (keys.checks), and that
    x5c certifies it; an HMAC secret: long enough for its alg, HS256 when it names none."""
    if kty == "oct":
        if certificates:
            raise InvalidKey("x5c does not apply to a symmetric (oct) key")
        needed = MIN_HMAC_BYTES[alg or "HS256"]
        if len(b64url_decode(str(jwk["k"]), "k")) < needed:
            raise InvalidKey(f"HMAC secret is shorter than {needed} bytes required for {alg or 'HS256'}")
        return
    if kty == "RSA" and len(jwk["n"]) > MAX_RSA_BITS // 6 + 2:  # before the big integer is parsed
        raise InvalidKey(f"RSA key is over {MAX_RSA_BITS} bits; at most {MAX_RSA_BITS} are accepted")
    try:
        key = jwt.PyJWK(dict(jwk), algorithm="EdDSA" if kty == "OKP" else alg).key  # Ed448 needs it named
    except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError) as exc:
        raise InvalidKey(f"invalid {kty} key material: {short_error(exc)}") from None
    check_public_key(key)
    check_certificates(certificates, key, metadata)


def short_error(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 120 else text[:117] + "..."


def one_of(names: Sequence[str]) -> str:
    """`a, b or c`."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def build_key_set(
    candidates: Iterable[Any], *, allow_symmetric: bool = False, algorithms: Sequence[str] = ()
) -> KeySet:
    """Validate candidate JWKs; drop invalid ones, those past MAX_KEYS (not examined), repeats of an earlier
    key, and every key of a kid that names different key material. A public key without a kid gets its
    RFC 7638 thumbprint as kid, so that every output names it alike. KeySetError when the keys kept would
    render over MAX_RENDERED_BYTES."""
    accepted: list[tuple[int, dict[str, Any]]] = []
    rejected: list[Rejection] = []
    for index, candidate in enumerate(candidates):
        kid = candidate.get("kid") if isinstance(candidate, Mapping) else None
        kid = kid if isinstance(kid, str) else None
        if index >= MAX_KEYS:
            rejected.append(Rejection(index, kid, f"more than {MAX_KEYS} keys in one set"))
            continue
        try:
            key = validate_jwk(candidate, allow_symmetric=allow_symmetric, algorithms=algorithms)
        except InvalidKey as exc:
            rejected.append(Rejection(index, kid, str(exc)))
            continue
        if "kid" not in key and key["kty"] != "oct":  # one kid in every output (an HMAC secret's hash: never)
            key["kid"] = thumbprint(key)
        accepted.append((index, key))
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
    key_set = KeySet(tuple(keys), tuple(rejected))
    _ = key_set.rendered  # refused here, before anything is published (and rendered once, cached)
    return key_set


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
    """Parse a JWK Set served at a URL (asymmetric keys only): strict JSON, at most MAX_DOCUMENT_ENTRIES
    entries (the body's size is capped by fetch)."""
    try:
        doc = json.loads(body, parse_constant=_not_json)
    except RecursionError:
        raise KeySetError("JWK Set is nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise KeySetError(f"JWK Set is not valid JSON: {short_error(exc)}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
        raise KeySetError('JWK Set must be a JSON object with a "keys" array')
    if len(doc["keys"]) > MAX_DOCUMENT_ENTRIES:
        raise KeySetError(
            f'JWK Set has {len(doc["keys"])} entries in "keys"; more than {MAX_DOCUMENT_ENTRIES} refuse it '
            f"(at most {MAX_KEYS} keys are published)"
        )
    return require_keys(build_key_set(doc["keys"], algorithms=algorithms), "the JWK Set")


def _not_json(constant: str) -> Any:
    """json.loads accepts NaN, Infinity and -Infinity, which JSON (RFC 8259) does not: Go's and Node's
    parsers refuse a whole document holding one, so a gateway would load no key at all."""
    raise ValueError(f"{constant} is not JSON (RFC 8259)")
