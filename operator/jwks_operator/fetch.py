"""HTTP adapter: fetch a JWK Set URL with requests (a deadline over the whole exchange, size caps on the
wire and decoded, safe redirects, the SSRF guard also through proxies, revalidation)."""

from __future__ import annotations

import contextlib
import heapq
import itertools
import os
import socket
import ssl
import threading
import time
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

import requests
import requests.utils
import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from . import __version__
from .errors import FetchError
from .freshness import delta_seconds
from .netguard import BlockedAddressError, GuardedAdapter, check_target
from .trust import CONTEXTS

if TYPE_CHECKING:
    from requests.adapters import _HostParams, _PoolKwargs

MAX_BYTES = 1024 * 1024
MAX_REDIRECTS = 5
CACHE_HEADERS = ("cache-control", "expires", "date", "age", "etag", "last-modified", "content-type")
CHUNK = 16384
ACCEPT_ENCODING = "gzip, deflate"  # decoded here, by bounded steps (see _decoded)
MAX_CODINGS = 2


@dataclass(frozen=True)
class FetchResult:
    """A 200 (with body) or 304 (body None) response with its caching headers (lower-case names)."""

    status: int
    body: bytes | None
    headers: Mapping[str, str]
    url: str


@dataclass(frozen=True)
class FetchSettings:
    """Network limits for one fetch: `deadline` bounds all of it (DNS aside: connect, TLS, status line,
    headers, body, every redirect); the timeouts bound each connect and each wait for bytes."""

    connect_timeout: float = 5.0
    read_timeout: float = 10.0
    deadline: float = 30.0
    max_bytes: int = MAX_BYTES
    max_redirects: int = MAX_REDIRECTS
    allow_http: bool = False
    allow_private_networks: bool = False


# -- the deadline ----------------------------------------------------------------------------------


class _Exchange:
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
        self._queue: list[tuple[float, int, _Exchange]] = []
        self._order = itertools.count()
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    def arm(self, exchange: _Exchange) -> None:
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


def _watch(sock: Any) -> None:
    exchange: _Exchange | None = getattr(_current, "exchange", None)
    if exchange is not None and sock is not None:
        exchange.watch(sock)


class _WatchedConnection:
    """Connection mixin: the current fetch watches every socket it opens (before TLS, so that the
    handshake is bounded too)."""

    def _new_conn(self) -> socket.socket:
        sock: socket.socket = super()._new_conn()  # type: ignore[misc]
        _watch(sock)
        return sock


class _WatchedPool:
    """Pool mixin: the current fetch also watches a kept-alive connection it reuses."""

    def _get_conn(self, timeout: float | None = None) -> Any:
        conn = super()._get_conn(timeout)  # type: ignore[misc]
        _watch(getattr(conn, "sock", None))
        return conn


_PROXIED_POOLS = {  # to the proxy itself: watched, not guarded (the target is vetted before the request)
    "http": type(
        "WatchedHTTPPool",
        (_WatchedPool, HTTPConnectionPool),
        {"ConnectionCls": type("WatchedHTTPConnection", (_WatchedConnection, HTTPConnection), {})},
    ),
    "https": type(
        "WatchedHTTPSPool",
        (_WatchedPool, HTTPSConnectionPool),
        {"ConnectionCls": type("WatchedHTTPSConnection", (_WatchedConnection, HTTPSConnection), {})},
    ),
}


# -- the adapter -------------------------------------------------------------------------------------


class FetchAdapter(GuardedAdapter):
    """A GuardedAdapter whose connections the deadline watchdog can end, and whose TLS trust comes from
    shared SSLContexts (trust.CONTEXTS): the request's CA bundle PEM (`trust`, set per request by the
    Fetcher; this adapter belongs to one thread's session), else the system bundle file, each parsed
    once per process rather than once per connection."""

    connection_mixins = (_WatchedConnection,)
    pool_mixins = (_WatchedPool,)

    def __init__(self, *, allow_private: bool, **kwargs: Any) -> None:
        super().__init__(allow_private=allow_private, **kwargs)
        self.trust: ssl.SSLContext | None = None

    @staticmethod
    def _bundle(verify: Any) -> str | None:
        if verify is True:
            return str(requests.utils.DEFAULT_CA_BUNDLE_PATH)
        return verify if isinstance(verify, str) and not os.path.isdir(verify) else None

    def build_connection_pool_key_attributes(
        self, request: requests.PreparedRequest, verify: Any, cert: Any = None
    ) -> tuple[_HostParams, _PoolKwargs]:
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(request, verify, cert)
        if host_params["scheme"] == "https" and verify is not False:
            bundle = self._bundle(verify)
            context = self.trust or (CONTEXTS.for_file(bundle) if bundle is not None else None)
            if context is not None:
                pool_kwargs.pop("ca_certs", None)
                pool_kwargs.pop("ca_cert_dir", None)
                pool_kwargs["ssl_context"] = context
        return host_params, pool_kwargs

    def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
        super().cert_verify(conn, url, verify, cert)  # type: ignore[no-untyped-call]
        if getattr(conn, "conn_kw", {}).get("ssl_context") is not None:
            conn.ca_certs = None  # the pool's context already holds the trust: do not parse files again
            conn.ca_cert_dir = None

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if isinstance(manager, urllib3.ProxyManager):
            manager.pool_classes_by_scheme = _PROXIED_POOLS
        return manager


# -- the fetcher -------------------------------------------------------------------------------------


class Fetcher:
    """Thread-safe JWKS fetcher (one requests.Session per thread for connection reuse)."""

    def __init__(self, settings: FetchSettings | None = None) -> None:
        self.settings = settings or FetchSettings()
        self._local = threading.local()

    def _session(self) -> tuple[requests.Session, FetchAdapter]:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            adapter = FetchAdapter(allow_private=self.settings.allow_private_networks, max_retries=0)
            session.mount("https://", adapter)
            session.mount("http://", adapter)
            session.headers["User-Agent"] = f"jwks-operator/{__version__}"
            session.headers["Accept"] = "application/jwk-set+json, application/json"
            session.headers["Accept-Encoding"] = ACCEPT_ENCODING
            self._local.session, self._local.adapter = session, adapter
        return session, self._local.adapter

    def fetch(
        self,
        url: str,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
        allow_http: bool = False,
        ca_bundle: str | None = None,
    ) -> FetchResult:
        """GET the URL; conditional when validators are given; `ca_bundle` (PEM) replaces the system
        trust store for this request. Raise FetchError on any failure, and once the deadline passes,
        whatever the server is doing."""
        exchange = _Exchange(time.monotonic() + self.settings.deadline)
        _WATCHDOG.arm(exchange)
        _current.exchange = exchange
        try:
            return self._fetch(url, exchange, etag, last_modified, allow_http, ca_bundle)
        finally:
            _current.exchange = None
            exchange.close()

    def _fetch(
        self,
        url: str,
        exchange: _Exchange,
        etag: str | None,
        last_modified: str | None,
        allow_http: bool,
        ca_bundle: str | None,
    ) -> FetchResult:
        try:
            trust = CONTEXTS.for_pem(ca_bundle) if ca_bundle else None
        except ssl.SSLError as exc:
            raise FetchError(f"TLS error: the CA bundle holds no usable certificate ({exc.reason})") from None
        headers: dict[str, str] = {}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        current = url
        for _ in range(self.settings.max_redirects + 1):
            self._check_scheme(current, allow_http)
            self._vet(current)
            response = self._get(current, headers, trust, exchange)
            with response:
                if response.status_code in (301, 302, 303, 307, 308):
                    location = response.headers.get("Location")
                    if not location:
                        raise FetchError(f"HTTP {response.status_code} redirect without a Location header")
                    target = urljoin(current, location)
                    if urlsplit(current).scheme == "https" and urlsplit(target).scheme != "https":
                        raise FetchError(f"refused redirect from https to {urlsplit(target).scheme}")
                    current = target
                    continue
                return self._finish(response, current, exchange)
        raise FetchError(f"more than {self.settings.max_redirects} redirects")

    def _check_scheme(self, url: str, allow_http: bool) -> None:
        scheme = urlsplit(url).scheme
        if scheme == "https" or (scheme == "http" and (allow_http or self.settings.allow_http)):
            return
        raise FetchError(f"refused {scheme or 'relative'} URL; only https is allowed")

    def _vet(self, url: str) -> None:
        """The SSRF guard before the request, whatever carries it: through a proxy (HTTPS_PROXY,
        HTTP_PROXY, ALL_PROXY) the proxy resolves and connects, and the connection guard only sees the
        proxy. (A direct connection is checked again as it connects.)"""
        parts = urlsplit(url)
        try:
            host, port = parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError as exc:
            raise FetchError(f"invalid URL: {exc}") from None
        if not host:
            raise FetchError("invalid URL: no host")
        try:
            check_target(host, port, allow_private=self.settings.allow_private_networks)
        except BlockedAddressError as exc:
            raise FetchError(str(exc)) from None
        except (OSError, UnicodeError) as exc:
            raise FetchError(f"connection failed: cannot resolve {host}: {_reason(exc)}") from None

    def _deadline_error(self) -> FetchError:
        return FetchError(f"response took longer than {self.settings.deadline:g}s")

    def _get(
        self, url: str, headers: Mapping[str, str], trust: ssl.SSLContext | None, exchange: _Exchange
    ) -> requests.Response:
        remaining = exchange.remaining()
        if remaining <= 0:
            raise self._deadline_error()
        timeout = (min(self.settings.connect_timeout, remaining), min(self.settings.read_timeout, remaining))
        session, adapter = self._session()
        adapter.trust = trust
        try:
            return session.get(
                url, headers=dict(headers), timeout=timeout, stream=True, allow_redirects=False
            )
        except BlockedAddressError as exc:
            raise FetchError(str(exc)) from None
        except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
            if exchange.late():
                raise self._deadline_error() from None
            if isinstance(exc, requests.exceptions.SSLError):
                raise FetchError(f"TLS error: {_reason(exc)}") from None
            if isinstance(exc, requests.exceptions.ConnectTimeout):
                raise FetchError("connect timeout") from None
            if isinstance(exc, requests.exceptions.ReadTimeout):
                raise FetchError("read timeout") from None
            if isinstance(exc, requests.exceptions.ConnectionError):
                raise FetchError(f"connection failed: {_reason(exc)}") from None
            raise FetchError(f"request failed: {_reason(exc)}") from None
        finally:
            adapter.trust = None

    def _finish(self, response: requests.Response, url: str, exchange: _Exchange) -> FetchResult:
        kept = {k: response.headers[k] for k in CACHE_HEADERS if k in response.headers}
        if response.status_code == 304:
            return FetchResult(304, None, kept, url)
        if response.status_code != 200:
            retry_after = delta_seconds(response.headers.get("Retry-After"))
            raise FetchError(
                f"HTTP {response.status_code} {response.reason or ''}".rstrip(), retry_after=retry_after
            )
        limit = self.settings.max_bytes
        declared = response.headers.get("Content-Length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise FetchError(f"response is larger than {limit} bytes")
        codings = _codings(response.headers.get("Content-Encoding", ""))
        chunks: list[bytes] = []
        size = 0
        try:
            for chunk in _decoded(_received(response, limit), codings):
                size += len(chunk)
                if size > limit:
                    encoding = ", ".join(codings)
                    raise FetchError(
                        f"decoded response is larger than {limit} bytes (Content-Encoding: {encoding})"
                    )
                if exchange.late():
                    raise self._deadline_error()
                chunks.append(chunk)
        except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
            if exchange.late():
                raise self._deadline_error() from None
            raise FetchError(f"reading the response failed: {_reason(exc)}") from None
        if exchange.late():  # the watchdog's shutdown reads as the end of the body: it may be cut short
            raise self._deadline_error()
        return FetchResult(200, b"".join(chunks), kept, url)


def _received(response: requests.Response, limit: int) -> Iterator[bytes]:
    """The body as it arrives, still encoded, at most `limit` bytes of it."""
    size = 0
    while piece := response.raw.read1(CHUNK, decode_content=False):  # returns what has arrived
        size += len(piece)
        if size > limit:
            raise FetchError(f"response is larger than {limit} bytes")
        yield piece


def _codings(header: str) -> list[str]:
    """The Content-Encoding codings, outermost last; FetchError for one this fetcher did not ask for."""
    codings = [c.strip().lower() for c in header.split(",") if c.strip() and c.strip().lower() != "identity"]
    unknown = [c for c in codings if c not in ("gzip", "x-gzip", "deflate")]
    if unknown:
        raise FetchError(f"unsupported Content-Encoding {header.strip()!r} (asked for {ACCEPT_ENCODING})")
    if len(codings) > MAX_CODINGS:
        raise FetchError(f"refused Content-Encoding {header.strip()!r}: more than {MAX_CODINGS} codings")
    return codings


def _decoded(pieces: Iterator[bytes], codings: list[str]) -> Iterator[bytes]:
    """The body decoded, each coding undone lazily, CHUNK bytes at a time: however much a piece
    inflates to, no more than CHUNK of it exists at once per coding (the size cap then stops it)."""
    for coding in reversed(codings):
        pieces = _inflate(pieces, coding)
    return pieces


def _inflate(pieces: Iterator[bytes], coding: str) -> Iterator[bytes]:
    decoder: Any = None
    members = 0
    for piece in pieces:
        data = piece
        while data:
            if decoder is None:
                decoder = zlib.decompressobj(_wbits(coding, data))
                members += 1
            try:
                out = decoder.decompress(data, CHUNK)
                data = decoder.unconsumed_tail
                while out:
                    yield out
                    full = len(out) == CHUNK and not data  # more may wait inside the decoder
                    out = decoder.decompress(b"", CHUNK) if full else b""
            except zlib.error as exc:
                if members > 1:  # bytes after a complete gzip member that are not another member
                    return
                raise FetchError(f"response body is not valid {coding} data ({exc})") from None
            if decoder.eof:
                if coding == "deflate":
                    return
                data, decoder = decoder.unused_data + data, None  # gzip allows several members
    if decoder is not None and not decoder.eof:
        raise FetchError(f"response body is truncated {coding} data")


def _wbits(coding: str, data: bytes) -> int:
    if coding != "deflate":
        return 16 + zlib.MAX_WBITS  # gzip
    # "deflate" is zlib-wrapped by the standard, raw deflate by some servers
    zlib_header = len(data) >= 2 and data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0
    return zlib.MAX_WBITS if zlib_header else -zlib.MAX_WBITS


def _reason(exc: BaseException) -> str:
    """The innermost cause, short: requests nests urllib3 errors several levels deep."""
    while exc.args and isinstance(exc.args[0], BaseException):
        exc = exc.args[0]
    inner = getattr(exc, "reason", None)
    text = str(inner if isinstance(inner, BaseException) else exc)
    return text if len(text) <= 200 else text[:197] + "..."
