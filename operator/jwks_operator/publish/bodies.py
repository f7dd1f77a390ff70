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

from jwks_operator.model.errors import OutputTooLargeError, TargetConflictError
from jwks_operator.model.names import (
    KIND,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    OWNER_LABEL,
    SHARED_ANNOTATION,
    SHARED_OWNER_ANNOTATION,
    TARGET_ALLOW_PART,
)
from jwks_operator.publish.allow import ALLOW_ANNOTATION, allowed
from jwks_operator.publish.outputs import aggregate, labels, new_collisions, owner_reference
from jwks_operator.publish.writes import DELETE, Body, Mutate, Verdict

TargetKind = Literal["ConfigMap", "Secret"]
MAX_DATA_BYTES = 900 * 1024  # of a published ConfigMap/Secret (base64 counted for a Secret)


@dataclass(frozen=True, slots=True)
class Owner:
    """The JwtSecret that owns a published object."""

    namespace: str
    name: str
    uid: str


def decode(kind: TargetKind, data: Mapping[str, str]) -> dict[str, str]:
    """The text of an object's data (a Secret's values are base64)."""
    if kind == "ConfigMap":
        return dict(data)
    return {k: base64.b64decode(v).decode(errors="replace") for k, v in data.items()}  # junk is not a part


def encode(kind: TargetKind, data: Mapping[str, str]) -> dict[str, str]:
    """An object's data for text values (a Secret's values are base64)."""
    if kind == "ConfigMap":
        return dict(data)
    return {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}


def owned(kind: TargetKind, owner: Owner, name: str, data: Mapping[str, str]) -> Mutate:
    """Our own target: created, or rewritten when its data or our labels differ."""
    encoded = encode(kind, data)
    check_size(kind, name, encoded)

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
    parts as read; the last one out deletes.

    Joining is the target owner's call. The JwtSecret that created the target (SHARED_OWNER_ANNOTATION)
    keeps its spec.target.allow (the part's TARGET_ALLOW_PART) in the target's allow annotation; only it
    and the JwtSecrets listed there (or all, for "*") may write a part, others get TargetConflictError.
    Parts of JwtSecrets no longer listed, or no longer owners, are dropped. A part
    whose kid names other key material than another contributor's is refused, never merged.
    """
    ours = owner_reference(owner.name, owner.uid, controller=False)
    allow = (part or {}).get(TARGET_ALLOW_PART)

    def mutate(existing: Mapping[str, Any] | None) -> Body | Verdict | None:
        if existing is None:
            if part is None:
                return None
            body = _body(kind, owner, name, encode(kind, aggregate({}, owner.name, part)), refs=[ours])
            body["metadata"]["annotations"] = {SHARED_ANNOTATION: "true", SHARED_OWNER_ANNOTATION: owner.name}
            if allow:
                body["metadata"]["annotations"][ALLOW_ANNOTATION] = allow
            return body
        meta = existing.get("metadata") or {}
        annotations = dict(meta.get("annotations") or {})
        managed = (meta.get("labels") or {}).get(MANAGED_BY_LABEL) == MANAGED_BY
        if not managed or annotations.get(SHARED_ANNOTATION) != "true":
            raise TargetConflictError(
                f"{kind} {name} already exists and is not a shared jwks-operator target; "
                "it was left untouched"
            )
        # The creator; a target written before the annotation existed names it in its owner label.
        creator = annotations.get(SHARED_OWNER_ANNOTATION) or (meta.get("labels") or {}).get(OWNER_LABEL)
        if part is not None and creator == owner.name:
            annotations[SHARED_OWNER_ANNOTATION] = owner.name
            if allow:
                annotations[ALLOW_ANNOTATION] = allow
            else:
                annotations.pop(ALLOW_ANNOTATION, None)
        view = {"metadata": {"annotations": annotations}}

        def member(who: str) -> bool:
            return who == creator or allowed(view, who)

        if part is not None and not member(owner.name):
            raise TargetConflictError(_not_allowed(kind, name, owner.name, creator, ALLOW_ANNOTATION))
        current = list(meta.get("ownerReferences") or [])
        refs = [r for r in current if r.get("uid") != owner.uid] + ([ours] if part is not None else [])
        if not refs:
            return DELETE
        # An owner no longer allowed keeps its ownerReference (its next write, refused, reports it) but
        # not its part.
        live = {str(r.get("name")) for r in refs if r.get("kind") == KIND and member(str(r.get("name")))}
        old = decode(kind, existing.get("data") or {})
        clash = new_collisions(old, owner.name, part, live) if part is not None else {}
        if clash:
            kids = "; ".join(f"{kid!r} (JwtSecret {', '.join(who)})" for kid, who in sorted(clash.items()))
            raise TargetConflictError(
                f"{kind} {name} is shared, and kid {kids} names other key material there: the keys of "
                f"JwtSecret {owner.name} were not merged (a kid must name one key: rename one of them)"
            )
        data = encode(kind, aggregate(old, owner.name, part, live))
        check_size(kind, name, data)
        unchanged = annotations == (meta.get("annotations") or {}) and refs == current
        if data == dict(existing.get("data") or {}) and unchanged:
            return None
        return {
            **existing,
            "data": data,
            "metadata": {**meta, "ownerReferences": refs, "annotations": annotations},
        }

    return mutate


def _not_allowed(kind: str, name: str, who: str, creator: str | None, annotation: str) -> str:
    if creator is None:
        setting = f"its annotation {annotation} must list it"
    else:
        setting = f"{creator}'s spec.target.allow must list it; it is kept in the annotation {annotation}"
    whose = f" of JwtSecret {creator}," if creator else ""
    return (
        f"{kind} {name} is a shared target{whose} which does not allow JwtSecret {who} to contribute "
        f"({setting}); it was left untouched"
    )


def check_size(kind: str, name: str, data: Mapping[str, str]) -> None:
    """OutputTooLargeError when the data would not fit in one object (the API server stores at most
    1 MiB; MAX_DATA_BYTES leaves room for the metadata)."""
    size = sum(len(k) + len(v) for k, v in data.items())
    if size > MAX_DATA_BYTES:
        raise OutputTooLargeError(
            f"{kind} {name} would hold {size} bytes of data, over the {MAX_DATA_BYTES}-byte limit of one "
            "object: nothing was written (publish fewer keys, or split a shared target)"
        )


def released(owner: Owner) -> Mutate:
    """Our former (unshared) target deleted, if it is still ours."""

    def mutate(existing: Mapping[str, Any] | None) -> Verdict | None:
        return DELETE if existing is not None and owned_by(existing, owner) else None

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


def owned_by(existing: Mapping[str, Any], owner: Owner) -> bool:
    """Ours when it names this JwtSecret (by uid) as owner; a label removed by hand is put back."""
    meta = existing.get("metadata") or {}
    return any(ref.get("uid") == owner.uid for ref in meta.get("ownerReferences") or [])


def _check_owned(kind: str, existing: Mapping[str, Any], owner: Owner, name: str) -> None:
    if not owned_by(existing, owner):
        meta = existing.get("metadata") or {}
        refs = meta.get("ownerReferences") or []
        holder = next((f"{r.get('kind')} {r.get('name')}" for r in refs if r.get("controller")), None)
        why = f"is owned by {holder}" if holder else "is not managed by jwks-operator"
        if (meta.get("annotations") or {}).get(SHARED_ANNOTATION) == "true":
            why = (
                "is a shared target (to contribute, set spec.target.shared: true and be listed in the "
                "spec.target.allow of the JwtSecret that created it)"
            )
        raise TargetConflictError(f"{kind} {name} already exists and {why}; it was left untouched")
