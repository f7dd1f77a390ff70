"""Verify JWTs against what jwks-operator publishes (no Kubernetes: published data or a mounted folder).

The rules gateways apply: a token is valid if any one configured key (of the token's `kid`, if it
names one, and fitting its algorithm) verifies its signature; `exp`, `nbf` and `iat`, when present,
are numbers and, within a leeway, `exp` is not past and `nbf` and `iat` are not in the future; when
audiences are set, the token's `aud` (a string or a list) matches one of them; issuers likewise; the
algorithm is in the published allow-list, never `none`, and never HS* for keys that came from a URL.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt

from .keys import HMAC_ALGS, KTY_BY_ALG, key_algorithms
from .names import JWKS_KEY, POLICY_KEY


class PublishedDataError(ValueError):
    """Published data (or a mounted directory of it) that holds no usable key set: the message names
    the entry, e.g. `jwks.json is not valid JSON (line 1 column 2)`."""


@dataclass(frozen=True)
class Policy:
    """The verification policy of one published key set (policy.json)."""

    audiences: tuple[str, ...] = ()
    issuers: tuple[str, ...] = ()
    algorithms: tuple[str, ...] = ()
    from_url: bool = False

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Policy:
        source = doc.get("source") or {}
        return cls(
            audiences=tuple(doc.get("audiences") or ()),
            issuers=tuple(doc.get("issuers") or ()),
            algorithms=tuple(doc.get("algorithms") or ()),
            from_url=source.get("type") == "jwkUrl",
        )


@dataclass(frozen=True)
class KeySource:
    """Keys plus the policy they are used with (one JwtSecret's publication)."""

    keys: tuple[Mapping[str, Any], ...]
    policy: Policy

    @classmethod
    def from_data(cls, data: Mapping[str, str]) -> KeySource:
        """From ConfigMap/Secret data (`jwks.json` and `policy.json`); PublishedDataError names the
        entry that is missing or malformed."""
        if JWKS_KEY not in data:
            raise PublishedDataError(f"no {JWKS_KEY} in the published data")
        return _key_source(data[JWKS_KEY], data.get(POLICY_KEY), JWKS_KEY, POLICY_KEY)


def _json_object(text: str, entry: str) -> Mapping[str, Any]:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PublishedDataError(
            f"{entry} is not valid JSON (line {exc.lineno} column {exc.colno})"
        ) from None
    if not isinstance(doc, dict):
        raise PublishedDataError(f"{entry} is not a JSON object")
    return doc


def _key_source(jwks: str, policy: str | None, jwks_entry: str, policy_entry: str) -> KeySource:
    keys = _json_object(jwks, jwks_entry).get("keys") or []
    if not isinstance(keys, list) or not all(isinstance(k, dict) for k in keys):
        raise PublishedDataError(f"{jwks_entry} is not a JWK Set: keys must be a list of objects")
    doc = _json_object(policy, policy_entry) if policy is not None else {}
    if not isinstance(doc.get("source") or {}, dict):
        raise PublishedDataError(f"{policy_entry} is not a policy: source must be an object")
    return KeySource(tuple(keys), Policy.from_json(doc))


@dataclass(frozen=True)
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


def _matches(claim: Any, accepted: Sequence[str]) -> bool:
    values = [claim] if isinstance(claim, str) else claim if isinstance(claim, list) else []
    return any(isinstance(v, str) and v in accepted for v in values)


def verify_with(source: KeySource, token: str, *, leeway: float, now: float | None) -> Result:
    """Verify against one key source; the reason names the first rule that failed."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.DecodeError as exc:
        return Result(False, f"malformed token: {exc}")
    alg = header.get("alg")
    policy = source.policy
    if not isinstance(alg, str) or alg == "none" or alg not in KTY_BY_ALG:
        return Result(False, f"algorithm {alg!r} is not allowed")
    if policy.algorithms and alg not in policy.algorithms:
        return Result(False, f"algorithm {alg} is not in the allow-list {list(policy.algorithms)}")
    if policy.from_url and alg in HMAC_ALGS:
        return Result(False, f"algorithm {alg} is never accepted for keys from a URL")
    kid = header.get("kid")
    candidates = [k for k in source.keys if kid is None or k.get("kid") == kid]
    if not candidates:
        return Result(False, f"no key with kid {kid!r}")
    candidates = [k for k in candidates if alg in key_algorithms(k)]
    if not candidates:
        return Result(False, f"no key for algorithm {alg}" + (f" with kid {kid!r}" if kid else ""))
    last = "signature verification failed"
    for jwk in candidates:
        try:
            key = jwt.PyJWK(dict(jwk), algorithm=alg).key
            claims: dict[str, Any] = jwt.decode(token, key, algorithms=[alg], options=_SIGNATURE_ONLY)
        except jwt.InvalidSignatureError:
            continue
        except (jwt.InvalidTokenError, jwt.PyJWKError) as exc:
            last = f"invalid token: {exc}"
            continue
        return _check_claims(claims, policy, leeway, time.time() if now is None else now)
    return Result(False, last)


_SIGNATURE_ONLY: Any = {
    "verify_aud": False,
    "verify_iss": False,
    "verify_exp": False,
    "verify_nbf": False,
    "verify_iat": False,
}


def _check_claims(claims: Mapping[str, Any], policy: Policy, leeway: float, now: float) -> Result:
    for name in ("exp", "nbf", "iat"):
        if name in claims and (not isinstance(claims[name], int | float) or isinstance(claims[name], bool)):
            return Result(False, f"{name} claim must be a number")
    if "exp" in claims and claims["exp"] <= now - leeway:
        return Result(False, "token expired (exp is in the past)")
    if "nbf" in claims and claims["nbf"] > now + leeway:
        return Result(False, "token not yet valid (nbf is in the future)")
    if "iat" in claims and claims["iat"] > now + leeway:
        return Result(False, "token issued in the future (iat)")
    if policy.audiences and not _matches(claims.get("aud"), policy.audiences):
        return Result(False, f"audience {claims.get('aud')!r} is not one of {list(policy.audiences)}")
    if policy.issuers and not _matches(claims.get("iss"), policy.issuers):
        return Result(False, f"issuer {claims.get('iss')!r} is not one of {list(policy.issuers)}")
    return Result(True, claims=claims)


def sources_from_data(data: Mapping[str, str]) -> list[KeySource]:
    """Key sources in published data: each `<name>.jwks.json` part, else the single jwks.json."""
    parts = sorted(k.removesuffix("." + JWKS_KEY) for k in data if k.endswith("." + JWKS_KEY))
    if not parts:
        return [KeySource.from_data(data)]
    return [
        _key_source(
            data[f"{p}.{JWKS_KEY}"],
            data.get(f"{p}.{POLICY_KEY}", "{}"),
            f"{p}.{JWKS_KEY}",
            f"{p}.{POLICY_KEY}",
        )
        for p in parts
    ]


class Verifier:
    """Verifies tokens against one or more published key sets: valid if any one accepts it."""

    def __init__(self, sources: Iterable[KeySource], *, leeway: float = 30.0) -> None:
        self.sources = tuple(sources)
        self.leeway = leeway

    @classmethod
    def from_data(cls, data: Mapping[str, str], *, leeway: float = 30.0) -> Verifier:
        """From the data of a published ConfigMap or (decoded) Secret; a shared target gives one
        source per contributing JwtSecret, each with its own policy."""
        return cls(sources_from_data(data), leeway=leeway)

    def verify(self, token: str, *, now: float | None = None) -> Result:
        """The first accepting source's claims, else the most specific rejection."""
        token = strip_bearer(token)
        reasons: list[str] = []
        for source in self.sources:
            result = verify_with(source, token, leeway=self.leeway, now=now)
            if result:
                return result
            reasons.append(result.reason)
        if not reasons:
            return Result(False, "no keys configured")
        specific = [r for r in reasons if not r.startswith("no key with kid")]
        return Result(False, (specific or reasons)[0])


class DirectoryVerifier:
    """A Verifier over a mounted ConfigMap/Secret directory, reloaded when its files change."""

    def __init__(self, path: str | os.PathLike[str], *, leeway: float = 30.0) -> None:
        self.path = Path(path)
        self.leeway = leeway
        self._stamp: tuple[tuple[str, int, int], ...] | None = None
        self._verifier = Verifier((), leeway=leeway)

    def _files(self) -> list[Path]:
        return sorted(p for p in self.path.glob("*.json") if p.is_file())

    def reload_if_changed(self) -> bool:
        """Re-read the files when their identity, mtime or size changed (kubelet swaps a symlink)."""
        stamp = tuple((str(p.resolve()), p.stat().st_mtime_ns, p.stat().st_size) for p in self._files())
        if stamp == self._stamp:
            return False
        data = {p.name: _text(p) for p in self._files()}
        self._verifier = Verifier.from_data(data, leeway=self.leeway)
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
