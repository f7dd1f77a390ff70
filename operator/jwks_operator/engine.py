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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from . import keys as keylib
from .cache import RefreshPolicy, freshness
from .errors import FetchError, JwksError, SpecError
from .fetch import Fetcher
from .keys import KeySet
from .kube import Kube, Owner, TargetKind
from .outputs import digest, render
from .spec import JwtSecretSpec, parse_spec, target_name
from .status import Outcome, build_status, degraded_transition, merge_patch

log = logging.getLogger(__name__)

ObjKey = tuple[str, str]
Item = tuple[Literal["obj", "url"], Any]
EventType = Literal["Normal", "Warning"]
BACKOFF_BASE = 5.0
BACKOFF_MAX = 600.0
TIMESTAMPS_ONLY = frozenset({"lastFetchTime", "nextRefreshTime"})


def backoff(failures: int, retry_after: float | None = None, *, jitter: float = 0.2) -> float:
    """Exponential backoff with jitter, at least the server's Retry-After."""
    delay: float = min(BACKOFF_BASE * 2.0 ** max(failures - 1, 0), BACKOFF_MAX)
    delay *= 1 + random.uniform(-jitter, jitter)  # noqa: S311 - jitter, not crypto
    return max(delay, retry_after or 0.0)


@dataclass
class Tracked:
    """One JwtSecret as the engine knows it."""

    namespace: str
    name: str
    uid: str
    generation: int
    spec: JwtSecretSpec | None
    spec_error: SpecError | None
    status: dict[str, Any]
    published: KeySet | None = None
    published_digest: str | None = None
    fetched_at: datetime | None = None
    failures: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def owner(self) -> Owner:
        return Owner(self.namespace, self.name, self.uid)


@dataclass
class UrlSource:
    """One JWK URL shared by all JwtSecrets naming it."""

    url: str
    allow_http: bool
    subscribers: set[ObjKey] = field(default_factory=set)
    document: bytes | None = None
    etag: str | None = None
    last_modified: str | None = None
    fetched_at: datetime | None = None
    next_refresh: datetime | None = None
    error: FetchError | None = None
    failures: int = 0
    attempted: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    parsed: dict[tuple[str, ...], KeySet | JwksError] = field(default_factory=dict)

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


class Engine:
    """Level-triggered reconciler fed by watch events; its `run()` loop fires due refreshes."""

    def __init__(
        self,
        kube: Kube,
        fetcher: Fetcher,
        *,
        policy: RefreshPolicy | None = None,
        concurrency: int = 8,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.kube = kube
        self.fetcher = fetcher
        self.policy = policy or RefreshPolicy()
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
        meta = body.get("metadata") or {}
        key: ObjKey = (str(meta.get("namespace")), str(meta.get("name")))
        if event_type == "DELETED" or meta.get("deletionTimestamp"):
            self.forget(key)
            return
        uid, generation = str(meta.get("uid")), int(meta.get("generation") or 0)
        known = self.objects.get(key)
        if known is not None and known.uid == uid and known.generation == generation:
            return  # our own status write echoing back, or a metadata-only change
        if known is not None and known.uid != uid:
            self.forget(key)
            known = None
        try:
            spec, error = parse_spec(body.get("spec")), None
        except SpecError as exc:
            spec, error = None, exc
        tracked = Tracked(key[0], key[1], uid, generation, spec, error, dict(body.get("status") or {}))
        if known is not None:
            tracked.published, tracked.fetched_at = known.published, known.fetched_at
            tracked.published_digest = known.published_digest
            if (
                known.spec is not None
                and known.spec.jwk_url
                and (spec is None or spec.jwk_url != known.spec.jwk_url)
            ):
                self._unsubscribe(key, known.spec.jwk_url)
        self.objects[key] = tracked
        if spec is not None and spec.jwk_url is not None:
            source = self.sources.get(spec.jwk_url)
            if source is None:
                source = self.sources[spec.jwk_url] = UrlSource(spec.jwk_url, spec.allow_insecure_http)
            source.allow_http = source.allow_http or spec.allow_insecure_http
            source.subscribers.add(key)
            if known is None and self._resumable(tracked) and not source.attempted:
                self._schedule(("url", source.url), self._resume_delay(tracked))
                return
        self._schedule(("obj", key), 0.0)

    def _resumable(self, tracked: Tracked) -> bool:
        """After a restart: the stored status already describes this generation and is healthy."""
        status = tracked.status
        conditions: list[dict[str, Any]] = status.get("conditions") or []
        ready = next((c for c in conditions if c.get("type") == "Ready"), {})
        return status.get("observedGeneration") == tracked.generation and ready.get("status") == "True"

    def _resume_delay(self, tracked: Tracked) -> float:
        """Seconds until the stored nextRefreshTime, spread a little so restarts do not stampede."""
        raw = tracked.status.get("nextRefreshTime")
        try:
            due = datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
        except ValueError:
            return random.uniform(0, 5)  # noqa: S311
        return max((due - self.now()).total_seconds(), 0.0) + random.uniform(0, 5)  # noqa: S311

    def forget(self, key: ObjKey) -> None:
        """Stop tracking a deleted JwtSecret (its outputs go with it via ownerReferences)."""
        tracked = self.objects.pop(key, None)
        self._due.pop(("obj", key), None)
        if tracked is not None and tracked.spec is not None and tracked.spec.jwk_url:
            self._unsubscribe(key, tracked.spec.jwk_url)

    def _unsubscribe(self, key: ObjKey, url: str) -> None:
        source = self.sources.get(url)
        if source is not None:
            source.subscribers.discard(key)
            if not source.subscribers:
                del self.sources[url]
                self._due.pop(("url", url), None)

    # -- scheduling ---------------------------------------------------------------------------

    def _schedule(self, item: Item, delay: float) -> None:
        due = asyncio.get_running_loop().time() + delay
        current = self._due.get(item)
        if current is not None and current <= due:
            return
        self._due[item] = due
        self._seq += 1
        heapq.heappush(self._heap, (due, self._seq, item))
        self._wakeup.set()

    def _reschedule(self, item: Item, delay: float) -> None:
        self._due.pop(item, None)
        self._schedule(item, delay)

    async def run(self) -> None:
        """Fire due items forever (cancel to stop)."""
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
        try:
            if kind == "url":
                source = self.sources.get(key)
                if source is not None:
                    await self._refresh(source)
            else:
                await self.reconcile(key)
        except Exception:
            log.exception("unexpected error processing %s %s; retrying", kind, key)
            self._schedule(item, backoff(3))

    # -- URL sources --------------------------------------------------------------------------

    async def _refresh(self, source: UrlSource) -> None:
        """Fetch a URL once for all its subscribers, then reconcile each of them."""
        async with source.lock:
            await self._fetch(source)
        await asyncio.gather(*(self.reconcile(k, from_source=True) for k in list(source.subscribers)))

    async def _fetch(self, source: UrlSource) -> None:
        source.attempted = True
        try:
            async with self._slots:
                result = await asyncio.to_thread(
                    self.fetcher.fetch,
                    source.url,
                    etag=source.etag if source.document else None,
                    last_modified=source.last_modified if source.document else None,
                    allow_http=source.allow_http,
                )
            parsed = None
            if result.status == 200 and result.body != source.document:
                assert result.body is not None
                parsed = keylib.parse_jwks_document(result.body)  # a bad document never replaces a good one
        except JwksError as exc:
            source.failures += 1
            source.error = exc if isinstance(exc, FetchError) else FetchError(exc.message)
            delay = backoff(source.failures, getattr(exc, "retry_after", None))
            log.warning("fetching %s failed (%d in a row): %s", source.url, source.failures, exc.message)
        else:
            now = self.now()
            if parsed is not None:
                source.document, source.parsed = result.body, {(): parsed}
            source.etag = result.headers.get("etag") or source.etag
            source.last_modified = result.headers.get("last-modified") or source.last_modified
            source.fetched_at, source.error, source.failures = now, None, 0
            interval = freshness(result.headers, now).next_interval(self.policy)
            if interval is None:
                source.next_refresh = None
                return
            delay = interval
        source.next_refresh = self.now() + timedelta(seconds=delay)
        self._reschedule(("url", source.url), delay)

    # -- reconciliation -----------------------------------------------------------------------

    async def reconcile(self, key: ObjKey, *, from_source: bool = False) -> None:
        """Resolve, publish and report one JwtSecret."""
        tracked = self.objects.get(key)
        if tracked is None:
            return
        async with tracked.lock:
            outcome = await self._resolve_and_publish(tracked, from_source=from_source)
            await self._report(tracked, outcome)

    async def _resolve_and_publish(self, tracked: Tracked, *, from_source: bool) -> Outcome:
        spec = tracked.spec
        source_text = spec.describe_source() if spec else "invalid"
        base = Outcome(
            source=source_text,
            generation=tracked.generation,
            key_set=tracked.published,
            fetched_at=tracked.fetched_at,
            failures=tracked.failures,
        )
        if spec is None:
            assert tracked.spec_error is not None
            return _with(base, error=tracked.spec_error, failures=0)
        kind: TargetKind = "Secret" if spec.symmetric else "ConfigMap"
        base = _with(base, target_kind=kind, target_name=target_name(tracked.name, spec))
        source = self.sources.get(spec.jwk_url) if spec.jwk_url else None
        try:
            if source is not None and not from_source and not source.attempted:
                async with source.lock:
                    if not source.attempted:
                        await self._fetch(source)
            key_set, fetched_at = await self._resolve(tracked, spec, source)
            await self._publish(tracked, spec, kind, key_set, fetched_at)
        except JwksError as exc:
            tracked.failures += 1
            if source is None:
                self._schedule(("obj", (tracked.namespace, tracked.name)), backoff(tracked.failures))
            return _with(
                base,
                error=exc,
                failures=source.failures if source else tracked.failures,
                next_refresh=source.next_refresh if source else None,
            )
        tracked.failures = 0
        error = source.error if source is not None else None
        return _with(
            base,
            key_set=tracked.published,
            fetched_at=tracked.fetched_at,
            error=error,
            failures=source.failures if source else 0,
            next_refresh=source.next_refresh if source else None,
        )

    async def _resolve(
        self, tracked: Tracked, spec: JwtSecretSpec, source: UrlSource | None
    ) -> tuple[KeySet, datetime]:
        if source is not None:
            return source.key_set(spec.algorithms), source.fetched_at or self.now()
        if spec.kind == "jwks":
            assert spec.jwks is not None
            candidates = spec.jwks["keys"]
            key_set = keylib.build_key_set(candidates, algorithms=spec.algorithms)
            return keylib.require_keys(key_set, "spec.static.jwks"), self.now()
        if spec.kind == "pem":
            assert spec.pem is not None
            return keylib.keys_from_pem(spec.pem, kid=spec.kid, algorithms=spec.algorithms), self.now()
        ref = spec.secret_ref
        assert ref is not None
        secret = await asyncio.to_thread(self.kube.read_secret_key, tracked.namespace, ref.name, ref.key)
        return keylib.key_from_hmac(secret, kid=ref.kid, algorithms=spec.algorithms), self.now()

    async def _publish(
        self, tracked: Tracked, spec: JwtSecretSpec, kind: TargetKind, key_set: KeySet, fetched_at: datetime
    ) -> None:
        data = render(spec, key_set)
        name = target_name(tracked.name, spec)
        new_digest = f"{kind}/{name}/{digest(data)}"
        if new_digest != tracked.published_digest:
            result = await asyncio.to_thread(self.kube.publish, kind, tracked.owner, name, data)
            if result != "unchanged":
                message = f"{len(key_set.keys)} key(s) {result} in {kind} {name}"
                await self._event(tracked, "Normal", "Published", message)
            tracked.published_digest = new_digest
        tracked.published, tracked.fetched_at = key_set, fetched_at

    async def _report(self, tracked: Tracked, outcome: Outcome) -> None:
        new = build_status(outcome, tracked.status, self.now())
        patch = merge_patch(tracked.status, new)
        if patch is None or set(patch) <= TIMESTAMPS_ONLY:
            return  # a revalidation that changed nothing writes nothing
        try:
            await asyncio.to_thread(self.kube.patch_status, tracked.namespace, tracked.name, patch)
        except Exception as exc:
            if getattr(exc, "status", None) == 404:
                self.forget((tracked.namespace, tracked.name))
                return
            raise
        problem = degraded_transition(tracked.status, new)
        tracked.status = new
        if problem is not None:
            await self._event(tracked, "Warning", *problem)

    async def _event(
        self, tracked: Tracked, type_: Literal["Normal", "Warning"], reason: str, msg: str
    ) -> None:
        try:
            await asyncio.to_thread(self.kube.event, tracked.owner, type_, reason, msg)
        except Exception as exc:  # events are best effort
            log.warning(
                "could not record event %s on %s/%s: %s", reason, tracked.namespace, tracked.name, exc
            )


def _with(outcome: Outcome, **changes: Any) -> Outcome:
    return replace(outcome, **changes)
