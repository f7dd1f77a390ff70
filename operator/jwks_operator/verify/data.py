"""Published data read strictly into key sources: `policy.json` must hold `issuers`, `audiences` and
`algorithms` (lists of non-empty strings, empty meaning no restriction) and `source` (an object with a
`type`); a key set without its policy.json is refused unless `require_policy=False` says that is intended."""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jwks_operator.keys.keyset import InvalidKey, validate_jwk
from jwks_operator.model.names import JWKS_KEY, POLICY_KEY


class PublishedDataError(ValueError):
    """Published data (or a mounted directory of it) that holds no usable key set: the message names
    the entry, e.g. `jwks.json is not valid JSON (line 1 column 2)`."""


class MissingPolicyError(PublishedDataError):
    """A key set without its policy.json, while one is required: nothing would check aud or iss."""

    def __init__(self, entry: str, jwks_entry: str) -> None:
        self.entry = entry
        self.problem = f"no {entry} in the published data, so no audience or issuer would be checked"
        super().__init__(
            f"{self.problem}; mount or publish it with {jwks_entry}, "
            "or pass require_policy=False to check signatures and times only"
        )


POLICY_LISTS = ("issuers", "audiences", "algorithms")


def json_type(value: Any) -> str:
    """How a JSON value is named in reasons: `a string`, `null`, `an empty string`..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string" if value else "an empty string"
    if isinstance(value, int | float):
        return "a number"
    return "a list" if isinstance(value, list) else "an object" if isinstance(value, dict) else "a value"


def _names(doc: Mapping[str, Any], member: str, entry: str) -> tuple[str, ...]:
    if member not in doc or doc[member] is None:
        raise PublishedDataError(f"{entry} is not a policy: {member} is missing or null (give [] for any)")
    values = doc[member]
    if not isinstance(values, list):
        problem = f"must be a list of non-empty strings, not {json_type(values)}"
        raise PublishedDataError(f"{entry} is not a policy: {member} {problem}")
    for index, value in enumerate(values):
        if not isinstance(value, str) or not value:
            problem = f"must be a non-empty string, not {json_type(value)}"
            raise PublishedDataError(f"{entry} is not a policy: {member}[{index}] {problem}")
    return tuple(values)


@dataclass(frozen=True, slots=True)
class Policy:
    """The verification policy of one published key set (policy.json)."""

    audiences: tuple[str, ...] = ()
    issuers: tuple[str, ...] = ()
    algorithms: tuple[str, ...] = ()
    from_url: bool = False

    @classmethod
    def from_json(cls, doc: Mapping[str, Any], entry: str = POLICY_KEY) -> Policy:
        """Strictly: each member present and of its type, else PublishedDataError naming it (a loose
        reading would check less than the publisher meant, e.g. "api" as the audiences a, p and i)."""
        if not isinstance(doc, Mapping):
            raise PublishedDataError(f"{entry} is not a JSON object")
        lists = {member: _names(doc, member, entry) for member in POLICY_LISTS}
        source = doc.get("source")
        if source is None:
            raise PublishedDataError(f"{entry} is not a policy: source is missing")
        if not isinstance(source, Mapping):
            problem = f"source must be an object with a type, not {json_type(source)}"
            raise PublishedDataError(f"{entry} is not a policy: {problem}")
        kind = source.get("type")
        if not isinstance(kind, str) or not kind:
            problem = f"source.type must be a non-empty string, not {json_type(kind)}"
            raise PublishedDataError(f"{entry} is not a policy: {problem}")
        return cls(
            audiences=lists["audiences"],
            issuers=lists["issuers"],
            algorithms=lists["algorithms"],
            from_url=kind == "jwkUrl",
        )


@dataclass(frozen=True)
class KeySource:
    """Keys plus the policy they are used with (one JwtSecret's publication).

    Each key passes the operator's own checks (keys.keyset.validate_jwk: members, algorithm, RSA size and
    factors, Ed25519/Ed448 points of small order, x5c) before it verifies anything, once per source: keys
    given to the library directly never went through the operator."""

    keys: tuple[Mapping[str, Any], ...]
    policy: Policy

    @functools.cached_property
    def problems(self) -> tuple[str | None, ...]:
        """Per key, why it may not be used (None: it may)."""
        return tuple(_problem(key) for key in self.keys)

    @classmethod
    def from_data(cls, data: Mapping[str, str], *, require_policy: bool = True) -> KeySource:
        """From ConfigMap/Secret data (`jwks.json` and `policy.json`); PublishedDataError names the
        entry that is missing or malformed. Without policy.json (only when `require_policy` is False)
        no audience, issuer or algorithm allow-list applies."""
        if JWKS_KEY not in data:
            raise PublishedDataError(f"no {JWKS_KEY} in the published data")
        return _key_source(data[JWKS_KEY], data.get(POLICY_KEY), JWKS_KEY, POLICY_KEY, require_policy)


def _problem(key: Mapping[str, Any]) -> str | None:
    try:
        validate_jwk(key, allow_symmetric=True)  # published HMAC keys come in a Secret's jwks.json
    except InvalidKey as exc:
        return str(exc)
    return None


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not a JSON value")


def _json_object(text: str, entry: str) -> Mapping[str, Any]:
    try:
        doc = json.loads(text, parse_constant=_not_json)  # strict JSON: no NaN or Infinity
    except json.JSONDecodeError as exc:
        raise PublishedDataError(
            f"{entry} is not valid JSON (line {exc.lineno} column {exc.colno})"
        ) from None
    except (ValueError, RecursionError) as exc:
        raise PublishedDataError(f"{entry} is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise PublishedDataError(f"{entry} is not a JSON object")
    return doc


def _key_source(
    jwks: str, policy: str | None, jwks_entry: str, policy_entry: str, require_policy: bool
) -> KeySource:
    keys = _json_object(jwks, jwks_entry).get("keys") or []
    if not isinstance(keys, list) or not all(isinstance(k, dict) for k in keys):
        raise PublishedDataError(f"{jwks_entry} is not a JWK Set: keys must be a list of objects")
    for index, key in enumerate(keys):
        if "kid" in key and not isinstance(key["kid"], str):
            problem = f"keys[{index}].kid must be a string, not {json_type(key['kid'])}"
            raise PublishedDataError(f"{jwks_entry} is not a JWK Set: {problem}")
    if policy is None:
        if require_policy:
            raise MissingPolicyError(policy_entry, jwks_entry)
        return KeySource(tuple(keys), Policy())
    return KeySource(tuple(keys), Policy.from_json(_json_object(policy, policy_entry), policy_entry))


def sources_from_data(data: Mapping[str, str], *, require_policy: bool = True) -> list[KeySource]:
    """Key sources in published data: each `<name>.jwks.json` part (with its `<name>.policy.json`),
    else the single jwks.json (with policy.json); a missing policy is an error if `require_policy`."""
    parts = sorted(k.removesuffix("." + JWKS_KEY) for k in data if k.endswith("." + JWKS_KEY))
    if not parts:
        return [KeySource.from_data(data, require_policy=require_policy)]
    return [
        _key_source(
            data[f"{p}.{JWKS_KEY}"],
            data.get(f"{p}.{POLICY_KEY}"),
            f"{p}.{JWKS_KEY}",
            f"{p}.{POLICY_KEY}",
            require_policy,
        )
        for p in parts
    ]
