"""What gets published for gateways (pure): jwks.json and policy.json, plus object metadata."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any

from .keys import KeySet, key_algorithms, thumbprint
from .names import (
    API_VERSION,
    ENVOY_GATEWAY_KEY,
    INDEX_KEY,
    JWKS_KEY,
    KIND,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    OWNER_LABEL,
    POLICY_KEY,
)

if TYPE_CHECKING:
    from .spec import JwtSecretSpec


def effective_algorithms(spec: JwtSecretSpec, key_set: KeySet) -> list[str]:
    """The allow-list gateways must enforce: the spec's, else every algorithm the keys can verify."""
    if spec.algorithms:
        return sorted(spec.algorithms)
    return sorted(set().union(*(key_algorithms(key) for key in key_set.keys)))


def render(spec: JwtSecretSpec, key_set: KeySet) -> dict[str, str]:
    """The data of the published ConfigMap/Secret; deterministic so unchanged keys write nothing."""
    policy = {
        "issuers": list(spec.issuers),
        "audiences": list(spec.audiences),
        "algorithms": effective_algorithms(spec, key_set),
        "source": spec.policy_source(),
    }
    jwks = key_set.rendered
    return {
        JWKS_KEY: jwks,
        ENVOY_GATEWAY_KEY: jwks,
        POLICY_KEY: json.dumps(policy, indent=2, sort_keys=True) + "\n",
    }


def digest(data: Mapping[str, str]) -> str:
    """A short content hash of published data (to skip writes that change nothing)."""
    canonical = json.dumps(dict(data), sort_keys=True).encode()
    return hashlib.sha256(canonical).hexdigest()[:16]


def owner_reference(name: str, uid: str, *, controller: bool = True) -> dict[str, Any]:
    """The ownerReference that makes the API server delete our output with its (last) JwtSecret."""
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": name,
        "uid": uid,
        "controller": controller,
    }


def labels(name: str) -> dict[str, str]:
    """Labels on every object jwks-operator writes (the owner label only where it fits 63 chars)."""
    result = {MANAGED_BY_LABEL: MANAGED_BY}
    if len(name) <= 63:
        result[OWNER_LABEL] = name
    return result


def part_keys(name: str) -> tuple[str, str]:
    """The data keys one JwtSecret owns inside a shared target."""
    return f"{name}.{JWKS_KEY}", f"{name}.{POLICY_KEY}"


def aggregate(
    existing: Mapping[str, str],
    name: str,
    part: Mapping[str, str] | None,
    live: Collection[str] | None = None,
) -> dict[str, str]:
    """Merge one JwtSecret's part into a shared target's data (None removes it).

    Parts of contributors not in `live` (when given) are dropped. The merged jwks.json holds every
    contributor's keys; identical keys appear once; a kid used by several contributors for different
    material keeps the key of the first contributor by name, and index.json reports the collision.
    """
    parts: dict[str, dict[str, str]] = {}
    for key, value in existing.items():
        for suffix in (JWKS_KEY, POLICY_KEY):
            if key.endswith("." + suffix):
                parts.setdefault(key[: -len(suffix) - 1], {})[suffix] = value
    if part is None:
        parts.pop(name, None)
    else:
        parts[name] = {JWKS_KEY: part[JWKS_KEY], POLICY_KEY: part[POLICY_KEY]}
    if live is not None:
        parts = {n: p for n, p in parts.items() if n in live or (n == name and part is not None)}
    merged: list[dict[str, Any]] = []
    seen: dict[str, str] = {}  # kid -> the contributor whose key keeps it
    printed: set[str] = set()
    collisions: dict[str, dict[str, Any]] = {}
    index: list[dict[str, Any]] = []
    for contributor in sorted(parts):
        keys = json.loads(parts[contributor].get(JWKS_KEY, '{"keys": []}')).get("keys", [])
        index.append(
            {
                "jwtsecret": contributor,
                "jwks": part_keys(contributor)[0],
                "policy": part_keys(contributor)[1],
                "kids": [k.get("kid") for k in keys],
            }
        )
        for key in keys:
            print_ = thumbprint(key)
            kid = key.get("kid")
            if print_ in printed:
                continue
            if kid is not None and kid in seen:
                entry = collisions.setdefault(kid, {"kid": kid, "kept": seen[kid], "dropped": []})
                entry["dropped"].append(contributor)
                continue
            if kid is not None:
                seen[kid] = contributor
            printed.add(print_)
            merged.append(key)
    data = {f"{n}.{suffix}": v for n, p in parts.items() for suffix, v in p.items()}
    data[JWKS_KEY] = data[ENVOY_GATEWAY_KEY] = json.dumps({"keys": merged}, indent=2, sort_keys=True) + "\n"
    data[INDEX_KEY] = (
        json.dumps({"contributors": index, "collisions": list(collisions.values())}, indent=2, sort_keys=True)
        + "\n"
    )
    return data
