"""The emulated API server: kmock's KubernetesEmulator serving the Store (store.py) over HTTP.

Requests for the declared resources (kinds.py) are dispatched by verb to the Store; patches are read
by content type (patches.py); watches stream from the event log (watch.py), with label and field
selectors (selectors.py), `resourceVersion` resumes and `timeoutSeconds`. Other paths (discovery) are
kmock's. Faults can be injected per verb, resource, subresource and name (`inject`).
"""

from __future__ import annotations

import asyncio
import collections
import copy
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp.web
import attrs
import kmock

from tests.harness.k8s.kinds import NAMESPACES, Kind, Obj, ResKey, served_kinds
from tests.harness.k8s.patches import patched
from tests.harness.k8s.selectors import selector
from tests.harness.k8s.status import ApiError
from tests.harness.k8s.store import EVENT_LOG, Store, StoreKey
from tests.harness.k8s.watch import DEFAULT_TIMEOUT, Watcher, bookmark, stream

VERBS = {"list", "watch", "get", "create", "update", "patch", "delete"}
_METHOD_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
_NAMESPACE_PATH = re.compile(r"^/api/v1/namespaces(?:/([^/]+))?(?:/(status|finalize))?/?$")


@dataclass
class Fault:
    action: str
    plural: str
    status: int
    times: int
    subresource: str | None
    name: str | None
    delay: float = 0.0


@attrs.define(kw_only=True)
class ApiServer(kmock.KubernetesEmulator):
    """The emulator with API-server semantics for declared resources (built-ins plus CRDs)."""

    crds: Sequence[Mapping[str, Any]] = ()
    history: int = EVENT_LOG  # watch events kept per resource for resuming; older resumes get 410
    cel: bool = True  # False: CRD `x-kubernetes-validations` rules are ignored (no CEL in this server)
    state: Store = attrs.field(init=False)
    faults: list[Fault] = attrs.field(factory=list, init=False)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.state = Store(served_kinds(self.crds), history=self.history, cel=self.cel)
        for kind in self.state.kinds.values():
            self.resources["/".join(p for p in kind.key if p)] = kmock.ResourceInfo(
                kind=kind.kind,
                namespaced=kind.namespaced,
                verbs=VERBS,
                shortnames=set(kind.shortnames),
                singular=kind.singular or kind.kind.lower(),
                subresources={"status"} if kind.status_subresource else set(),
            )

    @property
    def kinds(self) -> dict[ResKey, Kind]:
        return self.state.kinds

    @property
    def store(self) -> dict[ResKey, dict[StoreKey, Obj]]:
        """The stored objects by resource, then by (namespace, name)."""
        return self.state.objects

    @property
    def watchers(self) -> list[Watcher]:
        return self.state.watchers

    @property
    def rv(self) -> int:
        return self.state.rv

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
                result[(verb(request), resource_of(request))] += 1
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
            resource=kmock.resource(*NAMESPACES),
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
        action = verb(request)
        try:
            fault = self._fault(action, kind, request)
            if fault is not None:
                await asyncio.sleep(fault.delay)
                if action == "watch" and fault.status == 410:  # as a real server says it: in the stream
                    return await self._watch(kind, request, expire=True)
                if fault.status:
                    raise ApiError(fault.status, "InjectedFault", f"injected fault: HTTP {fault.status}")
            if action == "watch":
                return await self._watch(kind, request)
            obj, status = self._dispatch(action, kind, request)
            return aiohttp.web.json_response(obj, status=status)
        except ApiError as exc:
            return exc.response()

    def _fault(self, action: str, kind: Kind, request: kmock.Request) -> Fault | None:
        for fault in self.faults:
            if (
                fault.action in (action, "*")
                and fault.plural == kind.key[2]
                and fault.times > 0
                and fault.subresource == request.subresource
                and fault.name in (None, request.name or _body_name(request))
            ):
                fault.times -= 1
                return fault
        return None

    def _dispatch(self, action: str, kind: Kind, request: kmock.Request) -> tuple[Obj, int]:
        ns, name, state = request.namespace, request.name, self.state
        if action == "list":
            return state.list_objects(kind, ns, selector(request.params)), 200
        if action == "create":
            return state.create(kind, ns, _body(request)), 201
        assert name is not None
        if action == "get":
            return copy.deepcopy(state.get(kind, ns, name)), 200
        if action == "delete":
            return state.delete(kind, ns, name, request.data if isinstance(request.data, dict) else {}), 200
        if action in ("update", "patch"):
            current = state.get(kind, ns, name)
            if action == "update":
                body = _body(request)
                precondition = (body.get("metadata") or {}).get("resourceVersion")
            else:
                ctype = next((v for k, v in request.headers.items() if k.lower() == "content-type"), "")
                body, precondition = patched(kind, current, ctype, request.data)
            return state.write(kind, current, body, precondition, request.subresource), 200
        raise ApiError(405, "MethodNotAllowed", f"{request.method} is not supported")

    async def _watch(
        self, kind: Kind, request: kmock.Request, *, expire: bool = False
    ) -> aiohttp.web.StreamResponse:
        params = request.params
        watcher = Watcher(kind, request.namespace, selector(params))
        since = params.get("resourceVersion") or "0"
        backlog = self.state.backlog(kind, watcher, since, expire=expire)
        raw = request._raw_request
        assert raw is not None
        self.watchers.append(watcher)
        try:
            timeout = float(params.get("timeoutSeconds") or DEFAULT_TIMEOUT)
            marks = params.get("allowWatchBookmarks") in ("true", "1")
            at_end = (lambda: bookmark(kind, str(self.state.rv))) if marks else None
            return await stream(raw, watcher, backlog, timeout, at_end)
        finally:
            self.watchers.remove(watcher)


def verb(request: kmock.Request) -> str:
    """The RBAC verb of a request: get, list, watch, create, update, patch or delete."""
    method = str(request.method.value if hasattr(request.method, "value") else request.method).upper()
    if method == "GET":
        if request.params.get("watch") in ("true", "1"):
            return "watch"
        return "get" if request.name else "list"
    return _METHOD_VERBS.get(method, method.lower())


def resource_of(request: kmock.Request) -> str:
    """A request's resource as RBAC names it: plural[/subresource]."""
    plural = request.resource.plural if request.resource is not None else ""
    return (plural or "") + (f"/{request.subresource}" if request.subresource else "")


def _body(request: kmock.Request) -> Obj:
    if not isinstance(request.data, dict):
        raise ApiError(400, "BadRequest", "the request body must be a JSON object")
    return request.data


def _body_name(request: kmock.Request) -> str | None:
    """The object's name in a create request's body (its URL has none)."""
    data = request.data if isinstance(request.data, dict) else {}
    name = (data.get("metadata") or {}).get("name")
    return str(name) if name else None
