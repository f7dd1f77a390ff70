"""An HTTP proxy on loopback for the fetch path's tests: CONNECT tunnels and absolute-URI requests, each
recorded (its request line and Host header). It resolves names itself, with socket.getaddrinfo as a real
proxy would, so a stub resolver in the test process answers its lookups too; `routes` stands in for the
network, mapping the (address, port) a request reaches to a loopback port. Anything unrouted gets 502."""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass
from urllib.parse import urlsplit

from tests.harness.loopback import LoopbackListener


@dataclass(frozen=True)
class Seen:
    """One request the proxy received: its request line's method and target, and its Host header."""

    method: str
    target: str
    host: str | None

    @property
    def line(self) -> str:
        return f"{self.method} {self.target}"


class LoopbackProxy(LoopbackListener):
    """A CONNECT and forward proxy on 127.0.0.1 (see the module's docstring)."""

    def __init__(self, routes: dict[tuple[str, int], int] | None = None) -> None:
        self.routes = dict(routes or {})
        self.seen: list[Seen] = []
        self.reached: list[tuple[str, int]] = []  # the (address, port) of each upstream connection
        super().__init__()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def lines(self) -> list[str]:
        return [s.line for s in self.seen]

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            head = _read_head(conn)
            if not head:
                return
            request_line, *header_lines = head.decode("latin-1").split("\r\n")
            method, target = request_line.split(" ")[:2]
            headers = {
                k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines if h)
            }
            self.seen.append(Seen(method, target, headers.get("host")))
            if method == "CONNECT":
                host, _, port = target.rpartition(":")
                upstream = self._connect(host.strip("[]"), int(port))
                if upstream is None:
                    conn.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
                    return
                conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                _relay(conn, upstream)
                return
            # An absolute URI: forward the request as it came (Host header and all) to where it names.
            url = urlsplit(target)
            upstream = self._connect(url.hostname or "", url.port or 80)
            if upstream is None:
                conn.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                return
            path = (url.path or "/") + (f"?{url.query}" if url.query else "")
            rest = head.split(b"\r\n", 1)[1]
            upstream.sendall(f"{method} {path} HTTP/1.1\r\n".encode() + rest)
            _relay(conn, upstream)

    def _connect(self, host: str, port: int) -> socket.socket | None:
        """What a real proxy does with the target it was given: resolve it (a name, again), connect."""
        try:
            address = str(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][4][0])
        except OSError:
            return None
        self.reached.append((address, port))
        local = self.routes.get((address, port))
        if local is None:
            return None
        return socket.create_connection(("127.0.0.1", local), timeout=10)


def _read_head(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        piece = conn.recv(65536)
        if not piece:
            return b""
        data += piece
    return data


def _relay(client: socket.socket, upstream: socket.socket) -> None:
    def pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
            sink.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    with upstream:
        back = threading.Thread(target=pipe, args=(upstream, client), daemon=True)
        back.start()
        pipe(client, upstream)
        back.join(10)
