"""HTTP adapter: fetch a JWK Set URL with requests (timeouts, size cap, safe redirects, revalidation)."""

from __future__ import annotations

import hashlib
import os
import ssl
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

import requests
import requests.utils
import urllib3
import urllib3.util.ssl_

from . import __version__
from .errors import FetchError
from .freshness import delta_seconds
from .netguard import BlockedAddressError, GuardedAdapter

if TYPE_CHECKING:
    from requests.adapters import _HostParams, _PoolKwargs

MAX_BYTES = 1024 * 1024
MAX_REDIRECTS = 5
CACHE_HEADERS = ("cache-control", "expires", "date", "age", "etag", "last-modified", "content-type")


@dataclass(frozen=True)
class FetchResult:
    """A 200 (with body) or 304 (body None) response with its caching headers (lower-case names)."""

    status: int
    body: bytes | None
    headers: Mapping[str, str]
    url: str


@dataclass(frozen=True)
class FetchSettings:
    """Network limits for one fetch."""

    connect_timeout: float = 5.0
    read_timeout: float = 10.0
    deadline: float = 30.0
    max_bytes: int = MAX_BYTES
    max_redirects: int = MAX_REDIRECTS
    allow_http: bool = False
    allow_private_networks: bool = False


class TrustCachingAdapter(GuardedAdapter):
    """A GuardedAdapter that loads each CA bundle file once per process, not once per connection.

    requests hands urllib3 the bundle's path and every new TLS connection parses it again: about
    20 ms of CPU for a container's trust store (certifi's 140-odd roots), on every refresh, since
    refresh intervals outlive keep-alive. Here each (path, mtime) gets one SSLContext, shared.
    """

    _contexts: dict[tuple[str, int], ssl.SSLContext] = {}
    _lock = threading.Lock()

    @classmethod
    def context(cls, path: str) -> ssl.SSLContext:
        """The verifying SSLContext for a CA bundle file (reloaded when the file changes)."""
        key = (path, os.stat(path).st_mtime_ns)
        with cls._lock:
            context = cls._contexts.get(key)
            if context is None:
                context = urllib3.util.ssl_.create_urllib3_context()
                context.load_verify_locations(cafile=path)
                cls._contexts = {k: v for k, v in cls._contexts.items() if k[0] != path}
                cls._contexts[key] = context
            return context

    @staticmethod
    def _bundle(verify: Any) -> str | None:
        if verify is True:
            return str(requests.utils.DEFAULT_CA_BUNDLE_PATH)
        return verify if isinstance(verify, str) and not os.path.isdir(verify) else None

    def build_connection_pool_key_attributes(
        self, request: requests.PreparedRequest, verify: Any, cert: Any = None
    ) -> tuple[_HostParams, _PoolKwargs]:
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(request, verify, cert)
        bundle = self._bundle(verify)
        if bundle is not None and host_params["scheme"] == "https":
            pool_kwargs.pop("ca_certs", None)
            pool_kwargs["ssl_context"] = self.context(bundle)
        return host_params, pool_kwargs

    def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
        super().cert_verify(conn, url, verify, cert)  # type: ignore[no-untyped-call]
        if getattr(conn, "conn_kw", {}).get("ssl_context") is not None and self._bundle(verify) is not None:
            conn.ca_certs = None  # the pool's context already trusts the bundle: do not parse it again


class Fetcher:
    """Thread-safe JWKS fetcher (one requests.Session per thread for connection reuse)."""

    def __init__(self, settings: FetchSettings | None = None) -> None:
        self.settings = settings or FetchSettings()
        self._local = threading.local()

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            adapter = TrustCachingAdapter(allow_private=self.settings.allow_private_networks, max_retries=0)
            session.mount("https://", adapter)
            session.mount("http://", adapter)
            session.headers["User-Agent"] = f"jwks-operator/{__version__}"
            session.headers["Accept"] = "application/jwk-set+json, application/json"
            self._local.session = session
        return session

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
        trust store for this request. Raise FetchError on any failure."""
        verify: str | bool = self._ca_file(ca_bundle) if ca_bundle else True
        started = time.monotonic()
        headers: dict[str, str] = {}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        current = url
        for _ in range(self.settings.max_redirects + 1):
            self._check_scheme(current, allow_http)
            response = self._get(current, headers, verify)
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
                return self._finish(response, current, started)
        raise FetchError(f"more than {self.settings.max_redirects} redirects")

    def _check_scheme(self, url: str, allow_http: bool) -> None:
        scheme = urlsplit(url).scheme
        if scheme == "https" or (scheme == "http" and (allow_http or self.settings.allow_http)):
            return
        raise FetchError(f"refused {scheme or 'relative'} URL; only https is allowed")

    @staticmethod
    def _ca_file(pem: str) -> str:
        """requests wants a file: one per distinct bundle, in the (writable) temp directory."""
        path = Path(tempfile.gettempdir()) / f"jwks-ca-{hashlib.sha256(pem.encode()).hexdigest()[:16]}.pem"
        if not path.exists():
            partial = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}")
            partial.write_text(pem)
            partial.replace(path)
        return str(path)

    def _get(self, url: str, headers: Mapping[str, str], verify: str | bool) -> requests.Response:
        timeout = (self.settings.connect_timeout, self.settings.read_timeout)
        try:
            return self._session().get(
                url, headers=dict(headers), timeout=timeout, stream=True, allow_redirects=False, verify=verify
            )
        except BlockedAddressError as exc:
            raise FetchError(str(exc)) from None
        except requests.exceptions.SSLError as exc:
            raise FetchError(f"TLS error: {_reason(exc)}") from None
        except requests.exceptions.ConnectTimeout:
            raise FetchError("connect timeout") from None
        except requests.exceptions.ReadTimeout:
            raise FetchError("read timeout") from None
        except requests.exceptions.ConnectionError as exc:
            raise FetchError(f"connection failed: {_reason(exc)}") from None
        except requests.exceptions.RequestException as exc:
            raise FetchError(f"request failed: {_reason(exc)}") from None

    def _finish(self, response: requests.Response, url: str, started: float) -> FetchResult:
        kept = {k: response.headers[k] for k in CACHE_HEADERS if k in response.headers}
        if response.status_code == 304:
            return FetchResult(304, None, kept, url)
        if response.status_code != 200:
            retry_after = delta_seconds(response.headers.get("Retry-After"))
            raise FetchError(
                f"HTTP {response.status_code} {response.reason or ''}".rstrip(), retry_after=retry_after
            )
        declared = response.headers.get("Content-Length")
        if declared and declared.isdigit() and int(declared) > self.settings.max_bytes:
            raise FetchError(f"response is larger than {self.settings.max_bytes} bytes")
        chunks: list[bytes] = []
        size = 0
        try:
            while chunk := response.raw.read1(16384, decode_content=True):  # returns what has arrived
                size += len(chunk)
                if size > self.settings.max_bytes:
                    raise FetchError(f"response is larger than {self.settings.max_bytes} bytes")
                if time.monotonic() - started > self.settings.deadline:
                    raise FetchError(f"response took longer than {self.settings.deadline:g}s")
                chunks.append(chunk)
        except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise FetchError(f"reading the response failed: {_reason(exc)}") from None
        return FetchResult(200, b"".join(chunks), kept, url)


def _reason(exc: BaseException) -> str:
    """The innermost cause, short: requests nests urllib3 errors several levels deep."""
    while exc.args and isinstance(exc.args[0], BaseException):
        exc = exc.args[0]
    inner = getattr(exc, "reason", None)
    text = str(inner if isinstance(inner, BaseException) else exc)
    return text if len(text) <= 200 else text[:197] + "..."
