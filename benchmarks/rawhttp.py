"""A small keep-alive JSON client over http.client (one connection per thread), for either backend.

The kubernetes client spends more time building models than the emulator spends serving a create;
the harness and the minimal client talk plain HTTP/JSON instead (HTTPS with a bearer token to a real
API server).
"""

from __future__ import annotations

import http.client
import json
import ssl
import threading
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

MERGE_PATCH = "application/merge-patch+json"


class HttpError(Exception):
    """A non-2xx answer."""

    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(f"HTTP {status}: {body[:300]!r}")
        self.status = status


class JsonClient:
    """Thread-safe: each thread keeps its own persistent connection to `base_url`."""

    def __init__(
        self,
        base_url: str,
        user_agent: str,
        timeout: float = 60.0,
        *,
        ca_file: str | None = None,
        token: str | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        self.tls = ssl.create_default_context(cafile=ca_file) if parts.scheme == "https" else None
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or (443 if self.tls else 80)
        self.user_agent = user_agent
        self.timeout = timeout
        self.headers = {"User-Agent": user_agent, "Accept": "application/json"}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        self._local = threading.local()

    def _new(self, timeout: float | None) -> http.client.HTTPConnection:
        if self.tls is not None:
            return http.client.HTTPSConnection(self.host, self.port, timeout=timeout, context=self.tls)
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def _connection(self) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._new(self.timeout)
            self._local.conn = conn
        return conn

    def request(
        self, method: str, path: str, body: Any = None, content_type: str = "application/json"
    ) -> Any:
        """Send one request (retrying once on a dropped keep-alive connection); the decoded answer."""
        payload = json.dumps(body).encode() if body is not None else None
        headers = dict(self.headers)
        if payload is not None:
            headers["Content-Type"] = content_type
        for attempt in (1, 2):
            conn = self._connection()
            try:
                conn.request(method, path, payload, headers)
                response = conn.getresponse()
                data = response.read()
            except (http.client.HTTPException, ConnectionError):
                conn.close()
                self._local.conn = None
                if attempt == 2:
                    raise
                continue
            if response.status >= 300:
                raise HttpError(response.status, data)
            return json.loads(data) if data else None
        raise AssertionError("unreachable")

    def stream(self, path: str, on_open: Callable[[], None] | None = None) -> Iterator[dict[str, Any]]:
        """The events of a watch (its own connection, closed with the iterator); `on_open` is called
        once the server has answered."""
        conn = self._new(None)
        try:
            conn.request("GET", path, headers=self.headers)
            response = conn.getresponse()
            if response.status != 200:
                raise HttpError(response.status, response.read())
            if on_open is not None:
                on_open()
            while line := response.readline():
                if line.strip():
                    yield json.loads(line)
        finally:
            conn.close()

    def close(self) -> None:
        """Close this thread's connection."""
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
