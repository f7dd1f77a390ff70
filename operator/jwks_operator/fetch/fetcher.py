"""Fetch a JWK Set URL with requests: a deadline over the whole exchange (fetch.deadline), size caps on the
wire and decoded (fetch.body), safe redirects, the SSRF guard before every request (fetch.netguard; through
a proxy, the proxy is asked for the vetted address: fetch.adapter), revalidation."""

from __future__ import annotations

import ssl
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import requests
import urllib3

from jwks_operator import __version__
from jwks_operator.fetch.adapter import FetchAdapter, FetchSession
from jwks_operator.fetch.body import ACCEPT_ENCODING, body_chunks, release
from jwks_operator.fetch.deadline import Exchange, watched_exchange
from jwks_operator.fetch.netguard import BlockedAddressError, check_target
from jwks_operator.fetch.trust import CONTEXTS, MAX_CA_BUNDLE_BYTES
from jwks_operator.model.errors import FetchError
from jwks_operator.model.freshness import delta_seconds

MAX_BYTES = 1024 * 1024
MAX_REDIRECTS = 5
CACHE_HEADERS = ("cache-control", "expires", "date", "age", "etag", "last-modified", "content-type")


@dataclass(frozen=True, slots=True)
class FetchResult:
    """A 200 (with body) or 304 (body None) response with its caching headers (lower-case names)."""

    status: int
    body: bytes | None
    headers: Mapping[str, str]
    url: str


@dataclass(frozen=True, slots=True)
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


class Fetcher:
    """Thread-safe JWKS fetcher (one requests.Session per thread for connection reuse)."""

    def __init__(self, settings: FetchSettings | None = None) -> None:
        self.settings = settings or FetchSettings()
        self._local = threading.local()

    def _session(self) -> tuple[requests.Session, FetchAdapter]:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = FetchSession()
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
        with watched_exchange(self.settings.deadline) as current:
            return self._fetch(url, current, etag, last_modified, allow_http, ca_bundle)

    def _fetch(
        self,
        url: str,
        exchange: Exchange,
        etag: str | None,
        last_modified: str | None,
        allow_http: bool,
        ca_bundle: str | None,
    ) -> FetchResult:
        if ca_bundle and len(ca_bundle.encode()) > MAX_CA_BUNDLE_BYTES:
            raise FetchError(
                f"spec.caBundleRef: the CA bundle holds {len(ca_bundle.encode())} bytes, over the "
                f"{MAX_CA_BUNDLE_BYTES}-byte limit of a CA bundle"
            )
        headers: dict[str, str] = {}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        trust: ssl.SSLContext | None = None
        current = url
        try:
            for _ in range(self.settings.max_redirects + 1):
                self._check_scheme(current, allow_http)
                vetted = self._vet(current)
                if ca_bundle and trust is None and urlsplit(current).scheme == "https":
                    trust = self._trust(ca_bundle)  # only now: the URL passed the guard
                response = self._get(current, headers, trust, exchange, vetted)
                with response:
                    if response.status_code in (301, 302, 303, 307, 308):
                        location = response.headers.get("Location")
                        if not location:
                            raise FetchError(
                                f"HTTP {response.status_code} redirect without a Location header"
                            )
                        target = urljoin(current, location)
                        if urlsplit(current).scheme == "https" and urlsplit(target).scheme != "https":
                            raise FetchError(f"refused redirect from https to {urlsplit(target).scheme}")
                        current = target
                        continue
                    return self._finish(response, current, exchange)
            raise FetchError(f"more than {self.settings.max_redirects} redirects")
        finally:
            if trust is not None:  # the cache alone keeps a tenant's context, not this thread's pools
                self._session()[1].drop_pools(trust)

    @staticmethod
    def _trust(ca_bundle: str) -> ssl.SSLContext:
        """The context of a CA bundle, built (or taken from the cache)."""
        try:
            return CONTEXTS.for_pem(ca_bundle)
        except ssl.SSLError as exc:
            raise FetchError(f"TLS error: the CA bundle holds no usable certificate ({exc.reason})") from None

    def _check_scheme(self, url: str, allow_http: bool) -> None:
        scheme = urlsplit(url).scheme
        if scheme == "https" or (scheme == "http" and (allow_http or self.settings.allow_http)):
            return
        raise FetchError(f"refused {scheme or 'relative'} URL; only https is allowed")

    def _vet(self, url: str) -> str:
        """The SSRF guard before the request, whatever carries it; the address to ask a proxy for. Through
        a proxy (HTTPS_PROXY, HTTP_PROXY, ALL_PROXY) the proxy connects, and the connection guard only sees
        the proxy. (A direct connection is checked again as it connects.)"""
        parts = urlsplit(url)
        try:
            host, port = parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError as exc:
            raise FetchError(f"invalid URL: {exc}") from None
        if not host:
            raise FetchError("invalid URL: no host")
        try:
            addresses = check_target(host, port, allow_private=self.settings.allow_private_networks)
        except BlockedAddressError as exc:
            raise FetchError(str(exc)) from None
        except (OSError, UnicodeError) as exc:
            raise FetchError(f"connection failed: cannot resolve {host}: {_reason(exc)}") from None
        if not addresses:
            raise FetchError(f"connection failed: cannot resolve {host}: no address")
        return addresses[0]

    def _deadline_error(self) -> FetchError:
        return FetchError(f"response took longer than {self.settings.deadline:g}s")

    def _get(
        self,
        url: str,
        headers: Mapping[str, str],
        trust: ssl.SSLContext | None,
        exchange: Exchange,
        vetted: str,
    ) -> requests.Response:
        remaining = exchange.remaining()
        if remaining <= 0:
            raise self._deadline_error()
        timeout = (min(self.settings.connect_timeout, remaining), min(self.settings.read_timeout, remaining))
        session, adapter = self._session()
        adapter.trust, adapter.vetted = trust, vetted
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
            adapter.trust, adapter.vetted = None, None

    def _finish(self, response: requests.Response, url: str, exchange: Exchange) -> FetchResult:
        kept = {k: response.headers[k] for k in CACHE_HEADERS if k in response.headers}
        if response.status_code == 304:
            release(response)
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
        chunks: list[bytes] = []
        try:
            for chunk in body_chunks(response, limit):
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


def _reason(exc: BaseException) -> str:
    """The innermost cause, short: requests nests urllib3 errors several levels deep."""
    while exc.args and isinstance(exc.args[0], BaseException):
        exc = exc.args[0]
    inner = getattr(exc, "reason", None)
    text = str(inner if isinstance(inner, BaseException) else exc)
    return text if len(text) <= 200 else text[:197] + "..."
