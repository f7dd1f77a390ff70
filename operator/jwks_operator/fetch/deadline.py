"""The fetch deadline over the whole exchange: one watchdog thread for the process, and the connection
and pool mixins through which each fetch tracks the sockets it uses."""

from __future__ import annotations

import contextlib
import heapq
import itertools
import os
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool


class Exchange:
    """One fetch: its deadline and the sockets it opened or reused. At the deadline the watchdog shuts
    them down, which ends any read in progress (a status line, a header, a TLS record, the body)."""

    def __init__(self, deadline_at: float) -> None:
        self.deadline_at = deadline_at
        self.expired = False
        self.closed = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()

    def remaining(self) -> float:
        return self.deadline_at - time.monotonic()

    def late(self) -> bool:
        return self.expired or self.remaining() <= 0

    def watch(self, sock: Any) -> None:
        """Keep a duplicate of the socket's descriptor: the connection may wrap (TLS) or close its own,
        and shutting down either descriptor ends the TCP connection for both."""
        try:
            dup = socket.socket(fileno=os.dup(sock.fileno()))
        except (OSError, ValueError):
            return
        with self._lock:
            if self.closed:
                dup.close()
                return
            self._sockets.append(dup)
            expired = self.expired
        if expired:
            _shutdown(dup)

    def expire(self) -> None:
        with self._lock:
            if self.closed:
                return
            self.expired = True
            sockets = list(self._sockets)
        for sock in sockets:
            _shutdown(sock)

    def close(self) -> None:
        with self._lock:
            self.closed = True
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            sock.close()


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already shut down or closed by its connection
        sock.shutdown(socket.SHUT_RDWR)


class _Watchdog:
    """One daemon thread for every fetch of the process: expires each exchange at its deadline."""

    def __init__(self) -> None:
        self._queue: list[tuple[float, int, Exchange]] = []
        self._order = itertools.count()
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    def arm(self, exchange: Exchange) -> None:
        with self._wake:
            heapq.heappush(self._queue, (exchange.deadline_at, next(self._order), exchange))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, daemon=True, name="jwks-fetch-watchdog")
                self._thread.start()
            self._wake.notify()

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._queue or self._queue[0][2].closed:
                    if self._queue:
                        heapq.heappop(self._queue)  # finished in time
                    else:
                        self._wake.wait()
                wait = self._queue[0][0] - time.monotonic()
                if wait > 0:
                    self._wake.wait(wait)
                    continue
                exchange = heapq.heappop(self._queue)[2]
            exchange.expire()


_WATCHDOG = _Watchdog()
_current = threading.local()  # the exchange of the fetch running on this thread


@contextlib.contextmanager
def watched_exchange(deadline: float) -> Iterator[Exchange]:
    """The exchange of a fetch running on this thread, `deadline` seconds from now: the sockets its
    connections open or reuse meanwhile are watched, and closed when it ends."""
    current = Exchange(time.monotonic() + deadline)
    _WATCHDOG.arm(current)
    _current.exchange = current
    try:
        yield current
    finally:
        _current.exchange = None
        current.close()


def _watch(sock: Any) -> None:
    current: Exchange | None = getattr(_current, "exchange", None)
    if current is not None and sock is not None:
        current.watch(sock)


class WatchedConnection:
    """Connection mixin: the current fetch watches every socket it opens (before TLS, so that the
    handshake is bounded too)."""

    def _new_conn(self) -> socket.socket:
        sock: socket.socket = super()._new_conn()  # type: ignore[misc]
        _watch(sock)
        return sock


class WatchedPool:
    """Pool mixin: the current fetch also watches a kept-alive connection it reuses."""

    def _get_conn(self, timeout: float | None = None) -> Any:
        conn = super()._get_conn(timeout)  # type: ignore[misc]
        _watch(getattr(conn, "sock", None))
        return conn


PROXIED_POOLS = {  # to the proxy itself: watched, not guarded (the target is vetted before the request)
    "http": type(
        "WatchedHTTPPool",
        (WatchedPool, HTTPConnectionPool),
        {"ConnectionCls": type("WatchedHTTPConnection", (WatchedConnection, HTTPConnection), {})},
    ),
    "https": type(
        "WatchedHTTPSPool",
        (WatchedPool, HTTPSConnectionPool),
        {"ConnectionCls": type("WatchedHTTPSConnection", (WatchedConnection, HTTPSConnection), {})},
    ),
}
