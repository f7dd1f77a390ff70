"""A lean list + watch loop (like controller-runtime's `Owns()` cache, without the cache): each event
of the objects a label selects goes to one callback, with none of Kopf's per-event machinery.

    list ─> every object delivered as (None, object), resourceVersion kept
      └─> watch from it (bookmarks asked for, `timeout` s) ─> each event delivered, its resourceVersion kept
            ├─ the stream ends (the server's timeout): watch again from the last resourceVersion, at once
            │  unless it ended within MIN_WATCH s with no event but bookmarks (a server or proxy closing
            │  every stream straight away): then as a failure, so the loop never spins
            ├─ 410 Gone (HTTP or an ERROR event): list again
            └─ any other failure: wait (doubling backoff, varied ±20 %), then watch again (list again
               if nothing was listed yet)

A label-selected watch sends DELETED when the label goes, so an object relabelled by hand is seen as
deleted. The loop is blocking (run it in a thread); `stop()` ends it from any thread.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Protocol

from jwks_operator.kube.watch_http import WatchExpiredError

__all__ = ["Deliver", "ListWatch", "WatchApi"]

log = logging.getLogger(__name__)

Deliver = Callable[[str | None, Mapping[str, Any]], None]
MIN_WATCH = 1.0  # seconds: a stream ending sooner with no event is not resumed at once (as client-go)


class WatchApi(Protocol):
    """What the loop needs of the API (kube/watch_http.WatchHttp; a fake in tests)."""

    what: str

    def list(self) -> tuple[list[Mapping[str, Any]], str]: ...

    def watch(self, resource_version: str, timeout: int) -> Iterator[Mapping[str, Any]]: ...

    def close(self) -> None: ...


class ListWatch:
    """Lists, then watches, until stopped; `deliver(type, object)` gets each object (type None for those
    of a list) and each ADDED/MODIFIED/DELETED event."""

    def __init__(
        self,
        api: WatchApi,
        deliver: Deliver,
        *,
        timeout: int = 300,
        backoff: tuple[float, float] = (1.0, 60.0),
        wait: Callable[[float], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api, self.deliver, self.timeout = api, deliver, timeout
        self.base, self.cap = backoff
        self._stopped = threading.Event()
        self._wait = wait or self._stopped.wait
        self._clock = clock
        self.resource_version = ""  # "" until listed, and again after a 410
        self.failures = 0

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    def stop(self) -> None:
        """End the loop: the stream being read is closed, a backoff wait cut short."""
        self._stopped.set()
        self.api.close()

    def run(self) -> None:
        """List and watch until `stop()`."""
        while not self.stopped:
            listed = not self.resource_version
            try:
                if listed:
                    self._list()
                started = self._clock()
                if self._watch() or self._clock() - started >= MIN_WATCH:
                    self.failures = 0  # the server ended the stream (its timeout): resume at once
                elif not self.stopped:
                    self._back_off("the stream ended at once with no event")
            except WatchExpiredError:
                log.debug("watch of %s expired (410); listing again", self.api.what)
                self.resource_version = ""
                if listed:  # expired straight after a list: do not spin
                    self._back_off("expired right after a list")
            except Exception as exc:  # any failure: back off, never die (ApiCallError, bad data)
                self._back_off(str(exc) or type(exc).__name__)

    def _list(self) -> None:
        items, resource_version = self.api.list()
        for item in items:
            if self.stopped:
                return
            self.deliver(None, item)
        self.resource_version = resource_version

    def _watch(self) -> int:
        """Deliver the stream's events until it ends; how many it delivered (bookmarks not counted)."""
        count = 0
        for event in self.api.watch(self.resource_version, self.timeout):
            if self.stopped:
                return count
            kind, obj = event.get("type"), event.get("object") or {}
            if kind == "ERROR":
                if obj.get("code") == 410:
                    raise WatchExpiredError(str(obj.get("message") or "410 Gone"))
                raise RuntimeError(f"watch error: {obj.get('code')} {obj.get('message')}")
            version = (obj.get("metadata") or {}).get("resourceVersion")
            if kind == "BOOKMARK":
                self.resource_version = str(version or self.resource_version)
                continue
            if kind not in ("ADDED", "MODIFIED", "DELETED"):
                raise RuntimeError(f"watch sent an event of unknown type {kind!r}")
            self.deliver(kind, obj)
            count += 1
            if version:
                self.resource_version = str(version)
            self.failures = 0
        return count

    def _back_off(self, why: str) -> None:
        self.failures += 1
        delay = min(self.base * 2 ** (self.failures - 1), self.cap) * random.uniform(0.8, 1.2)  # noqa: S311
        if not self.stopped:
            log.warning("watch of %s failed (%s); retrying in %.1f s", self.api.what, why, delay)
            self._wait(delay)
