"""Blocking API calls on a fixed pool of threads, in priority order: outputs, then status, then events.

Gateways read the outputs, so a key rotation reaching thousands of JwtSecrets writes every ConfigMap
before any status patch, and Events (reporting only) wait behind both, off every reconcile's path:
`post` queues one and returns. The pool bounds the operator's concurrent API requests (`--concurrency`)
well under what API priority and fairness grants a ServiceAccount, and a 429 (too many requests) pauses
every lane for the server's Retry-After, then the call is tried again, up to `MAX_THROTTLED` times.
"""

from __future__ import annotations

import asyncio
import enum
import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from jwks_operator.model.errors import ApiCallError

log = logging.getLogger(__name__)

T = TypeVar("T")
MAX_THROTTLED = 5  # tries of one call answered 429
DEFAULT_PAUSE = 1.0  # seconds, for a 429 without Retry-After
MAX_PAUSE = 30.0
_STOP = 99  # a job telling one worker to end, after every real one


class Lane(enum.IntEnum):
    """What a call is for; a lower value goes first."""

    OUTPUT = 0  # reads and writes of outputs, finalizers, Secrets and CA bundles a pass needs
    STATUS = 1
    EVENT = 2


class Lanes(Protocol):
    """Where the engine's blocking API calls run (ApiLanes; unit tests run them directly)."""

    async def call(self, lane: Lane, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(*args)` in its lane's turn; its result or error."""
        ...

    def post(self, fn: Callable[..., Any], *args: Any) -> bool:
        """Queue a best-effort Event write; False when dropped."""
        ...

    def clear(self) -> None:
        """Drop every queued call (this replica stopped leading)."""
        ...

    def close(self) -> None:
        """No further calls are coming."""
        ...


@dataclass(order=True)
class _Job:
    lane: int
    seq: int
    call: Callable[[], Any] = field(compare=False)
    done: Callable[[Any, BaseException | None], None] | None = field(compare=False, default=None)
    throttled: int = field(compare=False, default=0)
    cancelled: bool = field(compare=False, default=False)  # its caller gave up: never started


class ApiLanes:
    """A priority queue of blocking calls served by `workers` threads."""

    def __init__(
        self,
        workers: int = 8,
        *,
        max_events: int = 10_000,
        on_drop: Callable[[], None] | None = None,
        on_cpu: Callable[[float], None] | None = None,
    ) -> None:
        self.workers = workers
        self._on_cpu = on_cpu  # told the CPU seconds each call took in its worker thread
        self.max_events = max_events  # Events waiting beyond this are dropped (counted by on_drop)
        self._on_drop = on_drop
        self._queue: queue.PriorityQueue[_Job] = queue.PriorityQueue()
        self._seq = itertools.count()
        self._events = 0  # Events queued or running
        self._lock = threading.Lock()
        self._paused_until = 0.0
        self._threads: list[threading.Thread] = []

    async def call(self, lane: Lane, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(*args)` in the pool, after every queued call of a lower lane; its result or error. A call
        cancelled before it started never starts (a pass cancelled when this replica stops leading)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()

        def done(result: Any, error: BaseException | None) -> None:
            loop.call_soon_threadsafe(_settle, future, result, error)

        job = _Job(int(lane), next(self._seq), lambda: fn(*args), done)
        self._put(job)
        try:
            return await future
        except asyncio.CancelledError:
            job.cancelled = True
            raise

    def post(self, fn: Callable[..., Any], *args: Any) -> bool:
        """Queue an Event write (best effort: its failure is logged); False when dropped because
        `max_events` are already waiting."""
        with self._lock:
            if self._events >= self.max_events:
                if self._on_drop is not None:
                    self._on_drop()
                return False
            self._events += 1

        def done(_: Any, error: BaseException | None) -> None:
            with self._lock:
                self._events -= 1
            if error is not None and not isinstance(error, asyncio.CancelledError):
                reason = getattr(error, "message", None) or type(error).__name__
                log.warning("could not record an event: %s", reason)

        self._put(_Job(int(Lane.EVENT), next(self._seq), lambda: fn(*args), done))
        return True

    def clear(self) -> None:
        """Drop every queued call (their callers see them cancelled); calls under way finish."""
        kept: list[_Job] = []
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job.lane == _STOP:
                kept.append(job)
            else:
                self._finish(job, None, asyncio.CancelledError())
        for job in kept:
            self._queue.put(job)

    def close(self) -> None:
        """Stop the threads once the queued calls are done (they are daemons: nothing waits for them)."""
        with self._lock:
            threads, self._threads = self._threads, []
        for _ in threads:
            self._queue.put(_Job(_STOP, next(self._seq), lambda: None))

    def _put(self, job: _Job) -> None:
        with self._lock:
            self._threads = [thread for thread in self._threads if thread.is_alive()]
            while len(self._threads) < self.workers:
                thread = threading.Thread(
                    target=self._work, name=f"jwks-api-{len(self._threads)}", daemon=True
                )
                thread.start()
                self._threads.append(thread)
        self._queue.put(job)

    def _work(self) -> None:
        while (job := self._queue.get()).lane != _STOP:
            if job.cancelled:
                self._finish(job, None, asyncio.CancelledError())
                continue
            while (pause := self._paused_until - time.monotonic()) > 0:
                time.sleep(pause)
            result: Any = None
            error: BaseException | None = None
            started = time.thread_time()
            try:
                result = job.call()
            except ApiCallError as exc:
                if exc.status == 429 and job.throttled + 1 < MAX_THROTTLED:
                    self._throttle(exc.retry_after)
                    job.throttled += 1
                    self._queue.put(job)  # same lane and place: it goes again first
                    continue
                error = exc
            except BaseException as exc:  # handed to the caller, whatever it is
                error = exc
            finally:
                if self._on_cpu is not None:
                    self._on_cpu(time.thread_time() - started)
            self._finish(job, result, error)

    @staticmethod
    def _finish(job: _Job, result: Any, error: BaseException | None) -> None:
        """Tell the caller; never raises (a worker outlives a closed event loop)."""
        if job.done is None:
            return
        try:
            job.done(result, error)
        except Exception:  # e.g. RuntimeError: the caller's event loop is closed
            log.debug("the caller of an API call is gone", exc_info=True)

    def _throttle(self, retry_after: float | None) -> None:
        """Hold every lane back until the API server's Retry-After has passed."""
        until = time.monotonic() + min(retry_after if retry_after is not None else DEFAULT_PAUSE, MAX_PAUSE)
        with self._lock:
            self._paused_until = max(self._paused_until, until)
        log.warning("the API server is throttling the operator (429): pausing API calls until it allows more")


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
