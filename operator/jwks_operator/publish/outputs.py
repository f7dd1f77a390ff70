"""What gets published for gateways (pure): jwks.json and policy.json, plus object metadata."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any

from jwks_operator.keys.keyset import KeySet, key_algorithms, thumbprint
from jwks_operator.model.names import (
    API_VERSION,
    ENVOY_GATEWAY_KEY,
    INDEX_KEY,
    JWKS_KEY,
    KIND,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    OWNER_LABEL,
    POLICY_KEY,
    TARGET_ALLOW_PART,
)
from jwks_operator.publish.compat import envoy_rendered, envoy_usable

if TYPE_CHECKING:
    from jwks_operator.resource.spec import JwtSecretSpec


def effective_algorithms(spec: JwtSecretSpec, key_set: KeySet) -> list[str]:
    """The allow-list gateways must enforce: the spec's, else every algorithm the keys can verify."""
    if spec.algorithms:
        return sorted(spec.algorithms)
    return sorted(set().union(*(key_algorithms(key) for key in key_set.keys)))


def render(spec: JwtSecretSpec, key_set: KeySet) -> dict[str, str]:
    """The data of the published ConfigMap/Secret; deterministic so unchanged keys write nothing. For a
    shared target with spec.target.allow, also TARGET_ALLOW_PART: not published (bodies.shared makes it
    the target's allow annotation when this JwtSecret owns the target), but a change of it is a write."""
    policy = {
        "issuers": list(spec.issuers),
        "audiences": list(spec.audiences),
        "algorithms": effective_algorithms(spec, key_set),
        "source": spec.policy_source(),
    }
    data = {
        JWKS_KEY: key_set.rendered,
        ENVOY_GATEWAY_KEY: envoy_rendered(key_set),  # what Envoy can use (publish.compat): no Ed448 key
        POLICY_KEY: json.dumps(policy, indent=2, sort_keys=True) + "\n",
    }
    if spec.target_shared and spec.target_allow:
        data[TARGET_ALLOW_PART] = ",".join(spec.target_allow)
    return data


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
    contributor's keys, identical keys once. A kid that names different key material in two parts is left
    out of it altogether (never one of them picked silently), and index.json lists it with the contributors
    involved. A part that is not a JWK Set (edited by hand) brings no key, and index.json marks it invalid.
    """
    parts = _select(existing, name, part, live)
    keys = {contributor: _part_keys(p.get(JWKS_KEY)) for contributor, p in parts.items()}
    colliding = _collisions(keys)
    merged: list[dict[str, Any]] = []
    printed: set[str] = set()
    index: list[dict[str, Any]] = []
    for contributor in sorted(parts):
        found = keys[contributor]
        entry: dict[str, Any] = dict(zip(("jwks", "policy"), part_keys(contributor), strict=True))
        entry.update(jwtsecret=contributor, kids=[k.get("kid") for k in found or ()])
        index.append(entry if found is not None else {**entry, "invalid": True})
        for key in found or ():
            print_ = thumbprint(key)
            if print_ not in printed and key.get("kid") not in colliding:
                printed.add(print_)
                merged.append(key)
    collisions = [{"kid": kid, "jwtsecrets": names} for kid, names in sorted(colliding.items())]
    data = {f"{n}.{suffix}": v for n, p in parts.items() for suffix, v in p.items()}
    data[JWKS_KEY] = _compact({"keys": merged})
    data[ENVOY_GATEWAY_KEY] = _compact({"keys": [k for k in merged if envoy_usable(k)]})
    data[INDEX_KEY] = _compact({"contributors": index, "collisions": collisions})
    return data


def new_collisions(
    existing: Mapping[str, str], name: str, part: Mapping[str, str], live: Collection[str] | None = None
) -> dict[str, list[str]]:
    """The kids that `part`, merged in, would newly make collide: kid -> the other contributors whose
    parts name other key material under it (a collision that was there before is not new)."""
    before = {n: p for n, p in _parts(existing).items() if live is None or n in live or n == name}
    after = _select(existing, name, part, live)
    old = _collisions({n: _part_keys(p.get(JWKS_KEY)) for n, p in before.items()})
    new = _collisions({n: _part_keys(p.get(JWKS_KEY)) for n, p in after.items()})
    return {
        kid: [n for n in names if n != name]
        for kid, names in new.items()
        if name in names and name not in old.get(kid, ())
    }


def _parts(data: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """Each contributor's part of a shared target's data: name -> {jwks.json, policy.json}."""
    parts: dict[str, dict[str, str]] = {}
    for key, value in data.items():
        for suffix in (JWKS_KEY, POLICY_KEY):
            if key.endswith("." + suffix):
                parts.setdefault(key[: -len(suffix) - 1], {})[suffix] = value
    return parts


def _select(
    existing: Mapping[str, str], name: str, part: Mapping[str, str] | None, live: Collection[str] | None
) -> dict[str, dict[str, str]]:
    """The parts after `name`'s is replaced by `part` (None: removed), without those of the non-`live`."""
    parts = {n: p for n, p in _parts(existing).items() if live is None or n in live}
    parts.pop(name, None)
    if part is not None:
        parts[name] = {JWKS_KEY: part[JWKS_KEY], POLICY_KEY: part[POLICY_KEY]}
    return parts


def _part_keys(text: str | None) -> list[dict[str, Any]] | None:
    """The keys of one contributor's jwks.json, or None when it is not a JWK Set of keys we can merge."""

    def refuse(constant: str) -> None:
        raise ValueError(f"{constant} is not JSON")

    try:
        keys = json.loads(text or "", parse_constant=refuse).get("keys")
        for key in keys:
            if not isinstance(key, dict) or not isinstance(key.get("kid", ""), str):
                return None
            thumbprint(key)  # raises for what is not a public key of a known type
    except (AttributeError, KeyError, TypeError, ValueError):  # not JSON, not an object, no list of keys
        return None
    return keys if isinstance(keys, list) else None


def _collisions(keys: Mapping[str, list[dict[str, Any]] | None]) -> dict[str, list[str]]:
    """kid -> the contributors (sorted) when the kid names different key material across the parts."""
    prints: dict[str, dict[str, set[str]]] = {}  # kid -> thumbprint -> contributors
    for contributor, found in keys.items():
        for key in found or ():
            if "kid" in key:
                prints.setdefault(key["kid"], {}).setdefault(thumbprint(key), set()).add(contributor)
    return {kid: sorted(set().union(*by.values())) for kid, by in prints.items() if len(by) > 1}


def _compact(document: Any) -> str:
    """Strict, compact JSON (a shared target holds several sets: no room for indentation)."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), allow_nan=False) + "\n"
