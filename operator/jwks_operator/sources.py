"""JWK URLs: one shared source per URL and TLS trust, fetched once for all JwtSecrets naming it.

Each source keeps its last good document (a bad one never replaces it), its cache validators, its
failure count with backoff, and its next refresh planned from the response's caching headers.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from . import keys as keylib
from .errors import FetchError, JwksError, StaleError
from .fetch import Fetcher, FetchResult
from .freshness import Freshness, RefreshPolicy, freshness
from .keys import KeySet
from .kube import Kube
from .metrics import Metrics
from .scheduler import Scheduler
from .spec import CaBundleRef
from .status import timestamp
from .tracked import ObjKey, Tracked
from .trust import check_ca_bundle

log = logging.getLogger(__name__)

RETAIN_MARGIN = 0.05  # re-publish this long after a retained key expires, so it is surely gone


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
class UrlSource:
    """One JWK URL (with one TLS trust setting) shared by all JwtSecrets naming it."""

    key: str
    url: str
    allow_http: bool
    namespace: str | None = None  # where ca lives
    ca: CaBundleRef | None = None
    subscribers: dict[ObjKey, RefreshPolicy] = field(default_factory=dict)
    document: bytes | None = None
    etag: str | None = None
    last_modified: str | None = None
    fetched_at: datetime | None = None  # last successful fetch (200 or 304)
    changed_at: datetime | None = None  # when the document held now was fetched (its first 200)
    basis: tuple[str, str] | None = None  # (reason, message): why it is refreshed when it is
    expires_at: datetime | None = None  # when the provider said the keys need refreshing
    next_refresh: datetime | None = None
    last_attempt: float = float("-inf")  # monotonic
    error: FetchError | None = None
    failures: int = 0
    attempted: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    parsed: dict[tuple[str, ...], KeySet | JwksError] = field(default_factory=dict)
    removed: dict[str, tuple[dict[str, Any], datetime]] = field(default_factory=dict)  # by thumbprint
    retaining: dict[ObjKey, float] = field(default_factory=dict)  # each subscriber's retainRemovedFor

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

    def keys_for(
        self, algorithms: tuple[str, ...], retain_for: float, now: datetime
    ) -> tuple[KeySet, float | None]:
        """The keys to publish: the document's plus those it dropped less than `retain_for` seconds
        ago; and the seconds until the soonest of those expires (None: none retained)."""
        current = self.key_set(algorithms)
        self.prune(now)
        retained = [(jwk, since) for jwk, since in self.removed.values() if _age(since, now) < retain_for]
        if not retained:
            return current, None
        combined = keylib.build_key_set([*current.keys, *(jwk for jwk, _ in retained)], algorithms=algorithms)
        expiry = retain_for - max(_age(since, now) for _, since in retained)  # > 0: still retained
        return KeySet(combined.keys, current.rejected), expiry + RETAIN_MARGIN

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
        self.document, self.parsed, self.changed_at = body, {(): parsed}, now
        self.prune(now)

    def prune(self, now: datetime) -> None:
        """Forget removed keys that no subscriber retains any more."""
        longest = max(self.retaining.values(), default=0.0)
        self.removed = {tp: (jwk, t) for tp, (jwk, t) in self.removed.items() if _age(t, now) < longest}

    def health(self, policy: RefreshPolicy, now: datetime) -> JwksError | None:
        """Why the published keys may be wrong: the last fetch error, made a StaleError once the keys
        are more than the policy's staleAfter past their refresh time."""
        error = self.error
        if error is None or self.expires_at is None:
            return error
        if now <= self.expires_at + timedelta(seconds=policy.stale_after):
            return error
        return StaleError(
            f"keys are stale: due for refresh at {timestamp(self.expires_at)}, "
            f"refreshes failing since: {error.message}"
        )


def _age(since: datetime, now: datetime) -> float:
    return (now - since).total_seconds()


class Sources:
    """The URL sources by key: their subscribers, their fetches and their planned refreshes."""

    def __init__(
        self,
        kube: Kube,
        fetcher: Fetcher,
        scheduler: Scheduler,
        *,
        policy: RefreshPolicy,
        retry: Backoff,
        metrics: Metrics,
        concurrency: int,
    ) -> None:
        self.kube = kube
        self.fetcher = fetcher
        self.scheduler = scheduler
        self.clock = scheduler.clock
        self.policy = policy
        self.retry = retry
        self.metrics = metrics
        self.by_key: dict[str, UrlSource] = {}
        self._slots = asyncio.Semaphore(concurrency)

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
        return source

    def unsubscribe(self, key: ObjKey, source_key: str) -> None:
        """Remove a subscriber; a source nobody reads any more is dropped with its schedule."""
        source = self.by_key.get(source_key)
        if source is None:
            return
        source.subscribers.pop(key, None)
        source.retaining.pop(key, None)
        if not source.subscribers:
            del self.by_key[source_key]
            self.scheduler.cancel(("url", source_key))
            if not any(s.url == source.url for s in self.by_key.values()):
                self.metrics.forget_url(source.url)

    def clear(self) -> None:
        """Forget every source (standing by)."""
        for url in {source.url for source in self.by_key.values()}:
            self.metrics.forget_url(url)
        self.by_key.clear()

    def spacing_left(self, source: UrlSource, spacing: float) -> float:
        """Seconds until `spacing` has passed since the source's last fetch attempt."""
        return max(source.last_attempt + spacing - self.clock.monotonic(), 0.0)

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
            if result.status == 200 and result.body != source.document:
                assert result.body is not None
                parsed = keylib.parse_jwks_document(result.body)  # a bad document never replaces a good one
        except JwksError as exc:
            self._failed(source, exc)
            return
        except Exception as exc:  # unmapped (a library's own error, a bug): the URL must stay scheduled
            log.exception("fetching %s failed unexpectedly", source.url)
            self._failed(source, FetchError(f"unexpected {type(exc).__name__} while fetching (see the log)"))
            return
        self._succeeded(source, result, parsed, started)

    async def _get(self, source: UrlSource) -> tuple[FetchResult, float]:
        """One (conditional, once a document is held) GET; the result and when the request started."""
        conditional = source.document is not None
        ca_bundle = None
        if source.ca is not None and source.namespace is not None:
            pem = await asyncio.to_thread(self.kube.read_ca_bundle, source.namespace, source.ca)
            ca_bundle = check_ca_bundle(pem, source.ca)
        started = self.clock.monotonic()
        result = await asyncio.to_thread(
            self.fetcher.fetch,
            source.url,
            etag=source.etag if conditional else None,
            last_modified=source.last_modified if conditional else None,
            allow_http=source.allow_http,
            ca_bundle=ca_bundle,
        )
        self.metrics.fetch_seconds.labels(source.url).observe(self.clock.monotonic() - started)
        return result, started

    def _failed(self, source: UrlSource, exc: JwksError) -> None:
        source.failures += 1
        source.error = exc if isinstance(exc, FetchError) else FetchError(exc.message)
        self.metrics.fetches.labels(source.url, "error").inc()
        self.metrics.failures.labels(source.url).set(source.failures)
        delay = self.retry.delay(source.failures, getattr(exc, "retry_after", None))
        log.warning("fetching %s failed (%d in a row): %s", source.url, source.failures, exc.message)
        self._plan(source, delay)

    def _succeeded(
        self, source: UrlSource, result: FetchResult, parsed: KeySet | None, started: float
    ) -> None:
        now = self.clock.now()
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
        fresh = freshness(result.headers, now)
        interval = self._interval(source, fresh)
        source.basis = fresh.basis(self._fastest(source, fresh))
        if interval is not None:  # freshness counts from the request (RFC 9111 4.2.3), not the reply
            interval = max(interval - (self.clock.monotonic() - started), 0.0)
        self._plan(source, interval)
        source.expires_at = source.next_refresh

    def _interval(self, source: UrlSource, fresh: Freshness) -> float | None:
        """The next refresh: the soonest any subscriber's policy allows (None: never)."""
        intervals = [fresh.next_interval(policy) for policy in source.subscribers.values()]
        due = [i for i in intervals if i is not None]
        return min(due) if due else (None if intervals else fresh.next_interval(self.policy))

    def _fastest(self, source: UrlSource, fresh: Freshness) -> RefreshPolicy:
        """The policy that sets the source's refresh: the subscriber's asking soonest (never: the default)."""
        timed = [(fresh.next_interval(p), p) for p in source.subscribers.values()]
        due = [(i, p) for i, p in timed if i is not None]
        if due:
            return min(due, key=lambda pair: pair[0])[1]
        return next(iter(source.subscribers.values()), self.policy)

    def _plan(self, source: UrlSource, delay: float | None) -> None:
        if delay is None:
            source.next_refresh = None
            self.scheduler.cancel(("url", source.key))
            self.metrics.next_refresh.labels(source.url).set(float("inf"))
            return
        source.next_refresh = self.clock.now() + timedelta(seconds=delay)
        self.metrics.next_refresh.labels(source.url).set(source.next_refresh.timestamp())
        self.scheduler.schedule(("url", source.key), delay, replace_later=True)
