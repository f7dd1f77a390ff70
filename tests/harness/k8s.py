"""kmock's KubernetesEmulator, extended to behave like a real API server where our correctness depends
on it, and run in a thread so sync tests and a separate operator process can talk to it over HTTP.

Enforced: namespaces must exist; uid/creationTimestamp/resourceVersion/generation; 409 on stale
resourceVersion (PUT, patches carrying one, delete preconditions); status subresource isolation;
patch content types (merge, strategic for built-ins, json-patch; 415 for apply); CRD defaulting,
pruning and validation (OpenAPI + CEL `x-kubernetes-validations`, tests/harness/k8s_validation.py)
with the real API server's 422 messages (`cel=False` models an API server without CEL: before
Kubernetes 1.25, or with the feature off);
finalizers; ownerReference garbage collection; namespace deletion; label/field selectors in list and
watch; watch resume from resourceVersion (410 when too old) and `timeoutSeconds`; fault injection.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import copy
import json
import re
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import aiohttp.web
import attrs
import jsonpatch
import kmock
import yaml
from kubernetes import client, config

from tests.harness.k8s_validation import FieldError, aggregate, check, go_numbers
from tests.harness.k8s_validation import apply_defaults as apply_defaults  # these three: for the tests
from tests.harness.k8s_validation import prune as prune
from tests.harness.k8s_validation import validate as validate

T = TypeVar("T")
Obj = dict[str, Any]
ResKey = tuple[str, str, str]  # group, version, plural
VERBS = {"list", "watch", "get", "create", "update", "patch", "delete"}
BUILTINS: list[tuple[ResKey, str, bool]] = [
    (("", "v1", "namespaces"), "Namespace", False),
    (("", "v1", "configmaps"), "ConfigMap", True),
    (("", "v1", "secrets"), "Secret", True),
    (("", "v1", "events"), "Event", True),
    (("events.k8s.io", "v1", "events"), "Event", True),
    (("coordination.k8s.io", "v1", "leases"), "Lease", True),
]
EVENT_LOG = 20000
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_NAMESPACE_PATH = re.compile(r"^/api/v1/namespaces(?:/([^/]+))?(?:/(status|finalize))?/?$")


class ApiError(Exception):
    """A Kubernetes Status response."""

    def __init__(
        self, code: int, reason: str, message: str, details: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, dict(details or {})

    def response(self) -> aiohttp.web.Response:
        body = {
            "apiVersion": "v1",
            "kind": "Status",
            "metadata": {},
            "status": "Failure",
            "code": self.code,
            "reason": self.reason,
            "message": self.message,
            "details": self.details,
        }
        # Like the API server's priority-and-fairness rejections: 429 says when to come back.
        headers = {"Retry-After": "1"} if self.code == 429 else None
        return aiohttp.web.json_response(body, status=self.code, headers=headers)


@dataclass
class Kind:
    """What the server knows of one resource."""

    key: ResKey
    kind: str
    namespaced: bool
    status_subresource: bool = False
    schema: Mapping[str, Any] | None = None
    custom: bool = False

    @property
    def api_version(self) -> str:
        return f"{self.key[0]}/{self.key[1]}" if self.key[0] else self.key[1]

    @property
    def qualified(self) -> str:
        return f"{self.key[2]}.{self.key[0]}" if self.key[0] else self.key[2]


@dataclass
class Watcher:
    kind: Kind
    namespace: str | None
    selector: Callable[[Obj], bool]
    queue: asyncio.Queue[Obj | None] = field(default_factory=asyncio.Queue)


@dataclass
class Fault:
    action: str
    plural: str
    status: int
    times: int
    subresource: str | None
    name: str | None
    delay: float = 0.0


def now_stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- selectors ----------------------------------------------------------------------------------------

_SET_EXPR = re.compile(r"^\s*(!)?\s*([\w./-]+)\s*(?:(in|notin)\s*\(([^)]*)\)|(==|=|!=)\s*([\w./-]*))?\s*$")


def _requirement(part: str) -> Callable[[Mapping[str, str]], bool]:
    match = _SET_EXPR.match(part)
    if match is None:
        raise ApiError(400, "BadRequest", f"unable to parse requirement: {part!r}")
    neg, key, setop, values, op, value = match.groups()

    def test(labels: Mapping[str, str]) -> bool:
        if setop == "in":
            return labels.get(key) in {v.strip() for v in values.split(",")}
        if setop == "notin":
            return labels.get(key) not in {v.strip() for v in values.split(",")}
        if op:
            return (labels.get(key) == value) == (op != "!=")
        return (key in labels) != bool(neg)

    return test


def label_selector(text: str) -> Callable[[Obj], bool]:
    """A predicate for a label selector (equality- and set-based)."""
    tests = [_requirement(p) for p in re.split(r",(?![^(]*\))", text) if p.strip()]
    return lambda obj: all(t((obj.get("metadata") or {}).get("labels") or {}) for t in tests)


def field_selector(text: str) -> Callable[[Obj], bool]:
    """metadata.name / metadata.namespace equality selectors."""
    tests: list[tuple[str, str, bool]] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        match = re.match(r"^metadata\.(name|namespace)\s*(==|=|!=)\s*(.*)$", part)
        if match is None:
            raise ApiError(400, "BadRequest", f'field label not supported: "{part}"')
        tests.append((match[1], match[3], match[2] != "!="))
    return lambda obj: all((obj["metadata"].get(attr) == value) == eq for attr, value, eq in tests)


# -- patches ------------------------------------------------------------------------------------------


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# -- the server ---------------------------------------------------------------------------------------


@attrs.define(kw_only=True)
class ApiServer(kmock.KubernetesEmulator):
    """The emulator with API-server semantics for declared resources (built-ins plus CRDs)."""

    crds: Sequence[Mapping[str, Any]] = ()
    history: int = EVENT_LOG  # watch events kept per resource for resuming; older resumes get 410
    cel: bool = True  # False: CRD `x-kubernetes-validations` rules are ignored (no CEL in this server)
    kinds: dict[ResKey, Kind] = attrs.field(factory=dict, init=False)
    store: dict[ResKey, dict[tuple[str | None, str], Obj]] = attrs.field(factory=dict, init=False)
    rv: int = attrs.field(default=0, init=False)
    log: dict[ResKey, collections.deque[tuple[int, str, Obj | None, Obj | None]]] = attrs.field(
        factory=dict, init=False
    )
    watchers: list[Watcher] = attrs.field(factory=list, init=False)
    faults: list[Fault] = attrs.field(factory=list, init=False)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        for key, kind, namespaced in BUILTINS:
            self._declare(Kind(key, kind, namespaced))
        for crd in self.crds:
            spec = crd["spec"]
            for version in spec["versions"]:
                if version.get("served", True):
                    self._declare(
                        Kind(
                            (spec["group"], version["name"], spec["names"]["plural"]),
                            spec["names"]["kind"],
                            spec["scope"] == "Namespaced",
                            "status" in (version.get("subresources") or {}),
                            version["schema"]["openAPIV3Schema"],
                            custom=True,
                        ),
                        shortnames=spec["names"].get("shortNames", []),
                        singular=spec["names"].get("singular"),
                    )

    def _declare(self, kind: Kind, shortnames: Sequence[str] = (), singular: str | None = None) -> None:
        self.kinds[kind.key] = kind
        self.store[kind.key] = {}
        self.log[kind.key] = collections.deque(maxlen=self.history)
        self.resources["/".join(p for p in kind.key if p)] = kmock.ResourceInfo(
            kind=kind.kind,
            namespaced=kind.namespaced,
            verbs=VERBS,
            shortnames=set(shortnames),
            singular=singular or kind.kind.lower(),
            subresources={"status"} if kind.status_subresource else set(),
        )

    # -- test helpers ---------------------------------------------------------------------------------

    def inject(
        self,
        action: str,
        plural: str,
        *,
        status: int = 500,
        times: int = 1,
        subresource: str | None = None,
        name: str | None = None,
        delay: float = 0.0,
    ) -> None:
        """Fail the next `times` matching requests with `status` before touching any state; with a
        `delay`, hold each first (a stalled server: clients time out); status 0 then serves it."""
        self.faults.append(Fault(action, plural, status, times, subresource, name, delay))

    def counts(self) -> collections.Counter[tuple[str, str]]:
        """Requests served so far by (verb, plural[/subresource])."""
        result: collections.Counter[tuple[str, str]] = collections.Counter()
        for request in self._requests:
            if request.resource is not None and request.resource.plural:
                plural = request.resource.plural + (f"/{request.subresource}" if request.subresource else "")
                result[(_verb(request), plural)] += 1
        return result

    def objects_of(self, plural: str) -> list[Obj]:
        return [o for k, objs in self.store.items() if k[2] == plural for o in objs.values()]

    def shutdown_watches(self) -> None:
        for watcher in self.watchers:
            watcher.queue.put_nowait(None)

    # -- dispatch -------------------------------------------------------------------------------------

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        """kmock's path parser reads /api/v1/namespaces[/NAME] as a namespace scope: parse those here."""
        match = _NAMESPACE_PATH.match(raw_request.path)
        if match is None:
            return await super().__call__(raw_request)
        body = await raw_request.read()
        request = kmock.Request(
            id=len(self._requests),
            method=raw_request.method,
            url=raw_request.url,
            params=dict(raw_request.query),
            headers=dict(raw_request.headers),
            body=body,
            data=json.loads(body) if body else None,
            resource=kmock.resource("", "v1", "namespaces"),
            name=match[1],
            subresource=match[2],
            raw_request=raw_request,
        )
        self._requests.append(request)
        return await self._handle(request)

    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        res = request.resource
        kind = self.kinds.get((res.group or "", res.version or "", res.plural or "")) if res else None
        if kind is None or res is None or not res.plural:
            return await kmock.KubernetesScaffold._handle(self, request)
        verb = _verb(request)
        try:
            fault = self._fault(verb, kind, request)
            if fault is not None:
                await asyncio.sleep(fault.delay)
                if verb == "watch" and fault.status == 410:  # as a real server says it: in the stream
                    return await self._watch(kind, request, expired=True)
                if fault.status:
                    raise ApiError(fault.status, "InjectedFault", f"injected fault: HTTP {fault.status}")
            if verb == "watch":
                return await self._watch(kind, request)
            obj, status = self._dispatch(verb, kind, request)
            return aiohttp.web.json_response(obj, status=status)
        except ApiError as exc:
            return exc.response()

    def _fault(self, verb: str, kind: Kind, request: kmock.Request) -> Fault | None:
        for fault in self.faults:
            if (
                fault.action in (verb, "*")
                and fault.plural == kind.key[2]
                and fault.times > 0
                and fault.subresource == request.subresource
                and fault.name in (None, request.name or _body_name(request))
            ):
                fault.times -= 1
                return fault
        return None

    def _dispatch(self, verb: str, kind: Kind, request: kmock.Request) -> tuple[Obj, int]:
        ns, name, params = request.namespace, request.name, request.params
        if verb == "list":
            return self._list(kind, ns, params), 200
        if verb == "create":
            return self._create(kind, ns, _body(request)), 201
        assert name is not None
        if verb == "get":
            return copy.deepcopy(self._get(kind, ns, name)), 200
        if verb == "delete":
            return self._delete(kind, ns, name, request.data if isinstance(request.data, dict) else {}), 200
        if verb in ("update", "patch"):
            current = self._get(kind, ns, name)
            if verb == "update":
                body = _body(request)
                precondition = (body.get("metadata") or {}).get("resourceVersion")
            else:
                body, precondition = self._patched(kind, current, request)
            return self._write(kind, current, body, precondition, request.subresource), 200
        raise ApiError(405, "MethodNotAllowed", f"{request.method} is not supported")

    # -- verbs ----------------------------------------------------------------------------------------

    def _get(self, kind: Kind, ns: str | None, name: str) -> Obj:
        obj = self.store[kind.key].get((ns if kind.namespaced else None, name))
        if obj is None:
            raise ApiError(
                404,
                "NotFound",
                f'{kind.qualified} "{name}" not found',
                {"name": name, "group": kind.key[0], "kind": kind.key[2]},
            )
        return obj

    def _list(self, kind: Kind, ns: str | None, params: Mapping[str, str]) -> Obj:
        match = _selector(params)
        items = [
            copy.deepcopy(o)
            for (ons, _), o in sorted(self.store[kind.key].items(), key=_sort_key)
            if (ns is None or ons == ns) and match(o)
        ]
        return {
            "apiVersion": kind.api_version,
            "kind": f"{kind.kind}List",
            "metadata": {"resourceVersion": str(self.rv)},
            "items": items,
        }

    def _create(self, kind: Kind, ns: str | None, body: Obj) -> Obj:
        meta = dict(body.get("metadata") or {})
        if kind.namespaced:
            ns = ns or meta.get("namespace")
            if not ns:
                raise ApiError(400, "BadRequest", "the namespace of the object must be set")
            if (
                kind.key != ("", "v1", "namespaces")
                and (None, ns) not in self.store[("", "v1", "namespaces")]
            ):
                raise ApiError(
                    404, "NotFound", f'namespaces "{ns}" not found', {"name": ns, "kind": "namespaces"}
                )
        name = meta.get("name") or (
            meta["generateName"] + uuid.uuid4().hex[:5] if meta.get("generateName") else None
        )
        if not name:
            raise ApiError(422, "Invalid", f"{kind.kind} is invalid: metadata.name: Required value")
        label = kind.key == ("", "v1", "namespaces")
        if not (_DNS_LABEL if label else _DNS_SUBDOMAIN).match(name) or len(name) > (63 if label else 253):
            what = "a lowercase RFC 1123 label" if label else "a lowercase RFC 1123 subdomain"
            raise ApiError(
                422,
                "Invalid",
                f'{kind.kind} "{name}" is invalid: metadata.name: Invalid value: "{name}": must be {what}',
            )
        key = (ns if kind.namespaced else None, name)
        if key in self.store[kind.key]:
            raise ApiError(
                409,
                "AlreadyExists",
                f'{kind.qualified} "{name}" already exists',
                {"name": name, "group": kind.key[0], "kind": kind.key[2]},
            )
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
        self._admit(kind, obj)
        self.rv += 1
        meta["resourceVersion"] = str(self.rv)
        self.store[kind.key][key] = obj
        self._emit(kind, "ADDED", None, obj)
        return copy.deepcopy(obj)

    def _patched(self, kind: Kind, current: Obj, request: kmock.Request) -> tuple[Obj, str | None]:
        ctype = next((v for k, v in request.headers.items() if k.lower() == "content-type"), "")
        ctype = ctype.split(";")[0].strip()
        data = request.data
        if ctype == "application/json-patch+json":
            if not isinstance(data, list):
                raise ApiError(
                    400,
                    "BadRequest",
                    "json: cannot unmarshal object into Go value of type []handlers.jsonPatchOp",
                )
            try:
                return jsonpatch.apply_patch(current, data), None
            except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
                raise ApiError(422, "Invalid", f"the JSON patch could not be applied: {exc}") from None
        if ctype == "application/strategic-merge-patch+json" and kind.custom:
            raise ApiError(
                415,
                "UnsupportedMediaType",
                "the body of the request was in an unknown format - accepted media types include: "
                "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
            )
        if ctype in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
            if not isinstance(data, dict):
                raise ApiError(400, "BadRequest", "a merge patch must be a JSON object")
            return merge_patch(current, data), (data.get("metadata") or {}).get("resourceVersion")
        raise ApiError(
            415,
            "UnsupportedMediaType",
            f"the emulator does not support {ctype or 'no'} patches (server-side apply is not emulated)",
        )

    def _write(self, kind: Kind, current: Obj, body: Obj, precondition: str | None, sub: str | None) -> Obj:
        meta = current["metadata"]
        if precondition and precondition != meta["resourceVersion"]:
            raise ApiError(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on {kind.qualified} "{meta["name"]}": '
                "the object has been modified; please apply your changes to the latest version "
                "and try again",
                {"name": meta["name"], "kind": kind.key[2]},
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
            for immutable in (
                "name",
                "namespace",
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "generation",
            ):
                new_meta.pop(immutable, None)
                if immutable in meta:
                    new_meta[immutable] = meta[immutable]
            new["metadata"] = new_meta
        new.update(apiVersion=kind.api_version, kind=kind.kind)
        new["metadata"]["resourceVersion"] = meta["resourceVersion"]
        self._admit(kind, new)
        if new == current:
            return copy.deepcopy(current)  # a no-op write: same resourceVersion, no event
        if kind.custom and _spec_of(new) != _spec_of(current):
            new["metadata"]["generation"] = meta.get("generation", 1) + 1
        self.rv += 1
        new["metadata"]["resourceVersion"] = str(self.rv)
        store_key = (meta.get("namespace"), meta["name"])
        self.store[kind.key][store_key] = new
        if new["metadata"].get("deletionTimestamp") and not new["metadata"].get("finalizers"):
            self._remove(kind, store_key, orphan=False)
        else:
            self._emit(kind, "MODIFIED", current, new)
        return copy.deepcopy(new)

    def _delete(self, kind: Kind, ns: str | None, name: str, options: Mapping[str, Any]) -> Obj:
        current = self._get(kind, ns, name)
        meta = current["metadata"]
        pre = options.get("preconditions") or {}
        if (pre.get("uid") and pre["uid"] != meta["uid"]) or (
            pre.get("resourceVersion") and pre["resourceVersion"] != meta["resourceVersion"]
        ):
            raise ApiError(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on {kind.qualified} "{name}": Precondition failed',
                {"name": name, "kind": kind.key[2]},
            )
        if meta.get("finalizers"):
            if not meta.get("deletionTimestamp"):
                new = copy.deepcopy(current)
                new["metadata"]["deletionTimestamp"] = now_stamp()
                if kind.custom:
                    new["metadata"]["generation"] = meta.get("generation", 1) + 1
                self.rv += 1
                new["metadata"]["resourceVersion"] = str(self.rv)
                self.store[kind.key][(meta.get("namespace"), name)] = new
                self._emit(kind, "MODIFIED", current, new)
                return copy.deepcopy(new)
            return copy.deepcopy(current)
        self._remove(kind, (meta.get("namespace"), name), orphan=options.get("propagationPolicy") == "Orphan")
        return copy.deepcopy(current)

    def _remove(self, kind: Kind, key: tuple[str | None, str], *, orphan: bool) -> None:
        """Really remove an object, then collect its garbage: dependents and namespace content."""
        obj = self.store[kind.key].pop(key)
        self.rv += 1
        gone = {**obj, "metadata": {**obj["metadata"], "resourceVersion": str(self.rv)}}
        self._emit(kind, "DELETED", obj, gone)
        if kind.key == ("", "v1", "namespaces"):
            for other in self.kinds.values():
                for okey in [k for k in self.store[other.key] if other.namespaced and k[0] == key[1]]:
                    if okey in self.store[other.key]:
                        self._delete(other, okey[0], okey[1], {})
        if orphan:
            return
        live = {o["metadata"]["uid"] for objs in self.store.values() for o in objs.values()}
        for other in self.kinds.values():
            for okey, dependent in list(self.store[other.key].items()):
                refs = dependent["metadata"].get("ownerReferences") or []
                uids = {r.get("uid") for r in refs}
                if obj["metadata"]["uid"] not in uids or okey not in self.store[other.key]:
                    continue
                if not uids & live:
                    self._delete(other, okey[0], okey[1], {})
                else:  # other owners remain: the collector drops the dangling reference
                    kept = [r for r in refs if r.get("uid") != obj["metadata"]["uid"]]
                    new = {**dependent, "metadata": {**dependent["metadata"], "ownerReferences": kept}}
                    self.rv += 1
                    new["metadata"]["resourceVersion"] = str(self.rv)
                    self.store[other.key][okey] = new
                    self._emit(other, "MODIFIED", dependent, new)

    def _admit(self, kind: Kind, obj: Obj) -> None:
        """Default, prune and validate a custom resource like the API server does (k8s_validation.py);
        what it stores has whole numbers as ints, as Go's JSON writes float64s back."""
        if kind.key == ("", "v1", "secrets") and "stringData" in obj:  # write-only convenience field
            encoded = {
                k: base64.b64encode(str(v).encode()).decode() for k, v in obj.pop("stringData").items()
            }
            obj["data"] = {**(obj.get("data") or {}), **encoded}
        if kind.schema is None:
            return
        # apiVersion, kind and metadata are kept aside, as the API server's schema coercion does
        implicit: Obj = {k: obj.pop(k) for k in ("apiVersion", "kind", "metadata") if k in obj}
        apply_defaults(obj, kind.schema)
        prune(obj, kind.schema)
        rest = dict(obj)
        obj.clear()
        obj.update(implicit, **rest)
        errors = check(obj, kind.schema, cel=self.cel)
        if errors:
            raise invalid(kind, obj["metadata"].get("name"), errors)
        go_numbers(obj)

    # -- watching -------------------------------------------------------------------------------------

    def _emit(self, kind: Kind, type_: str, old: Obj | None, new: Obj | None) -> None:
        rv = self.rv
        self.log[kind.key].append((rv, type_, copy.deepcopy(old), copy.deepcopy(new)))
        for watcher in self.watchers:
            if watcher.kind is kind:
                event = _watch_event(watcher, type_, old, new)
                if event is not None:
                    watcher.queue.put_nowait(event)

    async def _watch(
        self, kind: Kind, request: kmock.Request, *, expired: bool = False
    ) -> aiohttp.web.StreamResponse:
        params = request.params
        watcher = Watcher(kind, request.namespace, _selector(params))
        since = params.get("resourceVersion") or "0"
        backlog: list[Obj] = []
        if since == "0":
            backlog = [
                {"type": "ADDED", "object": copy.deepcopy(o)}
                for (ns, _), o in sorted(self.store[kind.key].items(), key=_sort_key)
                if (watcher.namespace is None or ns == watcher.namespace) and watcher.selector(o)
            ]
        else:
            log = self.log[kind.key]
            oldest = log[0][0] if log else self.rv + 1
            if expired or (log and len(log) == log.maxlen and int(since) < oldest - 1):
                backlog = [
                    {
                        "type": "ERROR",
                        "object": {
                            "kind": "Status",
                            "apiVersion": "v1",
                            "status": "Failure",
                            "code": 410,
                            "reason": "Expired",
                            "message": f"too old resource version: {since}",
                        },
                    }
                ]
            else:
                for rv, type_, old, new in log:
                    event = _watch_event(watcher, type_, old, new) if rv > int(since) else None
                    if event is not None:
                        backlog.append(event)
        self.watchers.append(watcher)
        raw = request._raw_request
        assert raw is not None
        response = aiohttp.web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(raw)
        timeout = float(params.get("timeoutSeconds") or 1800)
        deadline = asyncio.get_running_loop().time() + timeout
        try:
            for event in backlog:
                await response.write(json.dumps(event).encode() + b"\n")
            while backlog[-1:] == [] or backlog[-1]["type"] != "ERROR":
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    break
                try:
                    item = await asyncio.wait_for(watcher.queue.get(), remaining)
                except TimeoutError:
                    break
                if item is None:
                    break
                await response.write(json.dumps(item).encode() + b"\n")
            await response.write_eof()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self.watchers.remove(watcher)
        return response


def invalid(kind: Kind, name: str | None, errors: list[FieldError]) -> ApiError:
    """The 422 of apierrors.NewInvalid: a cause per error, the message listing each one once."""
    causes = [{"reason": e.type, "message": e.body, "field": e.field} for e in errors]
    return ApiError(
        422,
        "Invalid",
        f'{kind.kind}.{kind.key[0]} "{name}" is invalid: {aggregate(errors)}',
        {"name": name, "group": kind.key[0], "kind": kind.kind, "causes": causes},
    )


def _watch_event(watcher: Watcher, type_: str, old: Obj | None, new: Obj | None) -> Obj | None:
    """The event one watcher sees: selector transitions become ADDED/DELETED."""
    obj = new if new is not None else old
    assert obj is not None
    if watcher.namespace is not None and obj["metadata"].get("namespace") != watcher.namespace:
        return None
    was = old is not None and type_ != "ADDED" and watcher.selector(old)
    now = type_ != "DELETED" and new is not None and watcher.selector(new)
    if type_ == "DELETED":
        return {"type": "DELETED", "object": copy.deepcopy(new)} if was or watcher.selector(obj) else None
    if was and now:
        return {"type": type_, "object": copy.deepcopy(new)}
    if now:
        return {"type": "ADDED", "object": copy.deepcopy(new)}
    if was:
        return {"type": "DELETED", "object": copy.deepcopy(new)}
    return None


def _selector(params: Mapping[str, str]) -> Callable[[Obj], bool]:
    labels = label_selector(params.get("labelSelector", ""))
    fields = field_selector(params.get("fieldSelector", ""))
    return lambda obj: labels(obj) and fields(obj)


def _verb(request: kmock.Request) -> str:
    method = str(request.method.value if hasattr(request.method, "value") else request.method).upper()
    if method == "GET":
        if request.params.get("watch") in ("true", "1"):
            return "watch"
        return "get" if request.name else "list"
    return {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(
        method, method.lower()
    )


def _body(request: kmock.Request) -> Obj:
    if not isinstance(request.data, dict):
        raise ApiError(400, "BadRequest", "the request body must be a JSON object")
    return request.data


def _body_name(request: kmock.Request) -> str | None:
    """The object's name in a create request's body (its URL has none)."""
    data = request.data if isinstance(request.data, dict) else {}
    name = (data.get("metadata") or {}).get("name")
    return str(name) if name else None


def _spec_of(obj: Obj) -> Obj:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


def _sort_key(item: tuple[tuple[str | None, str], Obj]) -> tuple[str, str]:
    return (item[0][0] or "", item[0][1])


# -- running it ---------------------------------------------------------------------------------------


def load_crds(directory: Path) -> list[Obj]:
    """Every CustomResourceDefinition in the YAML files of a directory."""
    docs = [d for p in sorted(directory.glob("*.yaml")) for d in yaml.safe_load_all(p.read_text()) if d]
    return [d for d in docs if d.get("kind") == "CustomResourceDefinition"]


class EmulatedCluster:
    """The ApiServer on a loopback port, in a thread with its own event loop.

    `cel=False` serves the CRDs without their CEL rules, like an API server older than Kubernetes 1.25.
    Subclasses may serve a subclass of ApiServer (`server`).
    """

    server: type[ApiServer] = ApiServer

    def __init__(
        self, crds: Sequence[Mapping[str, Any]] = (), *, history: int = EVENT_LOG, cel: bool = True
    ) -> None:
        self.crds = crds
        self.history = history
        self.cel = cel
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name="k8s-emulator")
        self._stop: asyncio.Event | None = None
        self._serving: Any = None
        self.api: ApiServer | None = None
        self.url = ""

    def __enter__(self) -> EmulatedCluster:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(30)
        return self

    async def _start(self) -> None:
        self._stop = asyncio.Event()
        started = asyncio.get_running_loop().create_future()

        async def serve() -> None:
            async with (
                self.server(crds=self.crds, history=self.history, cel=self.cel) as api,
                kmock.Server(api, host="127.0.0.1") as server,
            ):
                self.api = api
                self.url = str(server.url).rstrip("/")
                started.set_result(None)
                assert self._stop is not None
                await self._stop.wait()
                api.shutdown_watches()
                await asyncio.sleep(0.05)

        self._serving = asyncio.get_running_loop().create_task(serve())
        await started

    def call(self, fn: Callable[[ApiServer], T]) -> T:
        """Run `fn(api)` in the server's loop (thread-safe inspection and fault injection)."""

        async def run() -> T:
            assert self.api is not None
            return fn(self.api)

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(10)

    def write_kubeconfig(self, path: Path) -> Path:
        path.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "current-context": "emulator",
                    "clusters": [{"name": "emulator", "cluster": {"server": self.url}}],
                    "users": [{"name": "emulator", "user": {}}],
                    "contexts": [
                        {"name": "emulator", "context": {"cluster": "emulator", "user": "emulator"}}
                    ],
                }
            )
        )
        return path

    def api_client(self, path: Path) -> client.ApiClient:
        api: client.ApiClient = config.new_client_from_config(str(self.write_kubeconfig(path)))  # type: ignore[no-untyped-call]
        return api

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        async def stop() -> None:
            assert self._stop is not None
            self._stop.set()
            await asyncio.wait_for(self._serving, 10)

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(15)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


def iter_events(lines: Iterator[bytes]) -> Iterator[Obj]:
    """Parse a watch stream (for tests)."""
    for line in lines:
        if line.strip():
            yield json.loads(line)
