"""kube.listwatch: the lean list + watch loop, against a scripted fake API (no threads, no sleeps)."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from jwks_operator.kube.listwatch import MIN_WATCH, ListWatch
from jwks_operator.kube.watch_http import WatchExpiredError
from jwks_operator.model.errors import ApiCallError


def cm(name: str, rv: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "ns", "resourceVersion": rv}}


def ev(type_: str, obj: Mapping[str, Any]) -> dict[str, Any]:
    return {"type": type_, "object": obj}


class FakeApi:
    """Answers each list and watch from a script; a step that is an exception is raised. The loop is
    stopped when the script runs out."""

    what = "configmaps"

    def __init__(self, lists: list[Any], watches: list[Any]) -> None:
        self.lists, self.watches = lists, watches
        self.calls: list[tuple[str, ...]] = []
        self.loop: ListWatch | None = None
        self.closed = 0

    def _next(self, script: list[Any]) -> Any:
        if not script:
            assert self.loop is not None
            self.loop.stop()
            return None
        step = script.pop(0)
        if isinstance(step, BaseException):
            raise step
        return step

    def list(self) -> tuple[list[Mapping[str, Any]], str]:
        self.calls.append(("list",))
        step = self._next(self.lists)
        return step if step is not None else ([], "")

    def watch(self, resource_version: str, timeout: int) -> Iterator[Mapping[str, Any]]:
        self.calls.append(("watch", resource_version, str(timeout)))
        step = self._next(self.watches)
        yield from step or []

    def close(self) -> None:
        self.closed += 1


def run(api: FakeApi, step: float = MIN_WATCH) -> tuple[ListWatch, list[tuple[str | None, str]], list[float]]:
    """Run the loop to the end of the script; its clock moves `step` s each time it is read (by default
    every stream lasts MIN_WATCH)."""
    delivered: list[tuple[str | None, str]] = []
    waits: list[float] = []
    ticks = itertools.count()
    loop = ListWatch(
        api,
        lambda t, o: delivered.append((t, o["metadata"]["name"])),
        timeout=7,
        wait=waits.append,
        clock=lambda: next(ticks) * step,
    )
    api.loop = loop
    loop.run()
    return loop, delivered, waits


def test_lists_then_watches_from_the_lists_version_and_resumes_from_the_last_event() -> None:
    api = FakeApi(
        lists=[([cm("a", "5"), cm("b", "6")], "10")],
        watches=[[ev("MODIFIED", cm("a", "11")), ev("DELETED", cm("b", "12"))], []],
    )
    _, delivered, waits = run(api)
    assert delivered == [(None, "a"), (None, "b"), ("MODIFIED", "a"), ("DELETED", "b")]
    # The stream ended (the server's timeout): watched again from the last event's version, no relist.
    assert api.calls == [("list",), ("watch", "10", "7"), ("watch", "12", "7"), ("watch", "12", "7")]
    assert waits == []


def test_a_bookmark_keeps_its_resource_version_and_is_not_delivered() -> None:
    bookmark = {"type": "BOOKMARK", "object": {"kind": "ConfigMap", "metadata": {"resourceVersion": "40"}}}
    api = FakeApi(lists=[([], "10")], watches=[[bookmark], []])
    _, delivered, _ = run(api)
    assert delivered == []
    assert api.calls[1:] == [("watch", "10", "7"), ("watch", "40", "7"), ("watch", "40", "7")]


@pytest.mark.parametrize(
    "expiry",
    [
        WatchExpiredError("configmaps: resourceVersion too old"),  # HTTP 410 on the watch request
        [ev("ERROR", {"kind": "Status", "code": 410, "reason": "Expired"})],  # 410 inside the stream
    ],
    ids=["http", "in-stream"],
)
def test_410_gone_lists_again(expiry: Any) -> None:
    api = FakeApi(
        lists=[([cm("a", "5")], "10"), ([cm("a", "30")], "31")],
        watches=[[ev("MODIFIED", cm("a", "11"))], expiry],
    )
    _, delivered, waits = run(api)
    assert api.calls[:4] == [("list",), ("watch", "10", "7"), ("watch", "11", "7"), ("list",)]
    assert api.calls[4] == ("watch", "31", "7")  # resumed from the new list's version
    assert delivered == [(None, "a"), ("MODIFIED", "a"), (None, "a")]
    assert waits == []  # relisted at once


def test_410_right_after_a_list_backs_off_instead_of_spinning() -> None:
    gone = WatchExpiredError("too old")
    api = FakeApi(lists=[([], "10"), ([], "20")], watches=[gone, gone])
    _, _, waits = run(api)
    assert api.calls[:4] == [("list",), ("watch", "10", "7"), ("list",), ("watch", "20", "7")]
    assert len(waits) == 2
    assert 0.8 <= waits[0] <= 1.2
    assert 1.6 <= waits[1] <= 2.4


def test_errors_back_off_doubling_up_to_the_cap_then_reset_after_an_event() -> None:
    down = ApiCallError("Kubernetes API unreachable (watch configmaps): MaxRetryError")
    api = FakeApi(
        lists=[down, ([], "10")],
        watches=[down, down, down, down, down, down, down, [ev("ADDED", cm("a", "11"))], down],
    )
    _, delivered, waits = run(api)
    bases = [1, 2, 4, 8, 16, 32, 60, 60]  # the failed list, then watches: doubling, held to 60 s
    assert all(0.8 * b <= w <= 1.2 * b for b, w in zip(bases, waits, strict=False)), waits
    assert delivered == [("ADDED", "a")]
    assert 0.8 <= waits[8] <= 1.2  # an event came through: the backoff starts over
    # A failed watch resumes from the version it had; only the failed list is repeated.
    assert [c for c in api.calls if c[0] == "list"] == [("list",), ("list",)]
    assert all(c == ("watch", "10", "7") for c in api.calls[2:9])


def test_an_error_event_other_than_410_backs_off_and_watches_again() -> None:
    api = FakeApi(lists=[([], "10")], watches=[[ev("ERROR", {"code": 500, "message": "boom"})], []])
    _, _, waits = run(api)
    assert len(waits) == 1
    assert api.calls == [("list",), ("watch", "10", "7"), ("watch", "10", "7"), ("watch", "10", "7")]


def test_streams_ending_at_once_with_no_event_back_off_doubling_instead_of_spinning() -> None:
    bookmark = ev("BOOKMARK", cm("", "12"))
    api = FakeApi(lists=[([], "10")], watches=[[], [], [bookmark], [ev("ADDED", cm("a", "13"))], []])
    _, delivered, waits = run(api, step=0.0)  # every stream ends the instant it starts
    # A bookmark alone is no progress (a proxy could send one and close); an event is: the next stream
    # that ends at once backs off from the start again.
    assert all(0.8 * b <= w <= 1.2 * b for b, w in zip([1, 2, 4, 1], waits, strict=True)), waits
    assert delivered == [("ADDED", "a")]
    assert api.calls[4] == ("watch", "12", "7")  # the bookmark's version kept
    assert api.calls[-1] == ("watch", "13", "7")


def test_a_stream_that_lasted_with_no_event_is_resumed_at_once() -> None:
    api = FakeApi(lists=[([], "10")], watches=[[], []])
    _, _, waits = run(api, step=MIN_WATCH)
    assert waits == []
    assert api.calls == [("list",), ("watch", "10", "7"), ("watch", "10", "7"), ("watch", "10", "7")]


def test_stop_ends_the_loop_mid_stream_and_closes_the_stream() -> None:
    api = FakeApi(lists=[([], "10")], watches=[])
    delivered: list[str] = []
    loop: ListWatch

    def deliver(_: str | None, obj: Mapping[str, Any]) -> None:
        delivered.append(obj["metadata"]["name"])
        loop.stop()

    loop = ListWatch(api, deliver, wait=lambda _: pytest.fail("no wait expected"))
    api.watches = [[ev("ADDED", cm("a", "11")), ev("ADDED", cm("b", "12"))]]
    api.loop = loop
    loop.run()
    assert delivered == ["a"]  # nothing after the stop
    assert api.closed == 1
    assert api.calls == [("list",), ("watch", "10", "300")]


def test_stop_from_another_thread_cuts_a_backoff_short() -> None:
    api = FakeApi(lists=[ApiCallError("down")] * 3, watches=[])
    loop = ListWatch(api, lambda *_: None, backoff=(3600.0, 3600.0))  # the real wait: an hour
    api.loop = loop
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    while loop.failures == 0:
        time.sleep(0.01)
    loop.stop()
    thread.join(10)
    assert not thread.is_alive()
    assert api.calls == [("list",)]
