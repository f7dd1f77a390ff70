"""The one write loop for one API object: read it, decide with a pure `mutate`, write; lost races retried.

`mutate(existing)` gets the object as read (None when absent) and answers the object to write, DELETE,
or None (nothing to write); it may raise (e.g. TargetConflictError for an object that is not ours).
The loop creates, replaces (guarded by the resourceVersion it read) or deletes (guarded by the uid and
resourceVersion it read). A lost race starts over: 409 re-reads and asks `mutate` again; 404 on a
replace or delete means the object is gone, so `mutate(None)` decides next (a create, without a read).
Other errors propagate. After `attempts` lost races: TargetConflictError (the caller retries later).
Given a `Known`, the loop starts from the object as this process last wrote it instead of reading it.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Mapping
from typing import Any, Literal, Protocol

from kubernetes.client.exceptions import ApiException

from jwks_operator.model.errors import OutputTooLargeError, TargetConflictError

Body = dict[str, Any]
MAX_OBJECT_BYTES = 1024 * 1024  # what the API server stores of a ConfigMap or Secret; CRs a little more
Outcome = Literal["created", "updated", "unchanged", "deleted"]


class Verdict(enum.Enum):
    """What `mutate` may answer besides a body or None."""

    DELETE = "delete"


DELETE = Verdict.DELETE
Mutate = Callable[[Mapping[str, Any] | None], Body | Verdict | None]


class Objects(Protocol):
    """The API calls on one named object (create/replace/delete raise ApiException on HTTP errors)."""

    @property
    def kind(self) -> str: ...

    @property
    def name(self) -> str: ...

    def read(self) -> Body | None:
        """The object, or None when it does not exist."""

    def create(self, body: Body) -> Body:
        """The object as created (the API server's answer)."""

    def replace(self, body: Body) -> Body:
        """The object as replaced (the API server's answer)."""

    def delete(self, preconditions: Mapping[str, Any]) -> None: ...


class Known:
    """An object's metadata as this process last wrote it (managedFields left out), or None.

    A write given it starts there instead of reading the object: if the object changed since, the API
    server refuses the resourceVersion (409) and the loop reads it. Only for objects whose data is all
    ours, so that `mutate` needs no more of them than their metadata (and the caller writes only when the
    data changed). Kept as compact JSON: a few hundred bytes per object, not a few kilobytes of dicts."""

    __slots__ = ("_meta",)

    def __init__(self) -> None:
        self._meta: str | None = None

    @property
    def body(self) -> Body | None:
        """The object as last written, its metadata only (a fresh copy), or None."""
        return None if self._meta is None else {"metadata": json.loads(self._meta)}

    def remember(self, body: Mapping[str, Any] | None) -> None:
        meta = (body or {}).get("metadata")
        if not meta or not meta.get("resourceVersion"):
            self._meta = None
            return
        slim = {k: v for k, v in meta.items() if k != "managedFields"}
        self._meta = json.dumps(slim, separators=(",", ":"))


def write(
    objects: Objects, mutate: Mutate, *, attempts: int = 5, absent: bool = False, known: Known | None = None
) -> Outcome:
    """Bring the object to what `mutate` wants; `absent` skips the first read (a create is expected),
    `known` too (the object as last written is taken as read), and is kept up to date."""
    known = known or Known()
    lost = {409: 0, 404: 0}  # races lost: changed or created meanwhile, deleted meanwhile
    for _ in range(attempts):
        existing = None if absent else (known.body or objects.read())
        try:
            desired = mutate(existing)
        except Exception:  # e.g. TargetConflictError: the object is not ours; next time, read it
            known.remember(None)
            raise
        if desired is None:
            return "unchanged"
        try:
            if isinstance(desired, Verdict):
                if existing is None:
                    return "unchanged"
                objects.delete(_guard(existing, "uid", "resourceVersion"))
                known.remember(None)
                return "deleted"
            _check_size(objects, desired)
            if existing is None:
                known.remember(objects.create(desired))
                return "created"
            meta = {**(desired.get("metadata") or {}), **_guard(existing, "resourceVersion")}
            known.remember(objects.replace({**desired, "metadata": meta}))
            return "updated"
        except ApiException as exc:
            known.remember(None)
            if exc.status == 409:  # created, changed or deleted by someone else meanwhile
                absent = False
                lost[409] += 1
                continue
            if exc.status == 404 and existing is not None:  # deleted meanwhile
                absent = True
                lost[404] += 1
                continue
            raise
    raise TargetConflictError(
        f"{objects.kind} {objects.name} kept changing while being written ({lost[409]} conflict(s) with "
        f"another writer, {lost[404]} time(s) deleted meanwhile); will retry"
    )


def _check_size(objects: Objects, desired: Body) -> None:
    """OutputTooLargeError before a write the API server would refuse (and a retry would repeat)."""
    size = len(json.dumps(desired, separators=(",", ":")))
    if size > MAX_OBJECT_BYTES:
        raise OutputTooLargeError(
            f"{objects.kind} {objects.name} would be {size} bytes, over the {MAX_OBJECT_BYTES}-byte limit of "
            "one object: nothing was written (publish fewer keys or issuers)"
        )


def _guard(existing: Mapping[str, Any], *fields: str) -> dict[str, Any]:
    """The fields of the metadata as read that a write must match (its precondition)."""
    meta = existing.get("metadata") or {}
    return {f: meta[f] for f in fields if meta.get(f) is not None}
