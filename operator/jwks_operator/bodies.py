"""The ConfigMaps and Secrets jwks-operator publishes to (pure): one `mutate` per kind of write.

Each function returns the `mutate` that writes.write() calls with the target as read (None: absent):
it answers the object to write, DELETE, or None when nothing needs writing, and raises
TargetConflictError rather than touch an object that is not ours.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from .errors import TargetConflictError
from .names import KIND, MANAGED_BY, MANAGED_BY_LABEL, SHARED_ANNOTATION
from .outputs import aggregate, labels, owner_reference
from .writes import DELETE, Body, Mutate, Verdict

TargetKind = Literal["ConfigMap", "Secret"]


@dataclass(frozen=True)
class Owner:
    """The JwtSecret that owns a published object."""

    namespace: str
    name: str
    uid: str


def decode(kind: TargetKind, data: Mapping[str, str]) -> dict[str, str]:
    """The text of an object's data (a Secret's values are base64)."""
    if kind == "ConfigMap":
        return dict(data)
    return {k: base64.b64decode(v).decode() for k, v in data.items()}


def encode(kind: TargetKind, data: Mapping[str, str]) -> dict[str, str]:
    """An object's data for text values (a Secret's values are base64)."""
    if kind == "ConfigMap":
        return dict(data)
    return {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}


def owned(kind: TargetKind, owner: Owner, name: str, data: Mapping[str, str]) -> Mutate:
    """Our own target: created, or rewritten when its data or our labels differ."""
    encoded = encode(kind, data)

    def mutate(existing: Mapping[str, Any] | None) -> Body | None:
        if existing is None:
            return _body(kind, owner, name, encoded)
        _check_owned(kind, existing, owner, name)
        if dict(existing.get("data") or {}) == encoded and _has_labels(existing, owner.name):
            return None
        return _body(kind, owner, name, encoded, existing)

    return mutate


def shared(kind: TargetKind, owner: Owner, name: str, part: Mapping[str, str] | None) -> Mutate:
    """Our part of a shared target merged in (`part` None: taken out) on top of the other contributors'
    parts as read; parts of JwtSecrets no longer among its owners are dropped; the last one out deletes."""
    ours = owner_reference(owner.name, owner.uid, controller=False)

    def mutate(existing: Mapping[str, Any] | None) -> Body | Verdict | None:
        if existing is None:
            if part is None:
                return None
            body = _body(kind, owner, name, encode(kind, aggregate({}, owner.name, part)), refs=[ours])
            body["metadata"]["annotations"] = {SHARED_ANNOTATION: "true"}
            return body
        meta = existing.get("metadata") or {}
        managed = (meta.get("labels") or {}).get(MANAGED_BY_LABEL) == MANAGED_BY
        if not managed or (meta.get("annotations") or {}).get(SHARED_ANNOTATION) != "true":
            raise TargetConflictError(
                f"{kind} {name} already exists and is not a shared jwks-operator target; "
                "it was left untouched"
            )
        current = list(meta.get("ownerReferences") or [])
        refs = [r for r in current if r.get("uid") != owner.uid] + ([ours] if part is not None else [])
        if not refs:
            return DELETE
        live = {str(r.get("name")) for r in refs if r.get("kind") == KIND}
        data = encode(kind, aggregate(decode(kind, existing.get("data") or {}), owner.name, part, live))
        if data == dict(existing.get("data") or {}) and refs == current:
            return None
        return {**existing, "data": data, "metadata": {**meta, "ownerReferences": refs}}

    return mutate


def released(owner: Owner) -> Mutate:
    """Our former (unshared) target deleted, if it is still ours."""

    def mutate(existing: Mapping[str, Any] | None) -> Verdict | None:
        return DELETE if existing is not None and _owned_by(existing, owner) else None

    return mutate


def _body(
    kind: TargetKind,
    owner: Owner,
    name: str,
    data: Mapping[str, str],
    existing: Mapping[str, Any] | None = None,
    refs: list[dict[str, Any]] | None = None,
) -> Body:
    """The whole object: the existing metadata kept, with our name, labels and ownerReferences."""
    meta: dict[str, Any] = dict((existing or {}).get("metadata") or {})
    meta.update(name=name, namespace=owner.namespace)
    meta["labels"] = {**(meta.get("labels") or {}), **labels(owner.name)}
    meta["ownerReferences"] = refs if refs is not None else [owner_reference(owner.name, owner.uid)]
    body: Body = {"apiVersion": "v1", "kind": kind, "metadata": meta, "data": dict(data)}
    if kind == "Secret":
        body["type"] = "Opaque"
    return body


def _has_labels(existing: Mapping[str, Any], owner_name: str) -> bool:
    current = (existing.get("metadata") or {}).get("labels") or {}
    return all(current.get(k) == v for k, v in labels(owner_name).items())


def _owned_by(existing: Mapping[str, Any], owner: Owner) -> bool:
    """Ours when it names this JwtSecret (by uid) as owner; a label removed by hand is put back."""
    meta = existing.get("metadata") or {}
    return any(ref.get("uid") == owner.uid for ref in meta.get("ownerReferences") or [])


def _check_owned(kind: str, existing: Mapping[str, Any], owner: Owner, name: str) -> None:
    if not _owned_by(existing, owner):
        meta = existing.get("metadata") or {}
        refs = meta.get("ownerReferences") or []
        holder = next((f"{r.get('kind')} {r.get('name')}" for r in refs if r.get("controller")), None)
        why = f"is owned by {holder}" if holder else "is not managed by jwks-operator"
        if (meta.get("annotations") or {}).get(SHARED_ANNOTATION) == "true":
            why = "is a shared target (set spec.target.shared: true to contribute to it)"
        raise TargetConflictError(f"{kind} {name} already exists and {why}; it was left untouched")
