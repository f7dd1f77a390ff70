"""The scheduler on a fake clock: due times, which scheduling wins, and the run loop's sleeps."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from jwks_operator.engine.scheduler import Item, Scheduler
from tests.unit.fakes import FakeClock

pytestmark = pytest.mark.asyncio


def recorder() -> tuple[FakeClock, Scheduler, list[tuple[Item, float]]]:
    """A scheduler on a fake clock whose work records (item, monotonic time fired)."""
    clock = FakeClock()
    fired: list[tuple[Item, float]] = []

    async def fire(item: Item) -> None:
        fired.append((item, clock.monotonic()))

    return clock, Scheduler(fire, clock), fired


async def until(condition: Callable[[], bool]) -> None:
    """Let the event loop run (no time passes) until `condition` holds."""
    for _ in range(50):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never held")


async def test_earlier_wins_unless_a_later_time_replaces_it() -> None:
    clock, scheduler, fired = recorder()
    scheduler.schedule(("obj", "a"), 10)
    scheduler.schedule(("obj", "a"), 20)
    assert scheduler.due_in(("obj", "a")) == 10
    scheduler.schedule(("obj", "a"), 4)
    assert scheduler.due_in(("obj", "a")) == 4
    scheduler.schedule(("obj", "a"), 30, replace_later=True)
    assert scheduler.due_in(("obj", "a")) == 30
    clock.advance(29)
    assert scheduler.fire_due() == pytest.approx(1)
    clock.advance(1)
    assert scheduler.fire_due() is None  # the superseded entries are dropped, none fire
    await asyncio.wait(scheduler.tasks)
    assert fired == [(("obj", "a"), 1030.0)]


async def test_cancelled_items_do_not_fire() -> None:
    clock, scheduler, fired = recorder()
    scheduler.schedule(("url", "u"), 5)
    scheduler.schedule(("obj", "b"), 5)
    scheduler.cancel(("url", "u"))
    clock.advance(5)
    scheduler.fire_due()
    await asyncio.wait(scheduler.tasks)
    assert [item for item, _ in fired] == [("obj", "b")]
    assert scheduler.due_in(("url", "u")) is None


async def test_run_sleeps_until_the_next_item_and_wakes_for_a_sooner_one() -> None:
    clock, scheduler, fired = recorder()
    scheduler.schedule(("obj", "late"), 10)
    runner = asyncio.create_task(scheduler.run())
    try:
        await until(lambda: clock.sleeps == [10])
        scheduler.schedule(("obj", "soon"), 3)  # wakes the loop, which sleeps 3 instead
        await until(lambda: clock.sleeps == [10, 3])
        clock.advance(3)
        await until(lambda: len(fired) == 1 and clock.sleeps[-1] == 7)
        assert fired == [(("obj", "soon"), 1003.0)]
        clock.advance(7)
        await until(lambda: len(fired) == 2)
        assert fired[1] == (("obj", "late"), 1010.0)
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)


async def test_clear_drops_items_and_cancels_running_work() -> None:
    clock = FakeClock()
    started = asyncio.Event()

    async def fire(item: Item) -> None:
        started.set()
        await asyncio.Event().wait()  # runs until cancelled

    scheduler = Scheduler(fire, clock)
    scheduler.schedule(("obj", "a"), 0)
    scheduler.schedule(("obj", "b"), 60)
    scheduler.fire_due()
    await started.wait()
    (task,) = scheduler.tasks
    scheduler.clear()
    await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled()
    assert scheduler.due_in(("obj", "b")) is None
    assert scheduler.fire_due() is None
