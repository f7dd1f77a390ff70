"""JWK URLs: one shared source per URL and TLS trust, fetched once for all JwtSecrets naming it.

Each source (url_source.UrlSource) keeps its last good document, its cache validators, its failure
count with backoff, and its next refresh planned from the response's caching headers.

One tenant must not hurt the others (#14): what a source keeps is bounded (url_source), fetches run in
threads of their own (a provider that trickles its answer never holds up API calls, which use
the API lanes' threads), the operator-wide minimum interval binds every subscriber's policy, and a URL
nobody reads leaves no metric series.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any, TypeVar

from jwks_operator.engine.scheduler import Scheduler
from jwks_operator.engine.tracked import ObjKey, Tracked
from jwks_operator.engine.url_source import UrlSource
from jwks_operator.fetch.fetcher import Fetcher, FetchResult
from jwks_operator.fetch.trust import check_ca_bundle
from jwks_operator.keys import keyset as keylib
from jwks_operator.keys.keyset import KeySet
from jwks_operator.kube.adapter import Kube
from jwks_operator.kube.lanes import Lane, Lanes
from jwks_operator.model.errors import FetchError, JwksError
from jwks_operator.model.freshness import Freshness, RefreshPolicy, freshness
from jwks_operator.model.urls import scrubbed
from jwks_operator.runtime.metrics import Metrics

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential retry delays with jitter: base * 2^(failures-1), capped, at least Retry-After."""

    base: float = 5.0
    cap: float = 600.0
    jitter: float = 0.2

    def delay(self, failures: int, retry_after: float | None = None) -> float:
        delay: float = min(self.base * 2.0 ** max(failures - 1, 0), self.cap)
        delay *= 1 + random.uniform(-self.jitter, self.jitter)  # noqa: S311 - jitter, not crypto
        return max(delay, retry_after or 0.0)


class Sources:
    """The URL sources by key: their subscribers, their fetches and their planned refreshes."""

    def __init__(
        self,
        kube: Kube,
        lanes: Lanes,
        fetcher: Fetcher,
        scheduler: Scheduler,
        *,
        policy: RefreshPolicy,
        retry: Backoff,
        metrics: Metrics,
        concurrency: int,
    ) -> None:
        self.kube = kube
        self.lanes = lanes
        self.fetcher = fetcher
        self.scheduler = scheduler
        self.clock = scheduler.clock
        self.policy = policy
        self.retry = retry
        self.metrics = metrics
        self.by_key: dict[str, UrlSource] = {}
        self._slots = asyncio.Semaphore(concurrency)
        # Fetches wait on providers in threads of their own: API calls (the lanes' threads)
        # never queue behind a provider that trickles its answer. As many as fetches may run at once.
        self.pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="jwks-fetch")

    def close(self) -> None:
        """The engine stops: no new fetch starts; returns at once (a fetch under way ends at its deadline)."""
        self.pool.shutdown(wait=False, cancel_futures=True)

    def get(self, key: str | None) -> UrlSource | None:
        return self.by_key.get(key) if key else None

    def subscribe(self, tracked: Tracked) -> UrlSource | None:
        """Add a JwtSecret to the source it reads (made on first use); None if it reads no URL."""
        spec, key = tracked.spec, tracked.source_key
        if spec is None or spec.jwk_url is None or key is None:
            return None
        source = self.by_key.get(key)
        if source is None:
            source = UrlSource(key, spec.jwk_url, spec.allow_insecure_http, tracked.namespace, spec.ca_bundle)
            source.failures = tracked.failures if tracked.status.get("lastError") else 0  # across restarts
            self.by_key[key] = source
        source.allow_http = source.allow_http or spec.allow_insecure_http
        source.subscribers[tracked.key] = tracked.policy
        source.retaining[tracked.key] = spec.retain_removed_for
        source.prune(self.clock.now())
        return source

    def unsubscribe(self, key: ObjKey, source_key: str) -> None:
        """Remove a subscriber; a source nobody reads any more is dropped with its schedule."""
        source = self.by_key.get(source_key)
        if source is None:
            return
        source.subscribers.pop(key, None)
        source.retaining.pop(key, None)
        source.prune(self.clock.now())
        if not source.subscribers:
            del self.by_key[source_key]
            self.scheduler.cancel(("url", source_key))
            if not any(s.label == source.label for s in self.by_key.values()):
                self.metrics.forget_url(source.label)

    def clear(self) -> None:
        """Forget every source (standing by)."""
        for label in {source.label for source in self.by_key.values()}:
            self.metrics.forget_url(label)
        self.by_key.clear()

    def spacing_left(self, source: UrlSource, spacing: float) -> float:
        """Seconds until `spacing`, at least the operator-wide minimum interval, has passed since the
        source's last fetch attempt."""
        spacing = max(spacing, self.policy.min_interval)
        return max(source.last_attempt + spacing - self.clock.monotonic(), 0.0)

    def floored(self, policy: RefreshPolicy) -> RefreshPolicy:
        """A subscriber's policy held to the operator-wide minimum interval (--min-interval): a spec may
        refresh less often than the operator allows, never more often (its URL may be shared)."""
        floor = self.policy.min_interval
        if policy.min_interval >= floor and policy.max_interval >= floor:
            return policy
        return replace(
            policy, min_interval=max(policy.min_interval, floor), max_interval=max(policy.max_interval, floor)
        )

    def _dropped(self, source: UrlSource) -> bool:
        """Whether nobody reads `source` any more (its last subscriber left while it was fetched)."""
        return self.by_key.get(source.key) is not source

    async def first_fetch(self, source: UrlSource) -> bool:
        """Fetch a source that was never fetched; subscribers arriving meanwhile wait for that fetch.
        True if this call fetched it."""
        if source.document is None and source.error is None:  # never fetched, or the first fetch is running
            async with source.lock:
                if not source.attempted:
                    await self._fetch(source)
                    return True
        return False

    async def refresh(self, source: UrlSource) -> bool:
        """Fetch a URL once for all its subscribers; False if that changed nothing (a revalidation)."""
        async with source.lock:
            before = (source.attempted, source.document, source.error, source.failures)
            await self._fetch(source)
        return before != (True, source.document, source.error, source.failures)

    async def _fetch(self, source: UrlSource) -> None:
        source.attempted = True
        source.last_attempt = self.clock.monotonic()
        try:
            async with self._slots:
                result, started = await self._get(source)
            parsed = None
            if result.status == 200 and result.body != source.document and not self._dropped(source):
                assert result.body is not None
                # A bad document never replaces a good one; parsed in a fetch thread (a provider's large
                # document keeps no other work waiting).
                parsed = await self._in_pool(keylib.parse_jwks_document, result.body)
        except JwksError as exc:
            self._failed(source, exc)
            return
        except Exception as exc:  # unmapped (a library's own error, a bug): the URL must stay scheduled
            log.exception("fetching %s failed unexpectedly", source.label)
            self._failed(source, FetchError(f"unexpected {type(exc).__name__} while fetching (see the log)"))
            return
        self._succeeded(source, result, parsed, started)

    async def _get(self, source: UrlSource) -> tuple[FetchResult, float]:
        """One (conditional, once a document is held) GET; the result and when the request started."""
        conditional = source.document is not None
        ca_bundle = None
        if source.ca is not None and source.namespace is not None:
            pem = await self.lanes.call(Lane.OUTPUT, self.kube.read_ca_bundle, source.namespace, source.ca)
            ca_bundle = check_ca_bundle(pem, source.ca)
        started = self.clock.monotonic()
        result = await self._in_pool(
            functools.partial(
                self.fetcher.fetch,
                source.url,
                etag=source.etag if conditional else None,
                last_modified=source.last_modified if conditional else None,
                allow_http=source.allow_http,
                ca_bundle=ca_bundle,
            )
        )
        if not self._dropped(source):  # else its series are gone and stay gone
            self.metrics.fetch_seconds.labels(source.label).observe(self.clock.monotonic() - started)
        return result, started

    async def _in_pool(self, call: Callable[..., T], *args: Any) -> T:
        """`call(*args)` in a fetch thread (its CPU counted)."""
        return await asyncio.get_running_loop().run_in_executor(self.pool, self._timed, call, *args)

    def _timed(self, call: Callable[..., T], *args: Any) -> T:
        started = time.thread_time()
        try:
            return call(*args)
        finally:
            self.metrics.thread_cpu.labels("fetch").inc(time.thread_time() - started)

    def _failed(self, source: UrlSource, exc: JwksError) -> None:
        if self._dropped(source):
            return
        source.failures += 1
        message = scrubbed(exc.message, source.url)  # HTTP libraries quote the URL, credentials and all
        retry_after = getattr(exc, "retry_after", None)
        source.error = FetchError(message, retry_after=retry_after)
        self.metrics.fetches.labels(source.label, "error").inc()
        self.metrics.failures.labels(source.label).set(source.failures)
        delay = self.retry.delay(source.failures, getattr(exc, "retry_after", None))
        log.warning("fetching %s failed (%d in a row): %s", source.label, source.failures, message)
        self._plan(source, delay)

    def _succeeded(
        self, source: UrlSource, result: FetchResult, parsed: KeySet | None, started: float
    ) -> None:
        if self._dropped(source):
            return
        now = self.clock.now()
        if parsed is not None:
            assert result.body is not None
            source.accept(result.body, parsed, now)
            log.info("fetched %s: %d key(s)", source.label, len(parsed.keys))
        if result.status == 200:
            source.etag = result.headers.get("etag")
            source.last_modified = result.headers.get("last-modified")
        source.fetched_at, source.error, source.failures = now, None, 0
        self.metrics.fetches.labels(source.label, "ok" if result.status == 200 else "not_modified").inc()
        self.metrics.failures.labels(source.label).set(0)
        self.metrics.last_success.labels(source.label).set(now.timestamp())
        fresh = freshness(result.headers, now)
        interval = self._interval(source, fresh)
        source.basis = fresh.basis(self._fastest(source, fresh))
        if interval is not None:  # freshness counts from the request (RFC 9111 4.2.3), not the reply
            interval = max(interval - (self.clock.monotonic() - started), 0.0)
        self._plan(source, interval)
        source.expires_at = source.next_refresh

    def _interval(self, source: UrlSource, fresh: Freshness) -> float | None:
        """The next refresh: the soonest any subscriber's policy allows, within the operator's floor (None:
        never)."""
        intervals = [fresh.next_interval(self.floored(policy)) for policy in set(source.subscribers.values())]
        due = [i for i in intervals if i is not None]
        return min(due) if due else (None if intervals else fresh.next_interval(self.policy))

    def _fastest(self, source: UrlSource, fresh: Freshness) -> RefreshPolicy:
        """The policy that sets the source's refresh: the subscriber's asking soonest (never: the default),
        within the operator's floor."""
        policies = [self.floored(p) for p in set(source.subscribers.values())]
        timed = [(fresh.next_interval(p), p) for p in policies]
        due = [(i, p) for i, p in timed if i is not None]
        if due:
            return min(due, key=lambda pair: pair[0])[1]
        return next(iter(policies), self.policy)

    def _plan(self, source: UrlSource, delay: float | None) -> None:
        if delay is None:
            source.next_refresh = None
            self.scheduler.cancel(("url", source.key))
            self.metrics.next_refresh.labels(source.label).set(float("inf"))
            return
        source.next_refresh = self.clock.now() + timedelta(seconds=delay)
        self.metrics.next_refresh.labels(source.label).set(source.next_refresh.timestamp())
        self.scheduler.schedule(("url", source.key), delay, replace_later=True)
