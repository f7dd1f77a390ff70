"""When work happens: one heap of due times fired by one loop (no task or timer per object).

The clock is injectable: tests pass a fake one and fire due items themselves with `fire_due()`.
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any, Literal

# Reconcile a JwtSecret, refresh a URL, resync an output, take a deleted JwtSecret out of a shared target.
Item = tuple[Literal["obj", "url", "resync", "leave"], Any]


class Clock:
    """The engine's time: wall-clock `now()` for status and plans, `monotonic()` for due times."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class Scheduler:
    """Items due at monotonic times; each fires as its own task, at most once per scheduling."""

    def __init__(self, fire: Callable[[Item], Coroutine[Any, Any, None]], clock: Clock) -> None:
        self.clock = clock
        self.tasks: set[asyncio.Task[None]] = set()
        self._fire = fire
        self._heap: list[tuple[float, int, Item]] = []
        self._due: dict[Item, float] = {}
        self._seq = 0
        self._wakeup = asyncio.Event()

    def schedule(self, item: Item, delay: float, *, replace_later: bool = False) -> None:
        """Make `item` due in `delay` seconds (earlier wins unless `replace_later`)."""
        due = self.clock.monotonic() + delay
        current = self._due.get(item)
        if current is not None and current <= due and not replace_later:
            return
        self._due[item] = due
        self._seq += 1
        heapq.heappush(self._heap, (due, self._seq, item))
        self._wakeup.set()

    def cancel(self, item: Item) -> None:
        self._due.pop(item, None)

    def due_in(self, item: Item) -> float | None:
        """Seconds until `item` fires (None: not scheduled)."""
        due = self._due.get(item)
        return None if due is None else due - self.clock.monotonic()

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run `work` as a task that `clear()` and the end of `run()` cancel."""
        task = asyncio.create_task(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def fire_due(self) -> float | None:
        """Start every item that is due; return the seconds until the next one (None: none)."""
        now = self.clock.monotonic()
        while self._heap and self._heap[0][0] <= now:
            due, _, item = heapq.heappop(self._heap)
            if self._due.get(item) != due:
                continue  # superseded or cancelled
            del self._due[item]
            self.spawn(self._fire(item))
        return self._heap[0][0] - now if self._heap else None

    async def run(self) -> None:
        """Fire due items until cancelled."""
        try:
            while True:
                delay = self.fire_due()
                self._wakeup.clear()
                await self._sleep(delay)
        finally:
            self._cancel_tasks()

    async def _sleep(self, delay: float | None) -> None:
        """Until `delay` seconds pass (None: forever) or an item is scheduled."""
        waits: list[asyncio.Future[Any]] = [asyncio.ensure_future(self._wakeup.wait())]
        if delay is not None:
            waits.append(asyncio.ensure_future(self.clock.sleep(delay)))
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()

    def clear(self) -> None:
        """Drop every item and cancel running work."""
        self._cancel_tasks()
        self._heap.clear()
        self._due.clear()

    def _cancel_tasks(self) -> None:
        for task in list(self.tasks):
            task.cancel()
