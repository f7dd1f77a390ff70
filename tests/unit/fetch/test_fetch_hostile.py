"""The fetcher against hostile servers on loopback: stalls inside the status line, the headers or the
TLS handshake; compression bombs; targets reached through a proxy; tenants' CA bundles."""

from __future__ import annotations

import gc
import gzip
import os
import select
import socket
import ssl
import tempfile
import threading
import time
import tracemalloc
import weakref
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType

import pytest
import trustme
import urllib3.util.ssl_

from jwks_operator.fetch import fetcher as fetcher_module
from jwks_operator.fetch.fetcher import Fetcher, FetchSettings
from jwks_operator.fetch.trust import CONTEXTS, MAX_CA_BUNDLE_BYTES, TrustContexts
from jwks_operator.model.errors import FetchError
from tests.harness.idp import JwksProvider
from tests.harness.loopback import LoopbackListener

BODY = b'{"keys": []}'
PROXY_VARIABLES = ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY")


def fetcher(**settings: object) -> Fetcher:
    return Fetcher(FetchSettings(allow_private_networks=True, allow_http=True, **settings))  # type: ignore[arg-type]


class RawServer(LoopbackListener):
    """A TCP server on loopback that answers each connection with `behave(conn, gone)`, where `gone()`
    tells whether the client has hung up; records how long each connection stayed open."""

    def __init__(self, behave: Callable[[socket.socket, Callable[[], bool]], None]) -> None:
        self.behave = behave
        self.held: list[float] = []  # seconds from accept to the client's hang-up (or our close)
        super().__init__()

    def _serve(self, conn: socket.socket) -> None:
        accepted = time.monotonic()
        hung_up = False

        def gone() -> bool:
            nonlocal hung_up
            if not hung_up and select.select([conn], [], [], 0)[0]:
                try:
                    hung_up = conn.recv(65536) == b""
                except OSError:
                    hung_up = True
            return hung_up

        try:
            self.behave(conn, gone)
            deadline = time.monotonic() + 30
            while not gone() and time.monotonic() < deadline and not self._stopped.is_set():
                time.sleep(0.02)
        except OSError:
            pass
        finally:
            self.held.append(time.monotonic() - accepted)
            conn.close()


def read_request(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        piece = conn.recv(65536)
        if not piece:
            break
        data += piece
    return data


def trickle_headers(conn: socket.socket, gone: Callable[[], bool]) -> None:
    """One header line every 0.5 s for 8 s, then a valid response."""
    read_request(conn)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n")
    for i in range(16):
        if gone():
            return
        conn.sendall(f"X-Slow-{i}: y\r\n".encode())
        time.sleep(0.5)
    conn.sendall(b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(BODY), BODY))


def endless_continue(conn: socket.socket, gone: Callable[[], bool]) -> None:
    """`100 Continue` interim responses for 8 s, then a valid response."""
    read_request(conn)
    stop = time.monotonic() + 8
    while time.monotonic() < stop:
        if gone():
            return
        conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        time.sleep(0.05)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(BODY), BODY))


def trickle_tls_handshake(conn: socket.socket, gone: Callable[[], bool]) -> None:
    """After the ClientHello, a TLS record header announcing 16 KiB of handshake, then one byte of it
    every 0.3 s for 8 s: each read gets a byte well within any read timeout."""
    conn.recv(65536)
    conn.sendall(b"\x16\x03\x03\x40\x00")
    stop = time.monotonic() + 8
    while time.monotonic() < stop and not gone():
        conn.sendall(b"\x02")
        time.sleep(0.3)


STALLS = [
    ("headers", trickle_headers, "http"),
    ("100-continue", endless_continue, "http"),
    ("tls-handshake", trickle_tls_handshake, "https"),
]


@pytest.mark.parametrize(("behave", "scheme"), [s[1:] for s in STALLS], ids=[s[0] for s in STALLS])
def test_the_deadline_bounds_the_whole_exchange(
    behave: Callable[[socket.socket, Callable[[], bool]], None], scheme: str
) -> None:
    deadline = 1.5
    with RawServer(behave) as server:
        started = time.monotonic()
        with pytest.raises(FetchError, match=r"took longer than 1\.5s"):
            fetcher(deadline=deadline, connect_timeout=5.0, read_timeout=5.0).fetch(
                f"{scheme}://127.0.0.1:{server.port}/jwks"
            )
        elapsed = time.monotonic() - started
        wait_until(lambda: len(server.held) == 1)
    assert elapsed < 3 * deadline
    assert server.held[0] < 3 * deadline  # the server saw the connection end, not only the caller


def test_the_deadline_also_bounds_a_reused_connection() -> None:
    """The first request is answered at once on a kept-alive connection; the second, on the same
    connection, gets its headers one line at a time."""
    connections: list[int] = []

    def keep_alive_then_stall(conn: socket.socket, gone: Callable[[], bool]) -> None:
        connections.append(1)
        read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(BODY), BODY))
        read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\n")
        for i in range(16):
            if gone():
                return
            conn.sendall(f"X-Slow-{i}: y\r\n".encode())
            time.sleep(0.5)

    shared = fetcher(deadline=1.5, read_timeout=5.0)
    with RawServer(keep_alive_then_stall) as server:
        url = f"http://127.0.0.1:{server.port}/jwks"
        assert shared.fetch(url).body == BODY
        started = time.monotonic()
        with pytest.raises(FetchError, match=r"took longer than 1\.5s"):
            shared.fetch(url)
        elapsed = time.monotonic() - started
        wait_until(lambda: len(server.held) == 1)
    assert connections == [1]  # the second request did reuse the connection
    assert elapsed < 4.5


def test_a_slow_but_honest_server_within_the_deadline_is_fine() -> None:
    def slowish(conn: socket.socket, gone: Callable[[], bool]) -> None:
        read_request(conn)
        for line in (b"HTTP/1.1 200 OK\r\n", b"Content-Type: application/json\r\n"):
            conn.sendall(line)
            time.sleep(0.2)
        conn.sendall(b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(BODY), BODY))

    with RawServer(slowish) as server:
        result = fetcher(deadline=10.0).fetch(f"http://127.0.0.1:{server.port}/jwks")
    assert (result.status, result.body) == (200, BODY)


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    stop = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < stop, "condition not met in time"
        time.sleep(0.02)


# -- compression bombs ---------------------------------------------------------------------------------


def gzip_zeros(size: int) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(1 << 20)
    return b"".join(compressor.compress(block) for _ in range(size >> 20)) + compressor.flush()


@pytest.fixture(scope="module")
def bomb() -> bytes:
    """32 MiB of zeros, gzipped twice: about 1 KB on the wire."""
    return gzip.compress(gzip_zeros(32 << 20), 9)


def serve_once(body: bytes, encoding: str) -> Callable[[socket.socket, Callable[[], bool]], None]:
    def behave(conn: socket.socket, gone: Callable[[], bool]) -> None:
        read_request(conn)
        head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: {encoding}\r\n"
        conn.sendall(head.encode() + b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)

    return behave


@pytest.mark.parametrize(("layers", "encoding"), [(1, "gzip"), (2, "gzip, gzip")], ids=["gzip", "gzip-twice"])
def test_a_compression_bomb_is_refused_once_decoded_past_the_cap(
    bomb: bytes, layers: int, encoding: str
) -> None:
    body = gzip.decompress(bomb) if layers == 1 else bomb
    assert len(body) < 64 * 1024  # small on the wire, 32 MiB decoded
    with RawServer(serve_once(body, encoding)) as server:
        tracemalloc.start()
        try:
            with pytest.raises(FetchError) as info:
                fetcher().fetch(f"http://127.0.0.1:{server.port}/jwks")
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert str(info.value) == f"decoded response is larger than 1048576 bytes (Content-Encoding: {encoding})"
    assert peak < 4 * 1024 * 1024  # the 1 MiB kept, a few chunks in flight: not 32 MiB


def test_a_compressed_document_within_the_cap_is_decoded() -> None:
    document = b'{"keys": [' + b",".join([b'{"kty": "oct", "k": "AAAA"}'] * 2000) + b"]}"
    for encoding, body in [
        ("gzip", gzip.compress(document)),
        ("x-gzip", gzip.compress(document[:100]) + gzip.compress(document[100:])),  # two members
        ("deflate", zlib.compress(document)),
        ("deflate", zlib.compress(document)[2:-4]),  # raw deflate, as some servers send it
        ("gzip, gzip", gzip.compress(gzip.compress(document))),
        ("identity", document),
    ]:
        with RawServer(serve_once(body, encoding)) as server:
            assert fetcher().fetch(f"http://127.0.0.1:{server.port}/jwks").body == document, encoding


@pytest.mark.parametrize(
    ("encoding", "body", "reason"),
    [
        ("br", b"\x0b\x02\x80{}\x03", "unsupported Content-Encoding 'br'"),
        ("gzip, gzip, gzip", gzip.compress(gzip.compress(gzip.compress(BODY))), "more than 2 codings"),
        ("gzip", b"this is not gzip", "response body is not valid gzip data"),
        ("gzip", gzip.compress(BODY)[:-10], "response body is truncated gzip data"),
    ],
    ids=["brotli", "three-layers", "garbage", "truncated"],
)
def test_encodings_that_were_not_asked_for_or_do_not_decode_are_refused(
    encoding: str, body: bytes, reason: str
) -> None:
    with RawServer(serve_once(body, encoding)) as server, pytest.raises(FetchError, match=reason):
        fetcher().fetch(f"http://127.0.0.1:{server.port}/jwks")


def test_only_codings_the_fetcher_decodes_itself_are_asked_for() -> None:
    with JwksProvider() as provider:
        fetcher().fetch(provider.url)
        assert provider.logged(1).headers["Accept-Encoding"] == "gzip, deflate"


# -- proxies ---------------------------------------------------------------------------------------------


class RecordingProxy:
    """An HTTP proxy on loopback that records each request line; it tunnels CONNECT to loopback ports
    (so a legitimate fetch works) and answers anything else with 502."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._server = RawServer(self._handle)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.port}"

    def __enter__(self) -> RecordingProxy:
        self._server.__enter__()
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.__exit__(t, e, tb)

    def _handle(self, conn: socket.socket, gone: Callable[[], bool]) -> None:
        head = read_request(conn)
        method, target = head.split(b"\r\n", 1)[0].decode().split(" ")[:2]
        self.lines.append(f"{method} {target}")
        host, _, port = target.rpartition(":")
        if method != "CONNECT" or host != "127.0.0.1":
            conn.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return
        upstream = socket.create_connection((host, int(port)))
        conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        pipe = threading.Thread(target=self._pipe, args=(upstream, conn), daemon=True)
        pipe.start()
        self._pipe(conn, upstream)
        pipe.join(10)

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
            sink.shutdown(socket.SHUT_WR)
        except OSError:
            pass


@pytest.fixture
def proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[RecordingProxy]:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    with RecordingProxy() as p:
        yield p


@pytest.mark.parametrize("variable", ["HTTPS_PROXY", "https_proxy", "ALL_PROXY"])
@pytest.mark.parametrize(
    ("url", "allow_private", "reason"),
    [
        ("https://169.254.169.254/latest/meta-data/jwks", True, "link-local or cloud metadata address"),
        ("https://[64:ff9b::a9fe:a9fe]/jwks", True, r"carries 169\.254\.169\.254"),
        ("https://168.63.129.16/machine", True, "link-local or cloud metadata address"),
        ("https://metadata.google.internal/jwks", True, "cloud metadata host name"),
        ("https://10.0.0.5:8443/jwks", False, "private or loopback address"),
        ("https://localhost:8443/jwks", False, "private or loopback address"),
    ],
)
def test_the_guard_holds_through_a_proxy(
    proxy: RecordingProxy,
    monkeypatch: pytest.MonkeyPatch,
    variable: str,
    url: str,
    allow_private: bool,
    reason: str,
) -> None:
    monkeypatch.setenv(variable, proxy.url)
    with pytest.raises(FetchError, match=reason):
        Fetcher(FetchSettings(allow_private_networks=allow_private)).fetch(url)
    assert proxy.lines == []  # the proxy never heard of the target


def test_the_guard_holds_through_a_plain_http_proxy(
    proxy: RecordingProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    with pytest.raises(FetchError, match="private or loopback"):
        Fetcher(FetchSettings(allow_http=True)).fetch("http://10.0.0.5/jwks")
    assert proxy.lines == []


def test_a_redirect_through_a_proxy_is_vetted_too(
    proxy: RecordingProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    ca = trustme.CA()
    with JwksProvider(ca=ca) as provider:
        provider.redirect("https://169.254.169.254/latest/meta-data/jwks")
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        with pytest.raises(FetchError, match="link-local or cloud metadata"):
            fetcher().fetch(provider.url, ca_bundle=ca.cert_pem.bytes().decode())
        port = provider.url.split(":")[2].split("/")[0]
    assert proxy.lines == [f"CONNECT 127.0.0.1:{port}"]  # the redirect's target never reached it


def test_an_allowed_target_is_fetched_through_the_proxy(
    proxy: RecordingProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    ca = trustme.CA()
    with JwksProvider(ca=ca) as provider:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        result = fetcher().fetch(provider.url, ca_bundle=ca.cert_pem.bytes().decode())
        port = provider.url.split(":")[2].split("/")[0]
    assert result.status == 200
    assert proxy.lines == [f"CONNECT 127.0.0.1:{port}"]


def test_a_stalling_proxy_is_bounded_by_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)

    def stall(conn: socket.socket, gone: Callable[[], bool]) -> None:  # answers CONNECT one line at a time
        read_request(conn)
        conn.sendall(b"HTTP/1.1 200 Connection established\r\n")
        for i in range(16):
            if gone():
                return
            conn.sendall(f"X-Slow-{i}: y\r\n".encode())
            time.sleep(0.5)

    with RawServer(stall) as server:
        monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{server.port}")
        started = time.monotonic()
        with pytest.raises(FetchError, match=r"took longer than 1\.5s"):
            fetcher(deadline=1.5).fetch("https://127.0.0.1:9/jwks")
    assert time.monotonic() - started < 4.5


# -- CA bundles -------------------------------------------------------------------------------------------


@pytest.fixture
def scratch_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty directory as tempfile.gettempdir()."""
    path = tmp_path / "tmp"
    path.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(path))
    assert tempfile.gettempdir() == str(path)
    return path


def test_distinct_ca_bundles_leave_no_file_and_a_bounded_cache(scratch_tmp: Path) -> None:
    ca = trustme.CA()
    with JwksProvider(ca=ca) as provider:
        shared = fetcher()
        for _ in range(200):
            bundle = (trustme.CA().cert_pem.bytes() + ca.cert_pem.bytes()).decode()
            assert shared.fetch(provider.url, ca_bundle=bundle).status == 200
            assert len(CONTEXTS) <= CONTEXTS.size
            assert CONTEXTS.cached_bytes() <= CONTEXTS.max_bytes
    assert os.listdir(scratch_tmp) == []
    assert CONTEXTS.size == 64
    assert len([k for k in CONTEXTS.cached() if k[0] == "pem"]) == 64


def filler_bundle(ca: trustme.CA, size: int, n: int) -> str:
    """The CA's certificate first, then distinct CA certificates up to about `size` bytes."""
    pem = ca.cert_pem.bytes()
    while len(pem) < size:
        pem += trustme.CA(organization_name=f"filler {n} {len(pem)}").cert_pem.bytes()
    return pem.decode()


def test_the_ca_context_cache_is_bounded_by_bytes_and_pools_keep_none_it_let_go(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A context takes about 8 times its bundle's size in memory: the cache counts bytes, not only
    contexts, and connection pools (a fetch thread keeps 10) drop a fetch's custom-CA pool when it ends,
    so no context outlives the cache but those in use."""
    cache = TrustContexts(size=64, max_bytes=40_000)
    monkeypatch.setattr(fetcher_module, "CONTEXTS", cache)
    built: list[weakref.ref[ssl.SSLContext]] = []
    create = urllib3.util.ssl_.create_urllib3_context

    def tracked(*args: object, **kwargs: object) -> ssl.SSLContext:
        context = create(*args, **kwargs)  # type: ignore[arg-type]
        built.append(weakref.ref(context))
        return context

    monkeypatch.setattr(urllib3.util.ssl_, "create_urllib3_context", tracked)
    ca = trustme.CA()
    bundles = [filler_bundle(ca, 12_000, n) for n in range(8)]
    with JwksProvider(ca=ca) as provider:
        shared = fetcher()
        for bundle in bundles:
            assert shared.fetch(provider.url, ca_bundle=bundle).status == 200
            assert cache.cached_bytes() <= cache.max_bytes
        gc.collect()
        alive = [r() for r in built if r() is not None]
        assert len(cache) == 3, "three of about 12 KB fit in 40 KB"
        assert len(alive) == len(cache), "no pool keeps a context the cache let go"
        assert shared.fetch(provider.url, ca_bundle=bundles[-1]).status == 200  # still cached: reused
        assert len([r for r in built if r() is not None]) == len(cache)


def test_a_ca_bundle_over_the_limit_is_refused_by_the_fetcher_too() -> None:
    ca = trustme.CA()
    with pytest.raises(FetchError) as info:
        fetcher().fetch("https://127.0.0.1:9/jwks", ca_bundle=filler_bundle(ca, MAX_CA_BUNDLE_BYTES + 1, 0))
    assert str(info.value).startswith("spec.caBundleRef: the CA bundle holds ")
    assert str(info.value).endswith(f"bytes, over the {MAX_CA_BUNDLE_BYTES}-byte limit of a CA bundle")


def test_a_ca_context_is_built_only_for_a_url_that_passed_the_guard() -> None:
    """Before: the context of a tenant's bundle was built (and cached) before the URL was vetted, so a
    JwtSecret naming a metadata address still made the operator build it, retry after retry."""
    bundle = (trustme.CA().cert_pem.bytes() + trustme.CA().cert_pem.bytes()).decode()
    before = CONTEXTS.cached()
    for url, allow_private in [
        ("https://169.254.169.254/latest/meta-data/jwks", True),
        ("https://10.0.0.5/jwks", False),
        ("https://metadata.google.internal/jwks", True),
    ]:
        with pytest.raises(FetchError, match="refused to connect"):
            Fetcher(FetchSettings(allow_private_networks=allow_private)).fetch(url, ca_bundle=bundle)
    assert CONTEXTS.cached() == before


def test_a_ca_bundle_replaces_the_system_trust(
    scratch_tmp: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ca = trustme.CA()
    system = tmp_path / "system.pem"
    ca.cert_pem.write_to_path(str(system))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(system))  # the system trusts the provider...
    with JwksProvider(ca=ca) as provider:
        assert fetcher().fetch(provider.url).status == 200
        stranger = trustme.CA().cert_pem.bytes().decode()
        with pytest.raises(FetchError, match="TLS error"):  # ...the JwtSecret's bundle does not
            fetcher().fetch(provider.url, ca_bundle=stranger)
        assert fetcher().fetch(provider.url, ca_bundle=ca.cert_pem.bytes().decode()).status == 200
    with pytest.raises(FetchError, match="TLS error: the CA bundle holds no usable certificate"):
        fetcher().fetch("https://127.0.0.1:9/jwks", ca_bundle="not a certificate")
    assert os.listdir(scratch_tmp) == []
