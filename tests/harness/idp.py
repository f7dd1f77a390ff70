"""A JWKS provider on loopback (HTTP or HTTPS via trustme) with realistic cache headers, rotation
and failure modes, and a request log. Signs tokens with its private keys."""

from __future__ import annotations

import email.utils
import hashlib
import json
import ssl
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

import jwt
import trustme

from tests.material import ec_key, ed_key, private_pem, public_jwk, rsa_key

PATH = "/.well-known/jwks.json"


@dataclass(frozen=True)
class Record:
    """One request the provider answered."""

    monotonic: float
    wall: float
    method: str
    path: str
    headers: dict[str, str]
    status: int


class JwksProvider:
    """A JWKS endpoint. Profiles: google, auth0, none, no-cache, no-store (see `headers_for`)."""

    def __init__(
        self,
        *,
        ca: trustme.CA | None = None,
        profile: str = "google",
        max_age: int = 1,
        hosts: tuple[str, ...] = ("127.0.0.1", "localhost"),
        keep_alive: bool = False,
    ) -> None:
        self.ca = ca
        # HTTP/1.1 with persistent connections, as real providers serve; else HTTP/1.0, one per request
        self.keep_alive = keep_alive
        self.connections = 0  # connections accepted (with TLS: one full handshake each)
        self.hosts = hosts  # the names and addresses its TLS certificate is for
        self.profile = profile
        self.max_age = max_age
        self.age: int | None = None
        self.etag_enabled = True
        self._lock = threading.Lock()
        self._keys: dict[str, tuple[Any, str]] = {}  # kid -> (private key, alg)
        self._fail: tuple[int, bytes, str | None, int | None] | None = (
            None  # status, body, retry-after, times
        )
        self._raw: tuple[bytes, str, int] | None = None
        self._redirect: tuple[str, int] | None = None
        self._delay = 0.0
        self._drip: float | None = None
        self._modified = email.utils.formatdate(usegmt=True)
        self.log: list[Record] = []
        self._server: ThreadingHTTPServer | None = None
        self.rotate()

    # -- keys --------------------------------------------------------------------------------------

    @property
    def keys(self) -> list[str]:
        with self._lock:
            return list(self._keys)

    def rotate(self, kty: str = "RSA") -> str:
        """Add a new signing key (RSA-2048, EC P-256 or OKP Ed25519); return its kid."""
        kid = f"{kty.lower()}-{uuid.uuid4().hex[:8]}"
        n = len(self._keys) + 100
        key, alg = {
            "RSA": (rsa_key(2048, n), "RS256"),
            "EC": (ec_key("P-256", n), "ES256"),
            "OKP": (ed_key(n), "EdDSA"),
        }[kty]
        with self._lock:
            self._keys[kid] = (key, alg)
            self._modified = email.utils.formatdate(usegmt=True)
        return kid

    def private_key(self, kid: str) -> tuple[Any, str]:
        """The private key of `kid` and its algorithm (to sign tokens of any shape)."""
        with self._lock:
            return self._keys[kid]

    def retire(self, kid: str) -> None:
        with self._lock:
            del self._keys[kid]
            self._modified = email.utils.formatdate(usegmt=True)

    def document(self) -> dict[str, Any]:
        with self._lock:
            return {
                "keys": [public_jwk(k, kid=kid, alg=alg, use="sig") for kid, (k, alg) in self._keys.items()]
            }

    def sign(
        self, claims: dict[str, Any], *, kid: str | None = None, headers: dict[str, Any] | None = None
    ) -> str:
        """A token signed by `kid` (default: the newest key)."""
        with self._lock:
            kid = kid or list(self._keys)[-1]
            key, alg = self._keys[kid]
        return jwt.encode(claims, private_pem(key), algorithm=alg, headers={"kid": kid, **(headers or {})})

    # -- behaviour ---------------------------------------------------------------------------------

    def fail(
        self,
        status: int = 500,
        *,
        body: bytes = b"",
        retry_after: str | None = None,
        times: int | None = None,
    ) -> None:
        """Answer with `status` (`times` requests, or until recover())."""
        with self._lock:
            self._fail = (status, body, retry_after, times)

    def serve_raw(self, body: bytes, content_type: str = "application/json", status: int = 200) -> None:
        with self._lock:
            self._raw = (body, content_type, status)

    def redirect(self, location: str, status: int = 302) -> None:
        with self._lock:
            self._redirect = (location, status)

    def delay(self, seconds: float) -> None:
        with self._lock:
            self._delay = seconds

    def drip(self, bytes_per_second: float) -> None:
        """Send bodies slowly (a slow-loris provider)."""
        with self._lock:
            self._drip = bytes_per_second

    def recover(self) -> None:
        with self._lock:
            self._fail = self._raw = self._redirect = self._drip = None
            self._delay = 0.0

    def headers_for(self) -> dict[str, str]:
        """Caching headers of the current profile."""
        now = time.time()
        date = email.utils.formatdate(now, usegmt=True)
        expires = email.utils.formatdate(now + self.max_age, usegmt=True)
        profiles = {
            "google": {
                "Cache-Control": f"public, max-age={self.max_age}, must-revalidate, no-transform",
                "Expires": expires,
            },
            "auth0": {
                "Cache-Control": f"public, max-age={self.max_age}, stale-while-revalidate=60, "
                "stale-if-error=86400"
            },
            "expires": {"Expires": expires},
            "none": {},
            "no-cache": {"Cache-Control": "no-cache"},
            "no-store": {"Cache-Control": "no-store"},
        }
        headers = {"Date": date, **profiles[self.profile]}
        if self.age is not None:
            headers["Age"] = str(self.age)
        return headers

    # -- log ---------------------------------------------------------------------------------------

    def logged(self, count: int, timeout: float = 5.0) -> Record:
        """The `count`th request, waiting for it: a request is logged after its answer is sent."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.log) >= count:
                    return self.log[count - 1]
            time.sleep(0.01)
        raise AssertionError(f"the provider logged {len(self.log)} request(s), not {count}")

    def count(self, status: int | None = None) -> int:
        with self._lock:
            return sum(1 for r in self.log if status is None or r.status == status)

    def clear_log(self) -> None:
        with self._lock:
            self.log.clear()

    # -- server ------------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        assert self._server is not None, "not started"
        scheme = "https" if self.ca else "http"
        return f"{scheme}://127.0.0.1:{self._server.server_address[1]}"

    @property
    def url(self) -> str:
        return self.base_url + PATH

    def start(self) -> JwksProvider:
        provider = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1" if provider.keep_alive else "HTTP/1.0"

            def setup(self) -> None:
                super().setup()
                with provider._lock:
                    provider.connections += 1

            def do_GET(self) -> None:
                try:
                    status = provider._respond(self)
                except OSError:  # the client hung up (e.g. it stopped reading an oversized body)
                    status = -1
                with provider._lock:
                    provider.log.append(
                        Record(
                            time.monotonic(),
                            time.time(),
                            "GET",
                            self.path,
                            dict(self.headers.items()),
                            status,
                        )
                    )

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        if self.ca is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self.ca.issue_cert(*self.hosts).configure_cert(context)
            server.socket = context.wrap_socket(server.socket, server_side=True)
        self._server = server
        threading.Thread(target=server.serve_forever, daemon=True, name="jwks-provider").start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> JwksProvider:
        return self.start()

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _respond(self, request: BaseHTTPRequestHandler) -> int:
        with self._lock:
            fail, raw, redirect, delay = self._fail, self._raw, self._redirect, self._delay
            if fail is not None and fail[3] is not None:
                self._fail = None if fail[3] <= 1 else (fail[0], fail[1], fail[2], fail[3] - 1)
            modified = self._modified
        if delay:
            time.sleep(delay)
        if request.path.split("?")[0] != PATH:
            return self._send(request, 404, b"not found", {})
        if redirect is not None:
            return self._send(request, redirect[1], b"", {"Location": redirect[0]})
        if fail is not None:
            extra = {"Retry-After": fail[2]} if fail[2] else {}
            return self._send(request, fail[0], fail[1], extra)
        headers = self.headers_for()
        if raw is not None:
            return self._send(request, raw[2], raw[0], {**headers, "Content-Type": raw[1]})
        body = json.dumps(self.document()).encode()
        if self.etag_enabled:
            etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
            headers.update({"ETag": etag, "Last-Modified": modified})
            if request.headers.get("If-None-Match") == etag or (
                request.headers.get("If-Modified-Since") == modified
                and "If-None-Match" not in request.headers
            ):
                return self._send(request, 304, b"", headers)
        return self._send(request, 200, body, {**headers, "Content-Type": "application/json"})

    def _send(
        self, request: BaseHTTPRequestHandler, status: int, body: bytes, headers: dict[str, str]
    ) -> int:
        request.send_response(status)
        for name, value in headers.items():
            request.send_header(name, value)
        if status != 304:
            request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        if status != 304 and self._drip:
            for i in range(0, len(body), 16):
                request.wfile.write(body[i : i + 16])
                request.wfile.flush()
                time.sleep(16 / self._drip)
        elif status != 304:
            request.wfile.write(body)
        return status
