"""Verify JWTs against what jwks-operator publishes (no Kubernetes: published data or a mounted folder).

The rules gateways apply: a token is valid if any one configured key (of the token's `kid`, if it
names one, and fitting its algorithm, and passing the operator's key checks: verify.data) verifies its
signature; `exp`, `nbf` and `iat`, when present,
are finite numbers and, within a leeway, `exp` is not past and `nbf` and `iat` are not in the future;
`aud`, when present, is a string or a list of strings and, when audiences are set, matches one of
them; `iss` likewise (a string or a list of strings) for the issuers; the algorithm is in the
published allow-list, never `none`, and never HS* for keys that came from a URL. A token whose header
has a `crit` member (RFC 7515 section 4.1.11: no extension is understood here) or a `kid` that is not
a string is refused.

The published data is read strictly (verify.data): a key set without its policy.json is refused
unless `require_policy=False` says that is intended. `profile` (verify.profiles, `--as`) applies a
gateway's rules instead of these.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from jwt.utils import base64url_decode

from jwks_operator.keys.keyset import HMAC_ALGS, KTY_BY_ALG, key_algorithms
from jwks_operator.verify.data import (
    KeySource,
    MissingPolicyError,
    Policy,
    PublishedDataError,
    json_type,
    sources_from_data,
)
from jwks_operator.verify.profiles import SEED, Profile

__all__ = [
    "DirectoryVerifier",
    "KeySource",
    "MissingPolicyError",
    "Policy",
    "PublishedDataError",
    "Result",
    "Verifier",
    "sources_from_data",
    "strip_bearer",
    "verify_with",
]


@dataclass(frozen=True, slots=True)
class Result:
    """A verdict: the claims when valid, else the reason."""

    valid: bool
    reason: str = ""
    claims: Mapping[str, Any] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return self.valid


def strip_bearer(token: str) -> str:
    """Accept `Bearer <jwt>` and `Authorization: Bearer <jwt>` forms."""
    token = token.strip()
    if token.lower().startswith("authorization:"):
        token = token.split(":", 1)[1].strip()
    if token.lower().startswith("bearer "):
        token = token[7:].strip()
    return token


def _matches(claim: str | list[str], accepted: Sequence[str]) -> bool:
    return any(value in accepted for value in ([claim] if isinstance(claim, str) else claim))


def _header_problem(header: Mapping[str, Any], profile: Profile = SEED) -> str:
    """Why a header is refused before any key is tried ("" if it is not)."""
    if "kid" in header and not isinstance(header["kid"], str):
        return f"kid header must be a string, not {json_type(header['kid'])}"
    if (
        "crit" in header and profile.refuse_crit
    ):  # RFC 7515 section 4.1.11: extensions we do not understand (we understand none)
        crit = header["crit"]
        if not isinstance(crit, list) or not crit or not all(isinstance(name, str) for name in crit):
            return "crit header must be a list of extension names"
        return f"crit header: extension {crit[0]!r} is not understood (RFC 7515 section 4.1.11)"
    return ""


def _decoded_header(token: str) -> Mapping[str, Any]:
    try:
        header = json.loads(base64url_decode(token.split(".", 1)[0]))
    except (ValueError, RecursionError):
        return {}
    return header if isinstance(header, dict) else {}


def _read_header(token: str, profile: Profile) -> Mapping[str, Any] | str:
    """The token's header, or the reason the token is refused before any key is tried."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.DecodeError as exc:
        return f"malformed token: {exc}"
    except jwt.InvalidTokenError as exc:  # decoded, but PyJWT (2.10+) refuses its kid or crit itself
        decoded = _decoded_header(token)
        if problem := _header_problem(decoded, profile):
            return problem
        return decoded if "crit" in decoded else f"malformed token: {exc}"  # crit: ignored by the profile
    return _header_problem(header, profile) or header


def _claims_despite_crit(token: str, key: Any, alg: str) -> dict[str, Any]:
    """The claims of a token whose `crit` header the profile ignores (PyJWT's decode refuses one it does
    not understand): the signature checked with the algorithm itself."""
    signing_input, _, signature = token.rpartition(".")
    algorithm = jwt.get_algorithm_by_name(alg)
    try:
        valid = algorithm.verify(signing_input.encode(), key, base64url_decode(signature))
        claims = json.loads(base64url_decode(signing_input.partition(".")[2]))
    except (ValueError, TypeError) as exc:
        raise jwt.DecodeError(str(exc)) from None
    if not valid:
        raise jwt.InvalidSignatureError("Signature verification failed")
    if not isinstance(claims, dict):
        raise jwt.DecodeError("Invalid payload string: must be a json object")
    return claims


def verify_with(
    source: KeySource, token: str, *, leeway: float, now: float | None, profile: Profile = SEED
) -> Result:
    """Verify against one key source (as `profile`'s gateway would); the reason names the first rule that
    failed."""
    header = _read_header(token, profile)
    if isinstance(header, str):
        return Result(False, header)
    alg = header.get("alg")
    policy = source.policy
    if not isinstance(alg, str) or alg == "none" or alg not in KTY_BY_ALG:
        return Result(False, f"algorithm {alg!r} is not allowed")
    if policy.algorithms and alg not in policy.algorithms:
        return Result(False, f"algorithm {alg} is not in the allow-list {list(policy.algorithms)}")
    if policy.from_url and alg in HMAC_ALGS:
        return Result(False, f"algorithm {alg} is never accepted for keys from a URL")
    kid = header.get("kid")
    named = [(i, k) for i, k in enumerate(source.keys) if kid is None or k.get("kid") == kid]
    candidates = [(i, usable) for i, k in named if (usable := profile.key(k)) is not None]
    if named and not candidates and kid is not None:
        return Result(False, f"key {kid!r} is not one {profile.name} can verify with")
    if not candidates:
        return Result(False, f"no key with kid {kid!r}")
    candidates = [(i, k) for i, k in candidates if alg in key_algorithms(k)]
    if not candidates:
        return Result(False, f"no key for algorithm {alg}" + (f" with kid {kid!r}" if kid else ""))
    last = "signature verification failed"
    for index, jwk in candidates:
        problem = source.problems[index]  # the operator's key checks (verify.data)
        if problem is not None:
            last = f"key {jwk.get('kid')!r} is unusable: {problem}"
            continue
        try:
            key = jwt.PyJWK(dict(jwk), algorithm=alg).key
        except (jwt.PyJWTError, ValueError, TypeError) as exc:  # e.g. an `n` that is not base64url
            last = f"key {jwk.get('kid')!r} is unusable: {exc}"
            continue
        try:
            if "crit" in header:  # only here when the profile ignores it
                claims = _claims_despite_crit(token, key, alg)
            else:
                claims = jwt.decode(token, key, algorithms=[alg], options=_SIGNATURE_ONLY)
        except jwt.InvalidSignatureError:
            continue
        except jwt.InvalidTokenError as exc:
            last = f"invalid token: {exc}"
            continue
        return _check_claims(claims, policy, leeway, time.time() if now is None else now, profile)
    return Result(False, last)


_SIGNATURE_ONLY: Any = {
    "verify_aud": False,
    "verify_iss": False,
    "verify_exp": False,
    "verify_nbf": False,
    "verify_iat": False,
}


def _time_problem(value: Any) -> str:
    """Why a NumericDate claim is unusable ("" if it is not): NaN compares false with any time, so a
    NaN `exp` would never expire; Infinity, or an integer beyond a double, is no date either."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"must be a number, not {json_type(value)}"
    try:
        finite = math.isfinite(value)
    except OverflowError:  # an integer too large for a double
        finite = False
    if not finite:
        return "must be a finite number" + (f", not {json.dumps(value)}" if isinstance(value, float) else "")
    return ""


def _check_claims(
    claims: Mapping[str, Any], policy: Policy, leeway: float, now: float, profile: Profile = SEED
) -> Result:
    for name in ("exp", "nbf", "iat"):
        if name in claims and (problem := _time_problem(claims[name])):
            return Result(False, f"{name} claim {problem}")
    if not profile.iss_list and "iss" in claims and not isinstance(claims["iss"], str):
        return Result(False, f"iss claim must be a string for {profile.name}, not {json_type(claims['iss'])}")
    for name in ("aud", "iss"):  # each may be a string or an array (this product's rule for iss too)
        value = claims.get(name)
        odd = [v for v in value if not isinstance(v, str)] if isinstance(value, list) else []
        if odd or (name in claims and not isinstance(value, str | list)):
            shape = f"a list with {json_type(odd[0])}" if odd else json_type(value)
            return Result(False, f"{name} claim must be a string or a list of strings, not {shape}")
    if "exp" in claims and claims["exp"] <= now - leeway:
        return Result(False, "token expired (exp is in the past)")
    if "nbf" in claims and claims["nbf"] > now + leeway:
        return Result(False, "token not yet valid (nbf is in the future)")
    if profile.check_iat and "iat" in claims and claims["iat"] > now + leeway:
        return Result(False, "token issued in the future (iat)")
    if policy.audiences and not _matches(claims.get("aud", []), policy.audiences):
        return Result(False, f"audience {claims.get('aud')!r} is not one of {list(policy.audiences)}")
    if policy.issuers and not _matches(claims.get("iss", []), policy.issuers):
        return Result(False, f"issuer {claims.get('iss')!r} is not one of {list(policy.issuers)}")
    if profile.require_sub and not (isinstance(claims.get("sub"), str) and claims["sub"]):
        return Result(False, f"no sub claim: {profile.name} needs one for a request principal (<iss>/<sub>)")
    return Result(True, claims=claims)


class Verifier:
    """Verifies tokens against one or more published key sets: valid if any one accepts it. `profile`:
    a gateway's rules (verify.profiles), the seed's by default; `leeway`: the profile's unless given."""

    def __init__(
        self, sources: Iterable[KeySource], *, leeway: float | None = None, profile: Profile = SEED
    ) -> None:
        self.sources = tuple(sources)
        self.profile = profile
        self.leeway = profile.leeway if leeway is None else leeway

    @classmethod
    def from_data(
        cls,
        data: Mapping[str, str],
        *,
        leeway: float | None = None,
        require_policy: bool = True,
        profile: Profile = SEED,
    ) -> Verifier:
        """From the data of a published ConfigMap or (decoded) Secret; a shared target gives one
        source per contributing JwtSecret, each with its own policy. Data without policy.json is a
        MissingPolicyError unless `require_policy` is False (then only signatures and times count)."""
        sources = sources_from_data(data, require_policy=require_policy)
        return cls(sources, leeway=leeway, profile=profile)

    def verify(self, token: str, *, now: float | None = None) -> Result:
        """The first accepting source's claims, else the most specific rejection."""
        token = strip_bearer(token)
        reasons: list[str] = []
        for source in self.sources:
            result = verify_with(source, token, leeway=self.leeway, now=now, profile=self.profile)
            if result:
                return result
            reasons.append(result.reason)
        if not reasons:
            return Result(False, "no keys configured")
        specific = [r for r in reasons if not r.startswith("no key with kid")]
        return Result(False, (specific or reasons)[0])


class DirectoryVerifier:
    """A Verifier over a mounted ConfigMap/Secret directory, reloaded when its files change.

    The directory must hold policy.json next to jwks.json (mount the whole ConfigMap or Secret, not
    only jwks.json); `require_policy=False` accepts a bare jwks.json, checking signatures and times
    only."""

    _verifier: Verifier  # set by reload_if_changed, which verify calls first (no stamp matches None)

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        leeway: float | None = None,
        require_policy: bool = True,
        profile: Profile = SEED,
    ) -> None:
        self.path = Path(path)
        self.leeway = leeway
        self.require_policy = require_policy
        self.profile = profile
        self._stamp: tuple[tuple[str, int, int], ...] | None = None

    def _files(self) -> list[Path]:
        return sorted(p for p in self.path.glob("*.json") if p.is_file())

    def reload_if_changed(self) -> bool:
        """Re-read the files when their identity, mtime or size changed (kubelet swaps a symlink)."""
        stamp = tuple((str(p.resolve()), p.stat().st_mtime_ns, p.stat().st_size) for p in self._files())
        if stamp == self._stamp:
            return False
        data = {p.name: _text(p) for p in self._files()}
        self._verifier = Verifier.from_data(
            data, leeway=self.leeway, require_policy=self.require_policy, profile=self.profile
        )
        self._stamp = stamp
        return True

    def verify(self, token: str, *, now: float | None = None) -> Result:
        self.reload_if_changed()
        return self._verifier.verify(token, now=now)


def _text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise PublishedDataError(f"{path.name} is not UTF-8 text") from None
