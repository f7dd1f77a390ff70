"""The reconciler: tracks JwtSecrets, shares one fetch per JWK URL, publishes keys and writes status.

One asyncio task drives a heap of due times (no task or timer per object). Blocking I/O (the
kubernetes client, requests) runs in threads. Errors never replace the last published keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from . import keys as keylib
from .cache import Freshness, RefreshPolicy, freshness
from .errors import ApiCallError, AudienceRequiredError, FetchError, JwksError, SpecError, StaleError
from .fetch import Fetcher
from .keys import KeySet
from .kube import Kube, Owner, TargetKind
from .metrics import Metrics
from .names import JWKS_KEY, POLICY_KEY, REFRESH_ANNOTATION
from .outputs import digest, part_keys, render
from .spec import CaBundleRef, JwtSecretSpec, parse_spec, target_name
from .status import Outcome, build_status, merge_patch, new_problems, timestamp

log = logging.getLogger(__name__)

ObjKey = tuple[str, str]
Item = tuple[Literal["obj", "url", "resync"], Any]
EventType = Literal["Normal", "Warning"]
TIMESTAMPS_ONLY = frozenset({"lastFetchTime", "nextRefreshTime"})


@dataclass(frozen=True)
class Backoff:
    """Exponential retry delays with jitter: base * 2^(failures-1), capped, at least Retry-After."""

    base: float = 5.0
    cap: float = 600.0
    jitter: float = 0.2

    def delay(self, failures: int, retry_after: float | None = None) -> float:
        delay: float = min(self.base * 2.0 ** max(failures - 1, 0), self.cap)
        delay *= 1 + random.uniform(-self.jitter, self.jitter)  # noqa: S311 - jitter, not crypto
        return max(delay, retry_after or 0.0)


@dataclass
class Tracked:
    """One JwtSecret as the engine knows it."""

    namespace: str
    name: str
    uid: str
    generation: int
    spec: JwtSecretSpec | None
    spec_error: JwksError | None  # a spec problem: nothing is fetched or published for it
    status: dict[str, Any]
    policy: RefreshPolicy
    refresh_request: str | None = None
    published: KeySet | None = None
    published_digest: str | None = None
    published_data: dict[str, str] | None = None  # what we last wrote (to notice edits by hand)
    repairing: bool = False
    fetched_at: datetime | None = None
    failures: int = 0
    report_failures: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def key(self) -> ObjKey:
        return (self.namespace, self.name)

    @property
    def owner(self) -> Owner:
        return Owner(self.namespace, self.name, self.uid)

    @property
    def source_key(self) -> str | None:
        """The shared source this JwtSecret reads: its URL plus its TLS trust (None: not a URL)."""
        spec = self.spec
        if spec is None or spec.jwk_url is None or self.spec_error is not None:
            return None
        ca = spec.ca_bundle
        return (
            spec.jwk_url if ca is None else f"{spec.jwk_url} ca={self.namespace}/{ca.kind}/{ca.name}/{ca.key}"
        )


@dataclass
class UrlSource:
    """One JWK URL (with one TLS trust setting) shared by all JwtSecrets naming it."""

    key: str
    url: str
    allow_http: bool
    namespace: str | None = None  # where ca lives
    ca: CaBundleRef | None = None
    subscribers: set[ObjKey] = field(default_factory=set)
    document: bytes | None = None
    etag: str | None = None
    last_modified: str | None = None
    fetched_at: datetime | None = None  # last successful fetch (200 or 304)
    expires_at: datetime | None = None  # when the provider said the keys need refreshing
    next_refresh: datetime | None = None
    last_attempt: float = float("-inf")  # loop time
    error: FetchError | None = None
    failures: int = 0
    attempted: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    parsed: dict[tuple[str, ...], KeySet | JwksError] = field(default_factory=dict)
    removed: dict[str, tuple[dict[str, Any], datetime]] = field(default_factory=dict)  # by thumbprint

    def key_set(self, algorithms: tuple[str, ...]) -> KeySet:
        """The last good document parsed for an algorithm allow-list (cached per document)."""
        if self.document is None:
            raise self.error or FetchError("not fetched yet")
        if algorithms not in self.parsed:
            try:
                self.parsed[algorithms] = keylib.parse_jwks_document(self.document, algorithms=algorithms)
            except JwksError as exc:
                self.parsed[algorithms] = exc
        result = self.parsed[algorithms]
        if isinstance(result, JwksError):
            raise result
        return result

    def accept(self, body: bytes, parsed: KeySet, now: datetime) -> None:
        """Take a new valid document; remember which keys it dropped (for retainRemovedFor)."""
        old = self.parsed.get(())
        new_prints = {keylib.thumbprint(k) for k in parsed.keys}
        if isinstance(old, KeySet):
            for jwk in old.keys:
                tp = keylib.thumbprint(jwk)
                if tp not in new_prints:
                    self.removed.setdefault(tp, (jwk, now))
        for tp in new_prints:
            self.removed.pop(tp, None)
        self.document, self.parsed = body, {(): parsed}

    def retained(self, seconds: float, now: datetime) -> list[dict[str, Any]]:
        """Keys removed by the provider less than `seconds` ago."""
        return [jwk for jwk, since in self.removed.values() if (now - since).total_seconds() < seconds]


class Engine:
    """Level-triggered reconciler fed by watch events; its `run()` loop fires due refreshes."""

    def __init__(
        self,
        kube: Kube,
        fetcher: Fetcher,
        *,
        policy: RefreshPolicy | None = None,
        concurrency: int = 8,
        retry: Backoff | None = None,
        metrics: Metrics | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        leading: Callable[[], bool] = lambda: True,
        resync_interval: float = 3600.0,
    ) -> None:
        self.kube = kube
        self.leading = leading
        self.resync_interval = resync_interval
        self.metrics = metrics or Metrics()
        self.fetcher = fetcher
        self.policy = policy or RefreshPolicy()
        self.retry = retry or Backoff()
        self.now = now
        self.objects: dict[ObjKey, Tracked] = {}
        self.sources: dict[str, UrlSource] = {}
        self._heap: list[tuple[float, int, Item]] = []
        self._due: dict[Item, float] = {}
        self._seq = 0
        self._wakeup = asyncio.Event()
        self._slots = asyncio.Semaphore(concurrency)
        self._tasks: set[asyncio.Task[None]] = set()

    # -- watch events -------------------------------------------------------------------------

    async def observe(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        """Take a watch event for a JwtSecret (ADDED/MODIFIED/DELETED, None for the initial list)."""
        if not self.leading():
            return
        meta = body.get("metadata") or {}
        key: ObjKey = (str(meta.get("namespace")), str(meta.get("name")))
        if event_type == "DELETED" or meta.get("deletionTimestamp"):
            self.forget(key)
            return
        uid, generation = str(meta.get("uid")), int(meta.get("generation") or 0)
        request = (meta.get("annotations") or {}).get(REFRESH_ANNOTATION)
        known = self.objects.get(key)
        if known is not None and known.uid == uid and known.generation == generation:
            if request != known.refresh_request:
                known.refresh_request = request
                self._force(known)
            return  # otherwise our own status write echoing back, or a metadata-only change
        if known is not None and known.uid != uid:
            self.forget(key)
            known = None
        tracked = self._track(key, uid, generation, body, request)
        if known is not None:
            tracked.published, tracked.fetched_at = known.published, known.fetched_at
            tracked.published_digest = known.published_digest
            old_source = known.source_key
            if old_source and old_source != tracked.source_key:
                self._unsubscribe(key, old_source)
        self.objects[key] = tracked
        self.metrics.jwtsecrets.set(len(self.objects))
        spec, source_key = tracked.spec, tracked.source_key
        if spec is not None and spec.jwk_url is not None and source_key is not None:
            source = self.sources.get(source_key)
            if source is None:
                source = UrlSource(source_key, spec.jwk_url, spec.allow_insecure_http, key[0], spec.ca_bundle)
                self.sources[source_key] = source
            source.allow_http = source.allow_http or spec.allow_insecure_http
            source.subscribers.add(key)
            if known is None and not source.attempted and self._resumable(tracked):
                self._schedule(("url", source.key), self._resume_delay(tracked))
                return
        self._schedule(("obj", key), 0.0)

    def _track(
        self, key: ObjKey, uid: str, generation: int, body: Mapping[str, Any], request: str | None
    ) -> Tracked:
        error: JwksError | None = None
        try:
            spec: JwtSecretSpec | None = parse_spec(body.get("spec"))
        except SpecError as exc:
            spec, error = None, exc
        provider = spec.shared_provider() if spec is not None else None
        if spec is not None and provider and not spec.audiences and not spec.allow_missing_audience:
            error = AudienceRequiredError(
                f"{provider} signs the tokens of all its customers with this JWK Set, so without "
                "spec.audiences tokens issued to anyone else's project would be accepted: set spec.audiences "
                "(or spec.allowMissingAudience: true to accept that risk)"
            )
        policy = spec.refresh.policy(self.policy) if spec is not None else self.policy
        status = dict(body.get("status") or {})
        return Tracked(key[0], key[1], uid, generation, spec, error, status, policy, request)

    def _resumable(self, tracked: Tracked) -> bool:
        """After a restart: the stored status already describes this generation and is healthy."""
        status = tracked.status
        conditions: list[dict[str, Any]] = status.get("conditions") or []
        ready = next((c for c in conditions if c.get("type") == "Ready"), {})
        return status.get("observedGeneration") == tracked.generation and ready.get("status") == "True"

    def _resume_delay(self, tracked: Tracked) -> float:
        """Seconds until the stored nextRefreshTime, spread a little so restarts do not stampede."""
        spread = random.uniform(0, 5)  # noqa: S311 - load spreading, not crypto
        try:
            due = datetime.fromisoformat(str(tracked.status.get("nextRefreshTime")).replace("Z", "+00:00"))
        except ValueError:
            return spread
        return max((due - self.now()).total_seconds(), 0.0) + spread

    def _force(self, tracked: Tracked) -> None:
        """A refresh-requested-at annotation changed: fetch now, but not sooner than minInterval after
        the previous fetch."""
        source = self.sources.get(tracked.source_key or "")
        if source is None:
            self._schedule(("obj", tracked.key), 0.0)
            return
        loop_now = asyncio.get_running_loop().time()
        spacing = tracked.policy.min_interval
        self._schedule(("url", source.key), max(source.last_attempt + spacing - loop_now, 0.0))

    def forget(self, key: ObjKey) -> None:
        """Stop tracking a deleted JwtSecret (its outputs go with it via ownerReferences)."""
        tracked = self.objects.pop(key, None)
        self._due.pop(("obj", key), None)
        self._due.pop(("resync", key), None)
        if tracked is not None and (tracked.status.get("target") or {}).get("shared"):
            task = asyncio.get_running_loop().create_task(self._leave_shared(tracked))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        self.metrics.jwtsecrets.set(len(self.objects))
        self.metrics.forget_object(*key)
        if tracked is not None and tracked.source_key:
            self._unsubscribe(key, tracked.source_key)

    def _unsubscribe(self, key: ObjKey, source_key: str) -> None:
        source = self.sources.get(source_key)
        if source is not None:
            source.subscribers.discard(key)
            if not source.subscribers:
                del self.sources[source_key]
                self._due.pop(("url", source_key), None)
                if not any(s.url == source.url for s in self.sources.values()):
                    self.metrics.forget_url(source.url)

    def drift(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        """A ConfigMap we publish changed: if it no longer holds what we wrote, write it back."""
        if not self.leading():
            return
        meta = body.get("metadata") or {}
        for ref in meta.get("ownerReferences") or []:
            tracked = self.objects.get((str(meta.get("namespace")), str(ref.get("name"))))
            if ref.get("kind") != "JwtSecret" or tracked is None or tracked.uid != ref.get("uid"):
                continue
            if tracked.published_data is None or tracked.spec is None:
                continue  # nothing published by this process yet: the next reconcile writes it anyway
            current = body.get("data") or {}
            if tracked.spec.target_shared:
                wanted = dict(
                    zip(
                        part_keys(tracked.name),
                        (tracked.published_data[JWKS_KEY], tracked.published_data[POLICY_KEY]),
                        strict=True,
                    )
                )
            else:
                wanted = tracked.published_data
            if event_type != "DELETED" and all(current.get(k) == v for k, v in wanted.items()):
                continue
            tracked.published_digest, tracked.repairing = None, True
            # A deletion may be the garbage collector following the JwtSecret's own deletion:
            # wait a moment so that event is seen first and nothing is recreated for nobody.
            self._schedule(("obj", tracked.key), 1.0 if event_type == "DELETED" else 0.0)

    def stand_by(self) -> None:
        """Another replica leads: drop all state without touching the cluster. Kopf lists every
        JwtSecret again when this replica leads again, and the stored status resumes each one."""
        for task in list(self._tasks):
            task.cancel()
        for namespace, name in self.objects:
            self.metrics.forget_object(namespace, name)
        for url in {source.url for source in self.sources.values()}:
            self.metrics.forget_url(url)
        self.objects.clear()
        self.sources.clear()
        self._heap.clear()
        self._due.clear()
        self.metrics.jwtsecrets.set(0)

    # -- scheduling ---------------------------------------------------------------------------

    def _schedule(self, item: Item, delay: float, *, replace_later: bool = False) -> None:
        """Make `item` due in `delay` seconds (earlier wins unless `replace_later`)."""
        due = asyncio.get_running_loop().time() + delay
        current = self._due.get(item)
        if current is not None and current <= due and not replace_later:
            return
        self._due[item] = due
        self._seq += 1
        heapq.heappush(self._heap, (due, self._seq, item))
        self._wakeup.set()

    async def run(self) -> None:
        """Fire due items until cancelled."""
        loop = asyncio.get_running_loop()
        try:
            while True:
                now = loop.time()
                while self._heap and self._heap[0][0] <= now:
                    due, _, item = heapq.heappop(self._heap)
                    if self._due.get(item) != due:
                        continue  # superseded or cancelled
                    del self._due[item]
                    self._spawn(item)
                timeout = self._heap[0][0] - now if self._heap else None
                self._wakeup.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), timeout)
        finally:
            for task in list(self._tasks):
                task.cancel()

    def _spawn(self, item: Item) -> None:
        task = asyncio.create_task(self._fire(item))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _fire(self, item: Item) -> None:
        kind, key = item
        if not self.leading():
            return
        try:
            if kind == "url":
                source = self.sources.get(key)
                if source is not None:
                    await self._refresh(source)
            elif kind == "resync":
                await self.resync(key)
            else:
                await self.reconcile(key)
        except Exception:
            log.exception("unexpected error processing %s %s; retrying", kind, key)
            self._schedule(item, self.retry.delay(3))

    # -- URL sources --------------------------------------------------------------------------

    async def _refresh(self, source: UrlSource) -> None:
        """Fetch a URL once for all its subscribers, then reconcile each of them."""
        async with source.lock:
            before = (source.attempted, source.document, source.error, source.failures)
            await self._fetch(source)
        if before == (True, source.document, source.error, source.failures):
            return  # a revalidation that changed nothing: every subscriber's output and status stand
        await asyncio.gather(*(self.reconcile(k, from_source=True) for k in list(source.subscribers)))

    async def _fetch(self, source: UrlSource) -> None:
        source.attempted = True
        source.last_attempt = asyncio.get_running_loop().time()
        conditional = source.document is not None
        try:
            async with self._slots:
                ca_bundle = None
                if source.ca is not None and source.namespace is not None:
                    ca_bundle = await asyncio.to_thread(self.kube.read_ca_bundle, source.namespace, source.ca)
                started = time.monotonic()
                result = await asyncio.to_thread(
                    self.fetcher.fetch,
                    source.url,
                    etag=source.etag if conditional else None,
                    last_modified=source.last_modified if conditional else None,
                    allow_http=source.allow_http,
                    ca_bundle=ca_bundle,
                )
                self.metrics.fetch_seconds.labels(source.url).observe(time.monotonic() - started)
            parsed = None
            if result.status == 200 and result.body != source.document:
                assert result.body is not None
                parsed = keylib.parse_jwks_document(result.body)  # a bad document never replaces a good one
        except JwksError as exc:
            source.failures += 1
            source.error = exc if isinstance(exc, FetchError) else FetchError(exc.message)
            self.metrics.fetches.labels(source.url, "error").inc()
            self.metrics.failures.labels(source.url).set(source.failures)
            delay = self.retry.delay(source.failures, getattr(exc, "retry_after", None))
            log.warning("fetching %s failed (%d in a row): %s", source.url, source.failures, exc.message)
            self._plan(source, delay)
            return
        now = self.now()
        if parsed is not None:
            assert result.body is not None
            source.accept(result.body, parsed, now)
            log.info("fetched %s: %d key(s)", source.url, len(parsed.keys))
        if result.status == 200:
            source.etag = result.headers.get("etag")
            source.last_modified = result.headers.get("last-modified")
        source.fetched_at, source.error, source.failures = now, None, 0
        self.metrics.fetches.labels(source.url, "ok" if result.status == 200 else "not_modified").inc()
        self.metrics.failures.labels(source.url).set(0)
        self.metrics.last_success.labels(source.url).set(now.timestamp())
        interval = self._interval(source, freshness(result.headers, now))
        if interval is not None:  # freshness counts from the request (RFC 9111 4.2.3), not the reply
            interval = max(interval - (time.monotonic() - started), 0.0)
        self._plan(source, interval)
        source.expires_at = source.next_refresh

    def _interval(self, source: UrlSource, fresh: Freshness) -> float | None:
        """The next refresh: the soonest any subscriber's policy allows (None: never)."""
        intervals = [
            fresh.next_interval(self.objects[k].policy) for k in source.subscribers if k in self.objects
        ]
        due = [i for i in intervals if i is not None]
        return min(due) if due else (None if intervals else fresh.next_interval(self.policy))

    def _plan(self, source: UrlSource, delay: float | None) -> None:
        if delay is None:
            source.next_refresh = None
            self._due.pop(("url", source.key), None)
            self.metrics.next_refresh.labels(source.url).set(float("inf"))
            return
        source.next_refresh = self.now() + timedelta(seconds=delay)
        self.metrics.next_refresh.labels(source.url).set(source.next_refresh.timestamp())
        self._schedule(("url", source.key), delay, replace_later=True)

    # -- reconciliation -----------------------------------------------------------------------

    async def resync(self, key: ObjKey) -> None:
        """Re-read the published output and put it back if it differs: Secrets are not watched (that
        would need list/watch on every Secret), and a deletion during a watch gap long enough to need a
        re-list has no event. One GET per JwtSecret per resync interval when nothing changed."""
        tracked = self.objects.get(key)
        if tracked is not None:
            tracked.published_digest, tracked.repairing = None, True
            await self.reconcile(key)

    async def reconcile(self, key: ObjKey, *, from_source: bool = False) -> None:
        """Resolve, publish and report one JwtSecret."""
        tracked = self.objects.get(key)
        if tracked is None:
            return
        async with tracked.lock:
            outcome = await self._resolve_and_publish(tracked, from_source=from_source)
            try:
                await self._report(tracked, outcome)
            except ApiCallError as exc:  # the next pass recomputes the same patch: nothing half-written
                tracked.report_failures += 1
                delay = self.retry.delay(tracked.report_failures, exc.retry_after)
                _log(
                    tracked, logging.WARNING, "status update failed (retry in %.0fs): %s", delay, exc.message
                )
                self._schedule(("obj", key), delay)
            else:
                tracked.report_failures = 0
                if self.resync_interval > 0:
                    spread = random.uniform(0.9, 1.1)  # noqa: S311 - load spreading, not crypto
                    self._schedule(("resync", key), self.resync_interval * spread)

    async def _resolve_and_publish(self, tracked: Tracked, *, from_source: bool) -> Outcome:
        spec = tracked.spec
        base = Outcome(
            source=spec.describe_source() if spec else "invalid",
            generation=tracked.generation,
            key_set=tracked.published,
            fetched_at=tracked.fetched_at,
            failures=tracked.failures,
        )
        if spec is None or tracked.spec_error is not None:
            assert tracked.spec_error is not None
            return replace(base, error=tracked.spec_error, failures=0)
        base = replace(base, warnings=tuple(spec.warnings()))
        kind: TargetKind = "Secret" if spec.symmetric else "ConfigMap"
        name = target_name(tracked.name, spec)
        base = replace(base, target_kind=kind, target_name=name, target_shared=spec.target_shared)
        source = self.sources.get(tracked.source_key or "")
        if source is not None:
            if not from_source and not source.attempted:
                async with source.lock:
                    if not source.attempted:
                        await self._fetch(source)
            base = replace(base, failures=source.failures, next_refresh=source.next_refresh)
        try:
            key_set, fetched_at = await self._resolve(tracked, spec, source)
            await self._publish(tracked, spec, kind, key_set, fetched_at)
        except JwksError as exc:
            if source is None or exc is not source.error:  # fetch errors retry on the source's schedule
                tracked.failures += 1
                delay = self.retry.delay(tracked.failures, getattr(exc, "retry_after", None))
                self._schedule(("obj", tracked.key), delay)
                base = replace(base, failures=tracked.failures)
            old = tracked.status.get("target") or {}
            if old.get("kind") in ("ConfigMap", "Secret") and old.get("name"):
                # Until the new target is written and the old one removed, status names the old one.
                base = replace(
                    base,
                    target_kind=old["kind"],
                    target_name=old["name"],
                    target_shared=bool(old.get("shared")),
                )
            return replace(base, error=exc, key_set=tracked.published)
        tracked.failures = 0
        error: JwksError | None = source.error if source is not None else None
        if source is not None and error is not None and self._stale(source, tracked.policy):
            assert source.expires_at is not None
            error = StaleError(
                f"keys are stale: due for refresh at {timestamp(source.expires_at)}, "
                f"refreshes failing since: {error.message}"
            )
        return replace(
            base,
            key_set=tracked.published,
            fetched_at=tracked.fetched_at,
            error=error,
            failures=source.failures if source else 0,
        )

    def _stale(self, source: UrlSource, policy: RefreshPolicy) -> bool:
        if source.expires_at is None:
            return False
        return self.now() > source.expires_at + timedelta(seconds=policy.stale_after)

    async def _resolve(
        self, tracked: Tracked, spec: JwtSecretSpec, source: UrlSource | None
    ) -> tuple[KeySet, datetime]:
        now = self.now()
        if source is not None:
            current = source.key_set(spec.algorithms)
            retained = source.retained(spec.retain_removed_for, now) if spec.retain_removed_for else []
            if retained:
                combined = keylib.build_key_set([*current.keys, *retained], algorithms=spec.algorithms)
                current = KeySet(combined.keys, current.rejected)
                soonest = min(since for _, since in source.removed.values())
                expiry = (soonest - now).total_seconds() + spec.retain_removed_for
                self._schedule(("obj", tracked.key), max(expiry, 0.0) + 0.05)
            return current, source.fetched_at or now
        if spec.kind == "jwks":
            assert spec.jwks is not None
            key_set = keylib.build_key_set(spec.jwks["keys"], algorithms=spec.algorithms)
            return keylib.require_keys(key_set, "spec.static.jwks"), now
        if spec.kind == "pem":
            assert spec.pem is not None
            return keylib.keys_from_pem(spec.pem, kid=spec.kid, algorithms=spec.algorithms), now
        ref = spec.secret_ref
        assert ref is not None
        secret = await asyncio.to_thread(self.kube.read_secret_key, tracked.namespace, ref.name, ref.key)
        return keylib.key_from_hmac(secret, kid=ref.kid, algorithms=spec.algorithms), now

    async def _publish(
        self, tracked: Tracked, spec: JwtSecretSpec, kind: TargetKind, key_set: KeySet, fetched_at: datetime
    ) -> None:
        data = render(spec, key_set)
        name = target_name(tracked.name, spec)
        shared = spec.target_shared
        new_digest = f"{kind}/{name}/{shared}/{digest(data)}"
        if new_digest != tracked.published_digest:
            if shared:
                result = await asyncio.to_thread(self.kube.publish_shared, kind, tracked.owner, name, data)
            else:
                new = tracked.published_digest is None and not tracked.status.get("target")
                result = await asyncio.to_thread(self.kube.publish, kind, tracked.owner, name, data, new=new)
            if result != "unchanged":
                self.metrics.api_writes.labels(kind, result.removesuffix("d")).inc()
                message = f"{len(key_set.keys)} key(s) {result} in {kind} {name}"
                reason = "Published"
                if tracked.repairing:
                    reason, message = "Repaired", f"{kind} {name} was changed by hand; restored ({message})"
                _log(tracked, logging.INFO, message)
                # The first publish shows in status (Ready, KeysPublished); an event for it too would be a
                # third API write per new JwtSecret. Key changes and repairs are events.
                if result == "updated" or tracked.repairing:
                    await self._event(tracked, "Normal", reason, message)
            tracked.published_digest, tracked.published_data, tracked.repairing = new_digest, data, False
        # Until the status names the new target, the old one may still be ours (retried after a failure).
        await self._remove_old_target(tracked, kind, name, shared)
        tracked.published, tracked.fetched_at = key_set, fetched_at

    async def _remove_old_target(self, tracked: Tracked, kind: TargetKind, name: str, shared: bool) -> None:
        """After a target change, remove the previous output (or our part of it) if we still own it."""
        old = tracked.status.get("target") or {}
        old_kind, old_name, old_shared = old.get("kind"), old.get("name"), bool(old.get("shared"))
        if old_kind not in ("ConfigMap", "Secret") or not old_name:
            return
        if (old_kind, old_name, old_shared) == (kind, name, shared):
            return
        if old_shared:
            removed = await asyncio.to_thread(
                self.kube.publish_shared, old_kind, tracked.owner, old_name, None
            )
            done = removed != "unchanged"
        else:
            done = await asyncio.to_thread(self.kube.delete_owned, old_kind, tracked.owner, old_name)
        if done:
            self.metrics.api_writes.labels(old_kind, "delete").inc()
            _log(tracked, logging.INFO, "removed the previous output %s %s", old_kind, old_name)

    async def _leave_shared(self, tracked: Tracked) -> None:
        """A deleted JwtSecret takes its part out of a shared target (the last one removes it)."""
        target = tracked.status.get("target") or {}
        if target.get("shared") and target.get("kind") in ("ConfigMap", "Secret") and target.get("name"):
            try:
                await asyncio.to_thread(
                    self.kube.publish_shared, target["kind"], tracked.owner, target["name"], None
                )
            except Exception as exc:
                _log(tracked, logging.WARNING, "could not remove its part of %s: %s", target["name"], exc)

    async def _report(self, tracked: Tracked, outcome: Outcome) -> None:
        new = build_status(outcome, tracked.status, self.now())
        conditions = [(str(c["type"]), str(c["status"])) for c in new["conditions"]]
        self.metrics.set_object(tracked.namespace, tracked.name, int(new["keyCount"]), conditions)
        patch = merge_patch(tracked.status, new)
        if patch is None or set(patch) <= TIMESTAMPS_ONLY:
            return  # a revalidation that changed nothing writes nothing
        try:
            await asyncio.to_thread(self.kube.patch_status, tracked.namespace, tracked.name, patch)
            self.metrics.api_writes.labels("JwtSecret/status", "patch").inc()
        except Exception as exc:
            if getattr(exc, "status", None) == 404:
                self.forget(tracked.key)
                return
            raise
        problems = new_problems(tracked.status, new)
        tracked.status = new
        for reason, message in problems:
            _log(tracked, logging.WARNING, "%s: %s", reason, message)
            await self._event(tracked, "Warning", reason, message)

    async def _event(self, tracked: Tracked, type_: EventType, reason: str, msg: str) -> None:
        try:
            await asyncio.to_thread(self.kube.event, tracked.owner, type_, reason, msg)
            self.metrics.api_writes.labels("Event", "create").inc()
        except Exception as exc:  # events are best effort
            _log(tracked, logging.WARNING, "could not record event %s: %s", reason, exc)


def _log(tracked: Tracked, level: int, msg: str, *args: Any) -> None:
    """Log with the JwtSecret's namespace/name in the text and as structured fields."""
    extra = {"namespace": tracked.namespace, "jwtsecret": tracked.name}
    log.log(level, f"[{tracked.namespace}/{tracked.name}] {msg}", *args, extra=extra)
