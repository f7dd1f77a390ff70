"""The API lanes: outputs before status before events, bounded workers, 429 pauses, dropped events."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from jwks_operator.kube.lanes import MAX_THROTTLED, ApiLanes, Lane
from jwks_operator.model.errors import ApiCallError
from tests.unit.fakes import Gate


@pytest.mark.asyncio
async def test_queued_calls_run_outputs_first_then_status_then_events() -> None:
    lanes = ApiLanes(1)
    order: list[str] = []
    gate = Gate()
    try:
        blocked = asyncio.ensure_future(lanes.call(Lane.OUTPUT, gate.hold))
        await gate.reached()
        lanes.post(order.append, "event")
        status = asyncio.ensure_future(lanes.call(Lane.STATUS, order.append, "status-1"))
        output = asyncio.ensure_future(lanes.call(Lane.OUTPUT, order.append, "output"))
        status2 = asyncio.ensure_future(lanes.call(Lane.STATUS, order.append, "status-2"))
        await asyncio.sleep(0.05)
        gate.open()
        await blocked
        await asyncio.gather(status, output, status2)
        for _ in range(100):
            if len(order) == 4:
                break
            await asyncio.sleep(0.01)
        assert order == ["output", "status-1", "status-2", "event"]  # FIFO within a lane
    finally:
        lanes.close()


@pytest.mark.asyncio
async def test_workers_bound_the_calls_running_at_once() -> None:
    lanes = ApiLanes(3)
    running, most = 0, 0
    lock = threading.Lock()

    def call() -> None:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.02)
        with lock:
            running -= 1

    try:
        await asyncio.gather(*(lanes.call(Lane.OUTPUT, call) for _ in range(12)))
    finally:
        lanes.close()
    assert most == 3


@pytest.mark.asyncio
async def test_errors_reach_the_caller() -> None:
    lanes = ApiLanes(1)

    def boom() -> None:
        raise ApiCallError("Kubernetes API error (publish): HTTP 500 Internal Server Error", status=500)

    try:
        with pytest.raises(ApiCallError, match="HTTP 500"):
            await lanes.call(Lane.OUTPUT, boom)
        assert await lanes.call(Lane.STATUS, lambda: 7) == 7  # the worker survived
    finally:
        lanes.close()


@pytest.mark.asyncio
async def test_a_429_pauses_every_lane_for_retry_after_then_tries_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    lanes = ApiLanes(2)
    gate = Gate()
    released = threading.Event()
    times: dict[str, list[float]] = {"throttled": [], "other": []}

    def throttled() -> str:
        times["throttled"].append(time.monotonic())
        if len(times["throttled"]) == 1:
            assert released.wait(5)  # the other call is queued before this one is refused
            raise ApiCallError("HTTP 429", status=429, retry_after=0.3)
        return "written"

    try:
        first = asyncio.ensure_future(lanes.call(Lane.OUTPUT, throttled))
        while not times["throttled"]:
            await asyncio.sleep(0.01)
        blocked = asyncio.ensure_future(lanes.call(Lane.OUTPUT, gate.hold))  # holds the second worker
        await gate.reached()
        other = asyncio.ensure_future(
            lanes.call(Lane.STATUS, lambda: times["other"].append(time.monotonic()))
        )
        await asyncio.sleep(0.05)
        refused = time.monotonic()
        released.set()
        while "throttling" not in caplog.text:  # refused: every lane holds back from here
            await asyncio.sleep(0.01)
        gate.open()
        assert await first == "written"
        await asyncio.gather(blocked, other)
    finally:
        lanes.close()
    assert times["throttled"][1] - refused >= 0.25  # tried again after Retry-After
    assert times["other"][0] - refused >= 0.25  # and the other lane waited as long


@pytest.mark.asyncio
async def test_a_call_throttled_again_and_again_fails_with_the_429() -> None:
    lanes = ApiLanes(1)
    tries = 0

    def always() -> None:
        nonlocal tries
        tries += 1
        raise ApiCallError("HTTP 429", status=429, retry_after=0.0)

    try:
        with pytest.raises(ApiCallError, match="429"):
            await lanes.call(Lane.OUTPUT, always)
    finally:
        lanes.close()
    assert tries == MAX_THROTTLED


@pytest.mark.asyncio
async def test_events_beyond_the_bound_are_dropped_and_counted() -> None:
    dropped: list[int] = []
    lanes = ApiLanes(1, max_events=2, on_drop=lambda: dropped.append(1))
    gate = Gate()
    recorded: list[int] = []
    try:
        blocked = asyncio.ensure_future(lanes.call(Lane.OUTPUT, gate.hold))
        await gate.reached()
        assert [lanes.post(recorded.append, i) for i in range(4)] == [True, True, False, False]
        gate.open()
        await blocked
        for _ in range(100):
            if len(recorded) == 2:
                break
            await asyncio.sleep(0.01)
        assert lanes.post(recorded.append, 9)  # room again once they were written
    finally:
        lanes.close()
    assert recorded[:2] == [0, 1]
    assert len(dropped) == 2


@pytest.mark.asyncio
async def test_a_failed_event_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    lanes = ApiLanes(1)

    def fails() -> None:
        raise ApiCallError("Kubernetes API error (event): HTTP 403 Forbidden", status=403)

    try:
        lanes.post(fails)
        await lanes.call(Lane.EVENT, lambda: None)  # after it
    finally:
        lanes.close()
    assert "could not record an event: Kubernetes API error (event): HTTP 403 Forbidden" in caplog.text


@pytest.mark.asyncio
async def test_a_cancelled_call_never_starts_and_clear_drops_the_queue() -> None:
    lanes = ApiLanes(1)
    gate = Gate()
    ran: list[str] = []
    try:
        blocked = asyncio.ensure_future(lanes.call(Lane.OUTPUT, gate.hold))
        await gate.reached()
        cancelled = asyncio.ensure_future(lanes.call(Lane.OUTPUT, ran.append, "cancelled"))
        cleared = asyncio.ensure_future(lanes.call(Lane.STATUS, ran.append, "cleared"))
        await asyncio.sleep(0.01)
        cancelled.cancel()
        lanes.clear()
        gate.open()
        await blocked
        with pytest.raises(asyncio.CancelledError):
            await cleared
        await lanes.call(Lane.EVENT, ran.append, "after")
    finally:
        lanes.close()
    assert ran == ["after"]


def test_a_worker_outlives_its_callers_event_loop() -> None:
    lanes = ApiLanes(1)
    gate = Gate()
    try:

        async def abandon() -> None:
            running = asyncio.ensure_future(lanes.call(Lane.OUTPUT, gate.hold))
            await gate.reached()
            running.cancel()

        asyncio.run(abandon())  # the loop closes while the call is under way
        gate.open()
        assert asyncio.run(lanes.call(Lane.OUTPUT, lambda: "still served")) == "still served"
    finally:
        lanes.close()
