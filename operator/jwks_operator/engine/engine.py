"""The engine: takes watch events, tracks JwtSecrets and hands each job to the module that does it.

    watch events ─> Engine (this module: observe, drift, forget, stand_by)
                      └─> Scheduler (scheduler.py): one heap of due times, fired by one loop
                            ├─ "url":    Sources (sources.py) fetch a URL once for all its subscribers,
                            │            then each subscriber is reconciled if the document changed
                            ├─ "obj":    Reconciler (reconcile.py) resolves, publishes, reports one JwtSecret
                            ├─ "resync": the same, writing the output again if it was changed by hand
                            └─ "leave":  Publisher takes a deleted JwtSecret out of a shared target
    Reconciler ─> Publisher (publisher.py): outputs, target moves, shared targets, repairs, events

Each JwtSecret's state is a Tracked (tracked.py); a new generation takes over its predecessor's lock,
so one pass at a time runs per JwtSecret. Blocking I/O (the kubernetes client, requests) runs in
threads. Errors never replace the last published keys.

At most PASSES_PER_WORKER x concurrency passes of JwtSecrets' own ("obj", "resync") run at once, like
controller-runtime's MaxConcurrentReconciles: the rest wait before they start (a task each, holding
nothing rendered), not as half-done passes in the API lanes, so thousands of new JwtSecrets become
Ready in turn and the heap does not grow with the backlog. A pass waits for its URL's first fetch
before it takes its place (a slow provider holds no place). The passes a fetched document starts
("url": a key rotation, a first fetch after a restart) take no place: a rotation queues every affected
output before any status, and their number is that URL's subscribers.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Mapping
from typing import Any

from jwks_operator.engine.publisher import Publisher
from jwks_operator.engine.reconcile import Reconciler
from jwks_operator.engine.scheduler import Clock, Item, Scheduler
from jwks_operator.engine.sources import Backoff, Sources
from jwks_operator.engine.tracked import ObjKey, Tracked, track
from jwks_operator.fetch.fetcher import Fetcher
from jwks_operator.kube.adapter import Kube
from jwks_operator.kube.lanes import ApiLanes, Lanes
from jwks_operator.model.freshness import RefreshPolicy
from jwks_operator.model.names import KIND, REFRESH_ANNOTATION, RELEASE_FINALIZER
from jwks_operator.runtime.metrics import Metrics

__all__ = ["Backoff", "Clock", "Engine"]

log = logging.getLogger(__name__)

RESUME_SPREAD = 5.0  # seconds: restarted operators do not fetch every URL at the same instant
DELETED_GRACE = 1.0  # seconds: an output deleted with its JwtSecret is not recreated for nobody
PASSES_PER_WORKER = 4  # a JwtSecret's own passes at once, per API worker (--concurrency)


class Engine:
    """Level-triggered reconciler fed by watch events; its `run()` loop fires due work."""

    def __init__(
        self,
        kube: Kube,
        fetcher: Fetcher,
        *,
        policy: RefreshPolicy | None = None,
        concurrency: int = 8,
        retry: Backoff | None = None,
        metrics: Metrics | None = None,
        clock: Clock | None = None,
        leading: Callable[[], bool] = lambda: True,
        resync_interval: float = 3600.0,
        lanes: Lanes | None = None,
    ) -> None:
        self.leading = leading
        self.metrics = metrics or Metrics()
        self.policy = policy or RefreshPolicy()
        self.retry = retry or Backoff()
        self.clock = clock or Clock()
        self.objects: dict[ObjKey, Tracked] = {}
        self.scheduler = Scheduler(self._fire, self.clock)
        self.places = asyncio.Semaphore(PASSES_PER_WORKER * concurrency)  # for passes of "obj" and "resync"
        self.lanes = lanes or ApiLanes(
            concurrency,
            on_drop=self.metrics.events_dropped.inc,
            on_cpu=self.metrics.thread_cpu.labels("api").inc,
        )
        self.sources = Sources(
            kube,
            self.lanes,
            fetcher,
            self.scheduler,
            policy=self.policy,
            retry=self.retry,
            metrics=self.metrics,
            concurrency=concurrency,
        )
        self.publisher = Publisher(kube, self.lanes, self.metrics, self.scheduler, self.retry)
        self.reconciler = Reconciler(
            kube,
            self.lanes,
            self.sources,
            self.publisher,
            retry=self.retry,
            metrics=self.metrics,
            resync_interval=resync_interval,
            objects=self.objects,
            forget=self.forget,
        )

    async def run(self) -> None:
        """Fire due work until cancelled; then stop the fetch and API threads."""
        try:
            await self.scheduler.run()
        finally:
            self.sources.close()
            self.lanes.close()

    # -- intake -------------------------------------------------------------------------------

    async def observe(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        """Take a watch event for a JwtSecret (ADDED/MODIFIED/DELETED, None for the initial list)."""
        if not self.leading():
            return
        meta = body.get("metadata") or {}
        key: ObjKey = (str(meta.get("namespace")), str(meta.get("name")))
        if event_type == "DELETED" or meta.get("deletionTimestamp"):
            self.forget(key, body, gone=event_type == "DELETED")
            return
        uid, generation = str(meta.get("uid")), int(meta.get("generation") or 0)
        request = (meta.get("annotations") or {}).get(REFRESH_ANNOTATION)
        known = self.objects.get(key)
        if known is not None and known.uid == uid and known.generation == generation:
            known.seen(body)
            if request != known.refresh_request:
                known.refresh_request = request
                self._force(known)
            return  # otherwise our own status write echoing back, or a metadata-only change
        if known is not None and known.uid != uid:
            self.forget(key)
            known = None
        tracked = track(key, uid, generation, body, request, self.policy)
        if known is not None:
            self._carry_over(known, tracked)
        self.objects[key] = tracked
        self.metrics.jwtsecrets.set(len(self.objects))
        source = self.sources.subscribe(tracked)
        if source is not None and known is None and not source.attempted and tracked.resumable():
            # The stored status says the target holds valid keys: no rush, but the next refresh time is not
            # stored (it would need a write per period), so revalidate soon, spread so a restarted operator
            # does not fetch every URL at the same instant.
            spread = random.uniform(0, RESUME_SPREAD)  # noqa: S311 - load spreading, not crypto
            self.scheduler.schedule(("url", source.key), spread)
            return
        self.scheduler.schedule(("obj", key), 0.0)

    def _carry_over(self, known: Tracked, tracked: Tracked) -> None:
        """A new generation keeps the lock and what is published where; it leaves a URL it no longer reads."""
        tracked.take_over(known)
        old_source = known.source_key
        if old_source and old_source != tracked.source_key:
            self.sources.unsubscribe(known.key, old_source)

    def _force(self, tracked: Tracked) -> None:
        """A refresh-requested-at annotation changed: fetch now, but not sooner than minInterval after
        the previous fetch."""
        source = self.sources.get(tracked.source_key)
        if source is None:
            self.scheduler.schedule(("obj", tracked.key), 0.0)
            return
        delay = self.sources.spacing_left(source, tracked.policy.min_interval)
        self.scheduler.schedule(("url", source.key), delay)

    def echoed(self, body: Mapping[str, Any]) -> bool:
        """Whether a JwtSecret watch event only echoes our own status patch: then it is taken as seen
        (its resourceVersion, should an older event have come meanwhile) and needs no `observe`."""
        meta = body.get("metadata") or {}
        known = self.objects.get((str(meta.get("namespace")), str(meta.get("name"))))
        if known is None or not known.is_echo(meta) or known.uid != meta.get("uid"):
            return False
        known.seen(body)
        return True

    def forget(self, key: ObjKey, body: Mapping[str, Any] | None = None, *, gone: bool = True) -> None:
        """Stop tracking a deleted JwtSecret: what it owns alone goes with it (ownerReferences); its entries
        in shared objects are taken out here. `body`: the deleted (or, `gone` False, deleting) object."""
        tracked = self.objects.pop(key, None)
        self.scheduler.cancel(("obj", key))
        self.scheduler.cancel(("resync", key))
        if body is not None:
            meta = body.get("metadata") or {}
            held = RELEASE_FINALIZER in (meta.get("finalizers") or [])
            if tracked is None and held and not gone:  # deleted while no operator ran: its status says where
                uid, generation = str(meta.get("uid")), int(meta.get("generation") or 0)
                pending = self.publisher.pending((*key, uid))
                if pending is not None:  # e.g. the echo of the status its release reports: it goes on
                    pending.seen(body)  # with the newest finalizers and resourceVersion
                else:
                    tracked = track(key, uid, generation, body, None, self.policy)
            if tracked is not None and not gone:
                tracked.seen(body)
            elif tracked is not None:
                tracked.finalizers = ()  # the object is gone: no finalizer left to remove
        target = tracked.target if tracked is not None else None
        shared = target if target is not None and target.shared else None
        if tracked is not None and (shared is not None or tracked.outputs or tracked.holds_release):
            self.publisher.withdraw(tracked, shared)
        self.metrics.jwtsecrets.set(len(self.objects))
        self.metrics.forget_object(*key)
        if tracked is not None and tracked.source_key:
            self.sources.unsubscribe(key, tracked.source_key)

    def drift(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        """A ConfigMap we publish changed: if it no longer holds what we wrote, write it back."""
        if not self.leading():
            return
        meta = body.get("metadata") or {}
        deleted = event_type == "DELETED"
        for ref in meta.get("ownerReferences") or []:
            tracked = self.objects.get((str(meta.get("namespace")), str(ref.get("name"))))
            if ref.get("kind") != KIND or tracked is None or tracked.uid != ref.get("uid"):
                continue
            target = tracked.target
            if target is None or (target.kind, target.name) != ("ConfigMap", meta.get("name")):
                continue  # e.g. our own deletion of a previous target after a move
            if not self.publisher.drifted(tracked, body.get("data") or {}, deleted=deleted):
                continue
            tracked.published_digest, tracked.repairing = None, True
            # A deletion may be the garbage collector following the JwtSecret's own deletion:
            # wait a moment so that event is seen first and nothing is recreated for nobody.
            self.scheduler.schedule(("obj", tracked.key), DELETED_GRACE if deleted else 0.0)

    def stand_by(self) -> None:
        """Another replica leads: drop all state without touching the cluster. Kopf lists every
        JwtSecret again when this replica leads again, and the stored status resumes each one. A
        pending leave is dropped too: the next write to that shared target drops parts whose
        JwtSecret is no longer among its owners."""
        self.scheduler.clear()
        self.lanes.clear()  # queued writes of the passes just cancelled: the new leader makes its own
        for namespace, name in self.objects:
            self.metrics.forget_object(namespace, name)
        self.sources.clear()
        self.publisher.leaving.clear()
        self.objects.clear()
        self.metrics.jwtsecrets.set(0)

    # -- due work -----------------------------------------------------------------------------

    async def _fire(self, item: Item) -> None:
        kind, key = item
        if not self.leading():
            return
        try:
            if kind == "url":
                await self.refresh(key)
            elif kind == "resync":
                await self.resync(key)
            elif kind == "leave":
                await self.publisher.leave(key)
            else:
                await self.reconcile(key)
        except Exception:
            log.exception("unexpected error processing %s %s; retrying", kind, key)
            self.scheduler.schedule(item, self.retry.delay(3))

    async def refresh(self, source_key: str) -> None:
        """Fetch a URL once for all its subscribers, then reconcile each of them if it changed."""
        source = self.sources.get(source_key)
        if source is not None and await self.sources.refresh(source):
            await asyncio.gather(*(self.reconcile(k, from_source=True) for k in list(source.subscribers)))

    async def resync(self, key: ObjKey) -> None:
        """Re-read the published output and put it back if it differs: Secrets are not watched (that
        would need list/watch on every Secret), and a deletion during a watch gap long enough to need a
        re-list has no event. One GET per JwtSecret per resync interval when nothing changed."""
        tracked = self.objects.get(key)
        if tracked is not None:
            tracked.published_digest, tracked.repairing = None, True
            tracked.output_stamps.clear()
            await self.reconcile(key)

    async def reconcile(self, key: ObjKey, *, from_source: bool = False) -> None:
        """Resolve, publish and report one JwtSecret (`from_source`: its URL's new document, at once;
        otherwise after its URL's first fetch, in one of the engine's places)."""
        tracked = self.objects.get(key)
        if tracked is None:
            return
        if from_source:
            await self.reconciler.reconcile(tracked)
            return
        await self.reconciler.first_fetch(tracked)
        async with self.places:
            if self.objects.get(key) is tracked:  # else replaced or gone meanwhile: the newer one has its own
                await self.reconciler.reconcile(tracked)
