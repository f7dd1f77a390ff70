"""In-process fakes for the engine: a Kube, a Fetcher and a clock (no sockets, no sleeps).

`Rig` wires an Engine to them and drives it step by step: `settle()` runs all work due now (and
the work that makes due now), `advance(s)` moves the clock first. A provider's caching headers may be
dated by the clock at each answer, and an answer may take time (the clock moves while it is given).
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import itertools
import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import trustme
from kubernetes.client.exceptions import ApiException

from jwks_operator.engine.engine import Backoff, Engine
from jwks_operator.engine.scheduler import Clock, Item
from jwks_operator.fetch.fetcher import Fetcher, FetchResult
from jwks_operator.kube.adapter import Kube, Owner, PublishResult, SecretKey, TargetKind
from jwks_operator.kube.lanes import Lane
from jwks_operator.model.errors import KindNotServedError, SecretRefError
from jwks_operator.model.names import API_VERSION, KIND
from jwks_operator.publish.gateways import ObjectRef
from jwks_operator.publish.outputs import aggregate
from jwks_operator.publish.writes import Body, Mutate, Outcome, write
from jwks_operator.resource.spec import CaBundleRef
from tests.material import ec_key, public_jwk

CA_PEM = trustme.CA().cert_pem.bytes().decode()  # a real certificate, as a caBundleRef must hold

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
T = TypeVar("T")
NS = "ns"
OutputKey = tuple[str, str, str]  # (kind, namespace, name)
Headers = dict[str, str] | Callable[[datetime], dict[str, str]]  # fixed, or made for the time of an answer


def jwk(n: int) -> dict[str, Any]:
    """A distinct public EC key with kid k<n>."""
    return public_jwk(ec_key("P-256", n), kid=f"k{n}", alg="ES256", use="sig")


def at(seconds: float) -> str:
    """T0 plus `seconds` as a status timestamp."""
    return (T0 + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


class FakeClock(Clock):
    """Time that moves only when told; `sleep()` returns once `advance()` has passed its end."""

    def __init__(self, start: datetime = T0) -> None:
        self.wall = start
        self.mono = self.origin = 1000.0  # monotonic time at `start`
        self.sleeps: list[float] = []
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def now(self) -> datetime:
        return self.wall

    def monotonic(self) -> float:
        return self.mono

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sleepers.append((self.mono + seconds, future))
        await future

    def elapse(self, seconds: float) -> None:
        """Time passing during a blocking call, in its thread: the clock moves, no sleeper is woken
        there (the next `advance()` wakes those due)."""
        self.wall += timedelta(seconds=seconds)
        self.mono += seconds

    def advance(self, seconds: float) -> None:
        self.elapse(seconds)
        for end, future in self._sleepers:
            if end <= self.mono and not future.done():
                future.set_result(None)
        self._sleepers = [(end, f) for end, f in self._sleepers if not f.done()]


class Gate:
    """Holds a FakeKube call in its thread until `open()`: a test interleaves other work meanwhile."""

    def __init__(self) -> None:
        self._reached = threading.Event()
        self._opened = threading.Event()

    def hold(self) -> None:
        self._reached.set()
        if not self._opened.wait(5):
            raise TimeoutError("the gate was never opened")

    def open(self) -> None:
        self._opened.set()

    async def reached(self) -> None:
        """Wait (in real time, a few seconds at most) until a call is held."""
        if not await asyncio.to_thread(self._reached.wait, 5):
            raise AssertionError("no call reached the gate")


class MemoryObject:
    """One named object in an in-memory store (writes.Objects), with resourceVersion like the API's."""

    def __init__(self, store: dict[ObjectRef, Body], ref: ObjectRef) -> None:
        self.store, self.ref, self.kind, self.name = store, ref, ref.kind, ref.name

    def read(self) -> Body | None:
        found = self.store.get(self.ref)
        return copy.deepcopy(found) if found is not None else None

    def create(self, body: Body) -> Body:
        if self.ref in self.store:
            raise ApiException(status=409)
        self.store[self.ref] = self._stored(body, "1")
        return copy.deepcopy(self.store[self.ref])

    def replace(self, body: Body) -> Body:
        current = self.store.get(self.ref)
        if current is None:
            raise ApiException(status=404)
        version = current["metadata"]["resourceVersion"]
        if body["metadata"].get("resourceVersion") != version:
            raise ApiException(status=409)
        self.store[self.ref] = self._stored(body, str(int(version) + 1))
        return copy.deepcopy(self.store[self.ref])

    def delete(self, preconditions: Mapping[str, Any]) -> None:
        if self.store.pop(self.ref, None) is None:
            raise ApiException(status=404)

    @staticmethod
    def _stored(body: Body, version: str) -> Body:
        stored = copy.deepcopy(body)
        stored["metadata"]["resourceVersion"] = version
        return stored


class FakeKube(Kube):
    """The API calls the engine makes, kept in memory and recorded in order in `calls`."""

    def __init__(self) -> None:  # no API client
        self.calls: list[tuple[Any, ...]] = []
        self.from_known: list[bool] = []  # per publish: started from the target as last written
        self.outputs: dict[OutputKey, dict[str, str]] = {}
        self.objects: dict[ObjectRef, Body] = {}  # gateway outputs' objects, as written by write_output
        self.finalizers: dict[tuple[str, str], list[str]] = {}  # JwtSecrets' finalizers, as set
        self.statuses: dict[tuple[str, str], dict[str, Any]] = {}
        self.events: list[tuple[str, str, str]] = []  # (type, reason, message)
        self.secrets: dict[tuple[str, str], dict[str, bytes]] = {}
        self.hmac_export: set[tuple[str, str]] = set()  # Secrets whose owner lets their key leave Secrets
        self.fail: dict[str, list[Exception]] = {}  # method name -> what its next calls raise
        self.gates: dict[str, Gate] = {}  # method name -> the gate its next call waits at
        self.ca_bundles: dict[tuple[str, str], str] = {}  # (namespace, name) -> PEM; default: CA_PEM
        self.unserved: set[str] = set()  # kinds the API server does not serve (a gateway's CRD absent)
        self.metadata: dict[tuple[str, str], dict[str, Any]] = {}  # JwtSecrets' metadata, as last applied
        self.version = 1000  # the resourceVersion a status patch leaves

    def _call(self, *call: Any) -> None:
        self.calls.append(call)
        gate = self.gates.pop(call[0], None)
        if gate is not None:
            gate.hold()
        if self.fail.get(call[0]):
            raise self.fail[call[0]].pop(0)

    def called(self, *methods: str) -> list[tuple[Any, ...]]:
        """The recorded calls to these methods, in order."""
        return [c for c in self.calls if c[0] in methods]

    def writes(self) -> list[tuple[Any, ...]]:
        return self.called("publish", "publish_shared", "delete_owned")

    def read_secret_key(
        self, namespace: str, name: str, key: str, jwtsecret: str | None = None, uid: str | None = None
    ) -> SecretKey:
        self._call("read_secret_key", name, key)
        try:
            return SecretKey(self.secrets[(namespace, name)][key], (namespace, name) in self.hmac_export)
        except KeyError:
            raise SecretRefError(f"spec.static.secretRef: Secret {name} not found") from None

    def read_ca_bundle(self, namespace: str, ref: CaBundleRef) -> str:
        self._call("read_ca_bundle", ref.name)
        return self.ca_bundles.get((namespace, ref.name), CA_PEM)

    def publish(
        self, kind: TargetKind, owner: Owner, name: str, data: Any, *, new: bool = False, known: Any = None
    ) -> PublishResult:
        self._call("publish", kind, name)
        # Whether the write started from what this process last wrote (no read), as Kube.publish would.
        self.from_known.append(known is not None and known.body is not None)
        if known is not None:
            known.remember({"metadata": {"name": name, "resourceVersion": str(len(self.from_known))}})
        key = (kind, owner.namespace, name)
        existing = self.outputs.get(key)
        self.outputs[key] = dict(data)
        if existing is None:
            return "created"
        return "unchanged" if existing == dict(data) else "updated"

    def publish_shared(self, kind: TargetKind, owner: Owner, name: str, part: Any) -> Any:
        self._call("publish_shared", kind, name, owner.name, part is not None)
        key = (kind, owner.namespace, name)
        existing = self.outputs.get(key)
        if existing is None and part is None:
            return "unchanged"
        merged = aggregate(existing or {}, owner.name, part)
        if not [k for k in merged if k.endswith(".jwks.json")]:
            del self.outputs[key]
            return "deleted"
        self.outputs[key] = merged
        if existing is None:
            return "created"
        return "unchanged" if existing == merged else "updated"

    def set_finalizers(self, namespace: str, name: str, finalizers: list[str], resource_version: str) -> None:
        self._call("set_finalizers", name, list(finalizers))
        self.finalizers[(namespace, name)] = list(finalizers)

    def write_output(self, ref: ObjectRef, mutate: Mutate) -> Outcome:
        self._call("write_output", ref.kind, ref.name)
        if ref.kind in self.unserved:  # as kube.objects reads a 404 that names no object
            raise KindNotServedError(
                f"the API server does not serve {ref.kind} (is the gateway's CRD installed?)"
            )
        return write(MemoryObject(self.objects, ref), mutate)

    def delete_owned(self, kind: TargetKind, owner: Owner, name: str) -> bool:
        self._call("delete_owned", kind, name)
        return self.outputs.pop((kind, owner.namespace, name), None) is not None

    def patch_status(self, namespace: str, name: str, patch: Any) -> dict[str, Any]:
        """The object as the patch left it, as the API server answers (only its metadata and status)."""
        self._call("patch_status", name, dict(patch))
        status = self.statuses.setdefault((namespace, name), {})
        for field_, value in patch.items():
            if value is None:
                status.pop(field_, None)
            else:
                status[field_] = value
        self.version += 1
        meta = {**self.metadata.get((namespace, name), {}), "resourceVersion": str(self.version)}
        return {"metadata": meta, "status": dict(status)}

    def event(self, owner: Owner, type_: Any, reason: str, message: str) -> None:
        self._call("event", owner.name, type_, reason)
        self.events.append((type_, reason, message))


@dataclass
class Provider:
    """What a JWK URL answers: its keys with caching headers, or an error."""

    keys: list[dict[str, Any]]
    headers: Headers = field(default_factory=lambda: {"cache-control": "max-age=300"})
    error: Exception | None = None  # raised by the fetch (a FetchError, or something unexpected)
    latency: float = 0.0  # seconds the clock moves while an answer is given (made when the request came)

    def headers_at(self, now: datetime) -> dict[str, str]:
        """The caching headers of an answer made at `now`."""
        return self.headers(now) if callable(self.headers) else dict(self.headers)

    @property
    def body(self) -> bytes:
        return json.dumps({"keys": self.keys}).encode()

    @property
    def etag(self) -> str:
        return '"' + hashlib.sha256(self.body).hexdigest()[:12] + '"'


class FakeFetcher(Fetcher):
    """Answers from `providers`: 200 with an ETag, 304 when the request's ETag still matches."""

    def __init__(self, clock: FakeClock | None = None) -> None:  # no HTTP session
        self.clock = clock or FakeClock()
        self.providers: dict[str, Provider] = {}
        self.calls: list[tuple[str, str | None]] = []  # (url, If-None-Match sent)
        self.times: list[float] = []  # the clock's monotonic time of each call, as in `calls`

    def fetch(self, url: str, **validators: Any) -> FetchResult:
        etag = validators.get("etag")
        self.calls.append((url, etag))
        self.times.append(self.clock.monotonic())
        provider = self.providers[url]
        headers = provider.headers_at(self.clock.now())
        self.clock.elapse(provider.latency)
        if provider.error is not None:
            raise provider.error
        if etag == provider.etag:
            return FetchResult(304, None, headers, url)
        return FetchResult(200, provider.body, {**headers, "etag": provider.etag}, url)

    def at(self, url: str) -> list[float]:
        """When each call for `url` was made: seconds after the clock's start (T0 in a Rig)."""
        return [t - self.clock.origin for (u, _), t in zip(self.calls, self.times, strict=True) if u == url]


def jwtsecret(
    name: str,
    spec: dict[str, Any],
    *,
    uid: str,
    generation: int = 1,
    status: dict[str, Any] | None = None,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A JwtSecret as a watch event carries it."""
    meta = {"namespace": NS, "name": name, "uid": uid, "generation": generation}
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": meta, "spec": spec, "status": status or {}}


def healthy(next_refresh: str, target: str, generation: int = 1) -> dict[str, Any]:
    """A status as a previous operator process left it: Ready, with its next refresh time."""
    return {
        "observedGeneration": generation,
        "conditions": [{"type": "Ready", "status": "True", "reason": "KeysPublished"}],
        "nextRefreshTime": next_refresh,
        "target": {"kind": "ConfigMap", "name": target},
    }


class DirectLanes:
    """The engine's API lanes without their queue: each call in a thread of its own as it comes (a gated
    fake call blocks only its pass), Events written at once, so a test sees every write once the
    engine's work has settled."""

    async def call(self, lane: Lane, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.to_thread(fn, *args)

    def post(self, fn: Callable[..., Any], *args: Any) -> bool:
        fn(*args)
        return True

    def clear(self) -> None:
        pass

    def close(self) -> None:
        pass


class Rig:
    """An Engine on a FakeKube, a FakeFetcher and a FakeClock (no resync, no retry jitter, DirectLanes)."""

    def __init__(self, **options: Any) -> None:
        self.clock = FakeClock()
        self.kube = FakeKube()
        self.fetcher = FakeFetcher(self.clock)
        options.setdefault("retry", Backoff(jitter=0))
        options.setdefault("resync_interval", 0)
        options.setdefault("lanes", DirectLanes())
        self.options = options
        self.engine = Engine(self.kube, self.fetcher, clock=self.clock, **options)
        self.uids: dict[str, str] = {}
        self._next_uid = itertools.count(1)

    def restart(self) -> None:
        """A new operator process (nothing in memory) on the same cluster, providers and clock."""
        self.engine.scheduler.clear()
        self.engine = Engine(self.kube, self.fetcher, clock=self.clock, **self.options)

    def serve(self, url: str, *keys: dict[str, Any], headers: Headers | None = None) -> Provider:
        """Make `url` answer with these keys (and these caching headers instead of max-age=300)."""
        provider = Provider(list(keys)) if headers is None else Provider(list(keys), headers)
        self.fetcher.providers[url] = provider
        return provider

    def body(self, name: str, spec: dict[str, Any], **options: Any) -> dict[str, Any]:
        """A JwtSecret body with the status written so far; the uid stays the same per name."""
        uid = self.uids.setdefault(name, f"uid-{next(self._next_uid)}")
        options.setdefault("status", dict(self.kube.statuses.get((NS, name), {})))
        body = jwtsecret(name, spec, uid=uid, **options)
        if self.kube.finalizers.get((NS, name)):
            body["metadata"]["finalizers"] = list(self.kube.finalizers[(NS, name)])
        return body

    async def apply(self, name: str, spec: dict[str, Any], **options: Any) -> None:
        """Watch event for a JwtSecret, then all the work it makes due now."""
        body = self.body(name, spec, **options)
        self.kube.metadata[(NS, name)] = body["metadata"]
        await self.engine.observe("MODIFIED", body)
        await self.settle()

    async def settle(self) -> None:
        """Run everything due now, and what that makes due now, until nothing is left running."""
        scheduler = self.engine.scheduler
        for _ in range(100):
            scheduler.fire_due()
            if not scheduler.tasks:
                return
            await asyncio.wait(set(scheduler.tasks))
        raise AssertionError("the engine keeps making work due now")

    async def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        await self.settle()

    async def advance_to(self, seconds: float) -> None:
        """Advance to T0 + `seconds`, stopping at each due time on the way (counted on the monotonic
        clock: the wall clock keeps only microseconds)."""
        while True:
            left = self.clock.origin + seconds - self.clock.monotonic()
            due = self.engine.scheduler.fire_due()
            step = left if due is None else min(due, left)
            if step <= 0:
                break
            await self.advance(step)
        await self.settle()

    def due(self, item: Item) -> float | None:
        return self.engine.scheduler.due_in(item)

    def status(self, name: str) -> dict[str, Any]:
        return self.kube.statuses[(NS, name)]

    def condition(self, name: str, kind: str = "Ready") -> tuple[str, str]:
        """(status, reason) of a condition."""
        found = next(c for c in self.status(name)["conditions"] if c["type"] == kind)
        return found["status"], found["reason"]

    def output(self, name: str, kind: str = "ConfigMap") -> dict[str, str]:
        return self.kube.outputs[(kind, NS, name)]

    def kids(self, name: str, kind: str = "ConfigMap") -> list[str]:
        """The kids published in an output's jwks.json."""
        return [k["kid"] for k in json.loads(self.output(name, kind)["jwks.json"])["keys"]]

    def configmap_event(self, name: str, owner: str, data: dict[str, str]) -> dict[str, Any]:
        """A watched ConfigMap owned by a JwtSecret, as the drift handler receives it."""
        ref = {"apiVersion": API_VERSION, "kind": KIND, "name": owner, "uid": self.uids[owner]}
        return {"metadata": {"namespace": NS, "name": name, "ownerReferences": [ref]}, "data": data}


async def until(condition: Callable[[], bool], seconds: float = 3.0) -> bool:
    """Let the loop and the threads run, in real time, until `condition` holds (False: it never did)."""
    for _ in range(int(seconds / 0.01)):
        if condition():
            return True
        await asyncio.sleep(0.01)
    return condition()


def stuck(release: threading.Event) -> Callable[[datetime], dict[str, str]]:
    """Caching headers given only once `release` is set: a provider that does not answer until then."""

    def headers(now: datetime) -> dict[str, str]:
        release.wait(10)
        return {"cache-control": "max-age=300"}

    return headers
