"""The API server's storage and write semantics, without HTTP (server.py serves them).

Namespaces must exist; uid/creationTimestamp/resourceVersion/generation are the server's; 409 on a
stale resourceVersion (updates, patches carrying one, delete preconditions); the status subresource
is isolated from the main resource; writes are admitted (admission.py); a no-op write changes nothing;
finalizers delay deletion; ownerReference garbage collection and namespace deletion remove dependents.
Every change is logged for watches to resume from (`history` events per resource; older: 410).
"""

from __future__ import annotations

import collections
import copy
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from tests.harness.k8s.admission import admit
from tests.harness.k8s.kinds import NAMESPACES, Kind, Obj, ResKey
from tests.harness.k8s.status import ApiError, already_exists, conflict, not_found
from tests.harness.k8s.watch import Watcher, expired, watch_event

EVENT_LOG = 20000
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_IMMUTABLE = ("name", "namespace", "uid", "creationTimestamp", "deletionTimestamp", "generation")
StoreKey = tuple[str | None, str]  # namespace (None: cluster-scoped), name
Event = tuple[int, str, Obj | None, Obj | None]  # resourceVersion, type, old, new


def now_stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Store:
    """The objects of every declared kind, the cluster's resourceVersion and the event log."""

    def __init__(self, kinds: Iterable[Kind], *, history: int = EVENT_LOG, cel: bool = True) -> None:
        self.history = history
        self.cel = cel  # False: CRD `x-kubernetes-validations` rules are ignored (no CEL in this server)
        self.kinds: dict[ResKey, Kind] = {}
        self.objects: dict[ResKey, dict[StoreKey, Obj]] = {}
        self.log: dict[ResKey, collections.deque[Event]] = {}
        self.watchers: list[Watcher] = []
        self.rv = 0
        for kind in kinds:
            self.declare(kind)

    def declare(self, kind: Kind) -> None:
        self.kinds[kind.key] = kind
        self.objects[kind.key] = {}
        self.log[kind.key] = collections.deque(maxlen=self.history)

    # -- reads ----------------------------------------------------------------------------------------

    def get(self, kind: Kind, ns: str | None, name: str) -> Obj:
        """The stored object itself (copy it before handing it out)."""
        obj = self.objects[kind.key].get((ns if kind.namespaced else None, name))
        if obj is None:
            raise not_found(kind, name)
        return obj

    def list_objects(self, kind: Kind, ns: str | None, match: Callable[[Obj], bool]) -> Obj:
        items = [
            copy.deepcopy(o)
            for (ons, _), o in sorted(self.objects[kind.key].items(), key=_sort_key)
            if (ns is None or ons == ns) and match(o)
        ]
        return {
            "apiVersion": kind.api_version,
            "kind": f"{kind.kind}List",
            "metadata": {"resourceVersion": str(self.rv)},
            "items": items,
        }

    def backlog(self, kind: Kind, watcher: Watcher, since: str, *, expire: bool = False) -> list[Obj]:
        """What a new watch is sent first: every object as ADDED (`since` "0"), else the logged events
        after `since`, or a 410 ERROR when the log no longer reaches back that far (or `expire`)."""
        if since == "0":
            return [
                {"type": "ADDED", "object": copy.deepcopy(o)}
                for (ns, _), o in sorted(self.objects[kind.key].items(), key=_sort_key)
                if (watcher.namespace is None or ns == watcher.namespace) and watcher.selector(o)
            ]
        log = self.log[kind.key]
        oldest = log[0][0] if log else self.rv + 1
        if expire or (log and len(log) == log.maxlen and int(since) < oldest - 1):
            return [expired(since)]
        events = (watch_event(watcher, type_, old, new) for rv, type_, old, new in log if rv > int(since))
        return [event for event in events if event is not None]

    # -- writes ---------------------------------------------------------------------------------------

    def create(self, kind: Kind, ns: str | None, body: Obj) -> Obj:
        meta = dict(body.get("metadata") or {})
        if kind.namespaced:
            ns = ns or meta.get("namespace")
            if not ns:
                raise ApiError(400, "BadRequest", "the namespace of the object must be set")
            if kind.key != NAMESPACES and (None, ns) not in self.objects[NAMESPACES]:
                raise ApiError(
                    404, "NotFound", f'namespaces "{ns}" not found', {"name": ns, "kind": "namespaces"}
                )
        name = meta.get("name") or (
            meta["generateName"] + uuid.uuid4().hex[:5] if meta.get("generateName") else None
        )
        if not name:
            raise ApiError(422, "Invalid", f"{kind.kind} is invalid: metadata.name: Required value")
        label = kind.key == NAMESPACES
        if not (_DNS_LABEL if label else _DNS_SUBDOMAIN).match(name) or len(name) > (63 if label else 253):
            what = "a lowercase RFC 1123 label" if label else "a lowercase RFC 1123 subdomain"
            raise ApiError(
                422,
                "Invalid",
                f'{kind.kind} "{name}" is invalid: metadata.name: Invalid value: "{name}": must be {what}',
            )
        key = (ns if kind.namespaced else None, name)
        if key in self.objects[kind.key]:
            raise already_exists(kind, name)
        obj = copy.deepcopy(body)
        if kind.status_subresource:
            obj.pop("status", None)
        obj.update(apiVersion=kind.api_version, kind=kind.kind)
        meta.update(name=name, uid=str(uuid.uuid4()), creationTimestamp=now_stamp())
        meta.pop("resourceVersion", None)
        meta.pop("deletionTimestamp", None)
        if kind.namespaced:
            meta["namespace"] = ns
        if kind.custom:
            meta["generation"] = 1
        obj["metadata"] = meta
        admit(kind, obj, cel=self.cel)
        self._bump(obj)
        self.objects[kind.key][key] = obj
        self._emit(kind, "ADDED", None, obj)
        return copy.deepcopy(obj)

    def write(self, kind: Kind, current: Obj, body: Obj, precondition: str | None, sub: str | None) -> Obj:
        """An update or a patched object (`body`), of the main resource or its status (`sub`)."""
        meta = current["metadata"]
        if precondition and precondition != meta["resourceVersion"]:
            raise conflict(
                kind,
                meta["name"],
                "the object has been modified; please apply your changes to the latest version and try again",
            )
        if sub == "status" and kind.status_subresource:
            new = {**copy.deepcopy(current), "status": copy.deepcopy(body.get("status"))}
            if new["status"] is None:
                new.pop("status")
        elif sub:
            raise ApiError(404, "NotFound", f"the server could not find the requested resource ({sub})")
        else:
            new = copy.deepcopy(body)
            if kind.status_subresource:
                new.pop("status", None)
                if "status" in current:
                    new["status"] = copy.deepcopy(current["status"])
            new_meta = dict(new.get("metadata") or {})
            for immutable in _IMMUTABLE:
                new_meta.pop(immutable, None)
                if immutable in meta:
                    new_meta[immutable] = meta[immutable]
            new["metadata"] = new_meta
        new.update(apiVersion=kind.api_version, kind=kind.kind)
        new["metadata"]["resourceVersion"] = meta["resourceVersion"]
        admit(kind, new, cel=self.cel)
        if new == current:
            return copy.deepcopy(current)  # a no-op write: same resourceVersion, no event
        if kind.custom and _spec_of(new) != _spec_of(current):
            new["metadata"]["generation"] = meta.get("generation", 1) + 1
        self._bump(new)
        store_key = (meta.get("namespace"), meta["name"])
        self.objects[kind.key][store_key] = new
        if new["metadata"].get("deletionTimestamp") and not new["metadata"].get("finalizers"):
            self._remove(kind, store_key, orphan=False)
        else:
            self._emit(kind, "MODIFIED", current, new)
        return copy.deepcopy(new)

    def delete(self, kind: Kind, ns: str | None, name: str, options: Mapping[str, Any]) -> Obj:
        current = self.get(kind, ns, name)
        meta = current["metadata"]
        pre = options.get("preconditions") or {}
        if (pre.get("uid") and pre["uid"] != meta["uid"]) or (
            pre.get("resourceVersion") and pre["resourceVersion"] != meta["resourceVersion"]
        ):
            raise conflict(kind, name, "Precondition failed")
        if meta.get("finalizers"):
            if not meta.get("deletionTimestamp"):
                new = copy.deepcopy(current)
                new["metadata"]["deletionTimestamp"] = now_stamp()
                if kind.custom:
                    new["metadata"]["generation"] = meta.get("generation", 1) + 1
                self._bump(new)
                self.objects[kind.key][(meta.get("namespace"), name)] = new
                self._emit(kind, "MODIFIED", current, new)
                return copy.deepcopy(new)
            return copy.deepcopy(current)
        self._remove(kind, (meta.get("namespace"), name), orphan=options.get("propagationPolicy") == "Orphan")
        return copy.deepcopy(current)

    def _remove(self, kind: Kind, key: StoreKey, *, orphan: bool) -> None:
        """Really remove an object, then collect its garbage: dependents and namespace content."""
        obj = self.objects[kind.key].pop(key)
        gone = {**obj, "metadata": dict(obj["metadata"])}
        self._bump(gone)
        self._emit(kind, "DELETED", obj, gone)
        if kind.key == NAMESPACES:
            for other in self.kinds.values():
                for okey in [k for k in self.objects[other.key] if other.namespaced and k[0] == key[1]]:
                    if okey in self.objects[other.key]:
                        self.delete(other, okey[0], okey[1], {})
        if orphan:
            return
        live = {o["metadata"]["uid"] for objs in self.objects.values() for o in objs.values()}
        for other in self.kinds.values():
            for okey, dependent in list(self.objects[other.key].items()):
                refs = dependent["metadata"].get("ownerReferences") or []
                uids = {r.get("uid") for r in refs}
                if obj["metadata"]["uid"] not in uids or okey not in self.objects[other.key]:
                    continue
                if not uids & live:
                    self.delete(other, okey[0], okey[1], {})
                else:  # other owners remain: the collector drops the dangling reference
                    kept = [r for r in refs if r.get("uid") != obj["metadata"]["uid"]]
                    new = {**dependent, "metadata": {**dependent["metadata"], "ownerReferences": kept}}
                    self._bump(new)
                    self.objects[other.key][okey] = new
                    self._emit(other, "MODIFIED", dependent, new)

    def _bump(self, obj: Obj) -> None:
        """A new resourceVersion for the cluster, given to the object written."""
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)

    def _emit(self, kind: Kind, type_: str, old: Obj | None, new: Obj | None) -> None:
        self.log[kind.key].append((self.rv, type_, copy.deepcopy(old), copy.deepcopy(new)))
        for watcher in self.watchers:
            if watcher.kind is kind:
                event = watch_event(watcher, type_, old, new)
                if event is not None:
                    watcher.queue.put_nowait(event)


def _spec_of(obj: Obj) -> Obj:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


def _sort_key(item: tuple[StoreKey, Obj]) -> tuple[str, str]:
    return (item[0][0] or "", item[0][1])
