"""The requests adapter and session of the fetcher: connections the deadline watchdog can end, TLS trust
from shared SSL contexts (fetch.trust), the proxy asked for the vetted address, never the name, and the
environment read once per host.

Through a proxy (HTTPS_PROXY, HTTP_PROXY, ALL_PROXY; NO_PROXY applies to the name), the request names the
address the guard vetted, never the host, which the proxy's own lookup could resolve to another address
(DNS rebinding): `CONNECT 203.0.113.7:443` with TLS sending and verifying the name (SNI and the
certificate), or for http `GET http://203.0.113.7/path` with the name in the Host header."""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import requests
import requests.utils
import urllib3

from jwks_operator.fetch.deadline import PROXIED_POOLS, WatchedConnection, WatchedPool
from jwks_operator.fetch.netguard import GuardedAdapter
from jwks_operator.fetch.trust import CONTEXTS

if TYPE_CHECKING:
    from requests.adapters import _HostParams, _PoolKwargs
    from requests.sessions import _Settings


class FetchAdapter(GuardedAdapter):
    """A GuardedAdapter whose connections the deadline watchdog can end, and whose TLS trust comes from
    shared SSLContexts (trust.CONTEXTS): the request's CA bundle PEM (`trust`, set per request by the
    Fetcher; this adapter belongs to one thread's session), else the system bundle file, each parsed
    once per process rather than once per connection. `vetted`, also set per request, is the address a
    proxy is asked for."""

    connection_mixins = (WatchedConnection,)
    pool_mixins = (WatchedPool,)

    def __init__(self, *, allow_private: bool, **kwargs: Any) -> None:
        super().__init__(allow_private=allow_private, **kwargs)
        self.trust: ssl.SSLContext | None = None
        self.vetted: str | None = None  # the address the guard vetted for this request's host
        self._tls_name: str | None = None  # the host TLS verifies, while a request names an address

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: Any = True,
        cert: Any = None,
        proxies: Mapping[str, str] | None = None,
    ) -> requests.Response:
        """Send, through a proxy naming the vetted address instead of the host (see the module)."""
        if self.vetted is not None and proxies and requests.utils.select_proxy(str(request.url), proxies):
            request, self._tls_name = _pinned(request, self.vetted)
        try:
            return super().send(request, stream, timeout, verify, cert, proxies)
        finally:
            self._tls_name = None

    @staticmethod
    def _bundle(verify: Any) -> str | None:
        if verify is True:
            return str(requests.utils.DEFAULT_CA_BUNDLE_PATH)
        return verify if isinstance(verify, str) and not os.path.isdir(verify) else None

    def build_connection_pool_key_attributes(
        self, request: requests.PreparedRequest, verify: Any, cert: Any = None
    ) -> tuple[_HostParams, _PoolKwargs]:
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(request, verify, cert)
        if host_params["scheme"] == "https" and self._tls_name is not None:
            # SNI, and the name the certificate must hold (a urllib3 pool argument requests' stubs omit)
            pool_kwargs["server_hostname"] = self._tls_name  # type: ignore[typeddict-unknown-key]
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

    def drop_pools(self, context: ssl.SSLContext) -> None:
        """Close and forget the pools (direct and proxied) whose connections use `context`: a tenant's CA
        context is kept by the bounded cache alone, not by this thread's pools once its fetch is over."""
        managers = [self.poolmanager, *self.proxy_manager.values()]
        for pools in (m.pools for m in managers):
            for key in pools.keys():  # noqa: SIM118 (urllib3's RecentlyUsedContainer is not iterable)
                if getattr(key, "key_ssl_context", None) is context:
                    pools.pop(key, None)  # disposes of it: its connections are closed

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if isinstance(manager, urllib3.ProxyManager):
            manager.pool_classes_by_scheme = PROXIED_POOLS
        return manager


def _pinned(request: requests.PreparedRequest, address: str) -> tuple[requests.PreparedRequest, str]:
    """The request with `address` in its URL's place of the host, which goes in its Host header; and the
    host, for TLS. Credentials in the URL are already in its Authorization header."""
    parts = urlsplit(str(request.url))
    literal = f"[{address}]" if ":" in address else address
    pinned = request.copy()
    pinned.url = urlunsplit(
        (
            parts.scheme,
            literal if parts.port is None else f"{literal}:{parts.port}",
            parts.path,
            parts.query,
            "",
        )
    )
    pinned.headers["Host"] = parts.netloc.rpartition("@")[2]
    return pinned, parts.hostname or ""


class FetchSession(requests.Session):
    """A Session that reads the environment (proxy variables and REQUESTS_CA_BUNDLE) once per scheme and
    host, not on every request: requests scans every variable each time, and a pod carries one set of
    service variables per Service in its namespace (hundreds, in a large one)."""

    MAX_HOSTS = 256

    def __init__(self) -> None:
        super().__init__()
        self._environment: dict[tuple[str, str, Any, Any, Any], _Settings] = {}

    def merge_environment_settings(
        self, url: str | bytes | None, proxies: Any, stream: Any, verify: Any, cert: Any
    ) -> _Settings:
        if proxies or not self.trust_env or not isinstance(url, str):
            return super().merge_environment_settings(url, proxies, stream, verify, cert)
        parts = urlsplit(url)
        key = (parts.scheme, parts.netloc, stream, verify, cert)
        known = self._environment.get(key)
        if known is None:
            if len(self._environment) >= self.MAX_HOSTS:
                self._environment.clear()
            known = super().merge_environment_settings(url, {}, stream, verify, cert)
            self._environment[key] = known
        fresh = known.copy()
        fresh["proxies"] = dict(known["proxies"])
        return fresh
