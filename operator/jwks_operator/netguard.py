"""SSRF guard for JWKS fetches: refuse cloud metadata host names, link-local, metadata, unspecified and
multicast addresses (and, unless allowed, private and loopback ones) after DNS resolution and again on the
connected socket."""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

ALWAYS_BLOCKED = tuple(
    ipaddress.ip_network(n)
    for n in (
        "169.254.0.0/16",  # IPv4 link-local, incl. 169.254.169.254 (AWS, GCP, Azure, OpenStack metadata)
        "fe80::/10",  # IPv6 link-local
        "fd00:ec2::254/128",  # AWS IMDS over IPv6
        "100.100.100.200/32",  # Alibaba Cloud metadata
        "0.0.0.0/8",
        "::/128",
        "224.0.0.0/4",
        "ff00::/8",
    )
)
PRIVATE = tuple(
    ipaddress.ip_network(n)
    for n in (
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "::1/128",
        "fc00::/7",
    )
)
METADATA_HOSTS = frozenset(
    {"metadata", "metadata.google.internal", "metadata.goog", "instance-data", "instance-data.ec2.internal"}
)


class BlockedAddressError(ValueError):
    """The URL resolves to an address jwks-operator must not contact."""


def check_address(ip: str, *, allow_private: bool) -> None:
    """Raise BlockedAddressError for an ALWAYS_BLOCKED address, and a PRIVATE one unless allowed."""
    addr: IPAddress = ipaddress.ip_address(ip.split("%", 1)[0])
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    if any(addr in net for net in ALWAYS_BLOCKED):
        raise BlockedAddressError(f"refused to connect to {addr}: link-local or cloud metadata address")
    if not allow_private and any(addr in net for net in PRIVATE):
        raise BlockedAddressError(
            f"refused to connect to {addr}: private or loopback address "
            "(the operator-wide --allow-private-networks setting permits it)"
        )


def check_host(host: str) -> None:
    """Refuse well-known metadata host names before any DNS lookup."""
    if host.rstrip(".").lower() in METADATA_HOSTS:
        raise BlockedAddressError(f"refused to connect to {host}: cloud metadata host name")


class _GuardMixin:
    allow_private = False
    _dns_host: str
    port: int

    def _new_conn(self) -> socket.socket:
        check_host(self._dns_host)
        for info in socket.getaddrinfo(self._dns_host, self.port, type=socket.SOCK_STREAM):
            check_address(str(info[4][0]), allow_private=self.allow_private)
        sock: socket.socket = super()._new_conn()  # type: ignore[misc]
        try:
            check_address(str(sock.getpeername()[0]), allow_private=self.allow_private)  # DNS rebinding
        except BlockedAddressError:
            sock.close()
            raise
        return sock


class GuardedAdapter(HTTPAdapter):
    """A requests adapter whose direct connections pass the guard (proxies enforce their own egress)."""

    def __init__(self, *, allow_private: bool, **kwargs: Any) -> None:
        attrs = {"allow_private": allow_private}
        http_conn = type("GuardedHTTPConnection", (_GuardMixin, HTTPConnection), attrs)
        https_conn = type("GuardedHTTPSConnection", (_GuardMixin, HTTPSConnection), attrs)
        self._pools = {
            "http": type("GuardedHTTPPool", (HTTPConnectionPool,), {"ConnectionCls": http_conn}),
            "https": type("GuardedHTTPSPool", (HTTPSConnectionPool,), {"ConnectionCls": https_conn}),
        }
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = self._pools
