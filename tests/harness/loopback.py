"""A TCP listener on 127.0.0.1 serving each connection on a thread of its own, for test servers that speak
raw sockets (a proxy, a misbehaving provider): subclasses implement `_serve`."""

from __future__ import annotations

import socket
import threading
from types import TracebackType
from typing import Self


class LoopbackListener:
    """Accepts on 127.0.0.1 (an ephemeral port) while entered; `_serve(conn)` runs per connection."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._stopped = threading.Event()

    @property
    def port(self) -> int:
        return int(self._listener.getsockname()[1])

    def __enter__(self) -> Self:
        threading.Thread(target=self._accept, daemon=True, name=type(self).__name__).start()
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stopped.set()
        self._listener.close()

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        raise NotImplementedError
