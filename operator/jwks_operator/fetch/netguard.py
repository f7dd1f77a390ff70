"""SSRF guard for JWKS fetches: refuse cloud metadata host names, link-local, metadata, unspecified,
multicast and broadcast addresses (and, unless allowed, private, loopback and reserved ones), including
IPv4 addresses carried inside IPv6 ones (mapped, compatible, translated, NAT64, 6to4, Teredo).

Checked twice: `check_target` resolves the URL's host before any request, proxied or not, and answers the
addresses it vetted; a proxy is then asked for one of them, never the name (its own lookup could answer
another address: DNS rebinding). Direct connections check the resolved addresses again and the connected
socket's peer (rebinding between the two lookups)."""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

METADATA = "link-local or cloud metadata address"
NOT_UNICAST = "unspecified, multicast or broadcast address"
PRIVATE_REASON = "private or loopback address"
RESERVED = "reserved (not publicly routed) address"


def _table(*rows: tuple[str, str]) -> tuple[tuple[Network, str], ...]:
    return tuple((ipaddress.ip_network(net), reason) for net, reason in rows)


ALWAYS_BLOCKED = _table(
    ("169.254.0.0/16", METADATA),  # IPv4 link-local, incl. 169.254.169.254 (AWS, GCP, Azure, OpenStack)
    ("168.63.129.16/32", METADATA),  # Azure WireServer (host agent, DNS, health probes)
    ("100.100.100.200/32", METADATA),  # Alibaba Cloud metadata
    ("fd00:ec2::254/128", METADATA),  # AWS IMDS over IPv6
    ("fe80::/10", METADATA),  # IPv6 link-local
    ("0.0.0.0/8", NOT_UNICAST),  # "this network": 0.0.0.0 reaches the local host
    ("::/128", NOT_UNICAST),
    ("224.0.0.0/4", NOT_UNICAST),
    ("ff00::/8", NOT_UNICAST),
    ("255.255.255.255/32", NOT_UNICAST),
)
PRIVATE = _table(
    ("10.0.0.0/8", PRIVATE_REASON),
    ("172.16.0.0/12", PRIVATE_REASON),
    ("192.168.0.0/16", PRIVATE_REASON),
    ("100.64.0.0/10", PRIVATE_REASON),  # carrier-grade NAT, also used by cluster networks
    ("127.0.0.0/8", PRIVATE_REASON),
    ("::1/128", PRIVATE_REASON),
    ("fc00::/7", PRIVATE_REASON),
    ("fec0::/10", PRIVATE_REASON),  # deprecated site-local
    ("64:ff9b:1::/48", PRIVATE_REASON),  # local-use NAT64 (RFC 8215): a site's own translator
    ("198.18.0.0/15", RESERVED),  # benchmarking (RFC 2544), used inside some networks
    ("240.0.0.0/4", RESERVED),  # class E, used for pod ranges by some clusters
    ("192.0.0.0/24", RESERVED),  # IETF protocol assignments
    ("192.0.2.0/24", RESERVED),  # documentation
    ("198.51.100.0/24", RESERVED),
    ("203.0.113.0/24", RESERVED),
    ("192.88.99.0/24", RESERVED),  # deprecated 6to4 relay anycast
    ("2001:db8::/32", RESERVED),  # documentation
    ("100::/64", RESERVED),  # discard-only
    ("::/96", RESERVED),  # deprecated IPv4-compatible addresses (after ::1 above)
)
METADATA_HOSTS = frozenset(
    {"metadata", "metadata.google.internal", "metadata.goog", "instance-data", "instance-data.ec2.internal"}
)

_V4_MAPPED = ipaddress.ip_network("::ffff:0:0/96")
_V4_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")  # SIIT (RFC 2765): ::ffff:0:a.b.c.d
_V4_COMPATIBLE = ipaddress.ip_network("::/96")  # deprecated ::a.b.c.d
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # well-known NAT64 prefix (RFC 6052)
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
_SIX_TO_FOUR = ipaddress.ip_network("2002::/16")
_TEREDO = ipaddress.ip_network("2001::/32")


class BlockedAddressError(ValueError):
    """The URL resolves to an address jwks-operator must not contact."""


def _rfc6052(value: int, prefix_length: int) -> ipaddress.IPv4Address:
    """The IPv4 address an RFC 6052 IPv6 address carries after a prefix of that length (bits 64-71, the
    "u" octet, hold none of it)."""
    if prefix_length == 96:
        return ipaddress.IPv4Address(value & 0xFFFFFFFF)
    without_u = ((value >> 64) << 56) | (value & ((1 << 56) - 1))  # 120 bits: the u octet taken out
    return ipaddress.IPv4Address((without_u >> (120 - prefix_length - 32)) & 0xFFFFFFFF)


def embedded_ipv4(addr: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address, ...]:
    """The IPv4 addresses an IPv6 address leads to (through a translator, a tunnel or the host's own
    IPv4 stack): each must pass the policy too."""
    value = int(addr)
    if addr in _V4_MAPPED or addr in _V4_TRANSLATED or addr in _NAT64:
        return (ipaddress.IPv4Address(value & 0xFFFFFFFF),)
    if addr in _V4_COMPATIBLE:
        return (ipaddress.IPv4Address(value),) if value > 1 else ()  # :: and ::1 are themselves
    if addr in _SIX_TO_FOUR:
        return (ipaddress.IPv4Address((value >> 80) & 0xFFFFFFFF),)
    if addr in _TEREDO:
        server = ipaddress.IPv4Address((value >> 64) & 0xFFFFFFFF)
        client = ipaddress.IPv4Address(~value & 0xFFFFFFFF)  # stored inverted
        return (server, client)
    return ()


def possible_ipv4(addr: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address, ...]:
    """Where a local-use NAT64 address (64:ff9b:1::/48) may carry an IPv4 address: the site picks the
    prefix length (RFC 6052: /48, /56, /64 or /96), so every reading is a candidate. The prefix itself
    is private; a candidate only refuses it when it is a link-local or metadata address."""
    if addr not in _NAT64_LOCAL:
        return ()
    return tuple(_rfc6052(int(addr), n) for n in (48, 56, 64, 96))


def _match(addr: IPAddress, table: tuple[tuple[Network, str], ...]) -> str | None:
    return next((reason for net, reason in table if addr.version == net.version and addr in net), None)


def check_address(ip: str, *, allow_private: bool) -> None:
    """Raise BlockedAddressError for an ALWAYS_BLOCKED address, and a PRIVATE one unless allowed; an
    IPv6 address is judged with the IPv4 addresses it carries (the strictest verdict wins)."""
    addr: IPAddress = ipaddress.ip_address(ip.split("%", 1)[0])
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    carried: tuple[IPAddress, ...] = ()
    possible: tuple[IPAddress, ...] = ()
    if isinstance(addr, ipaddress.IPv6Address):
        carried, possible = embedded_ipv4(addr), possible_ipv4(addr)

    def refuse(candidate: IPAddress, reason: str) -> BlockedAddressError:
        shown = str(addr) if candidate is addr else f"{addr} (which carries {candidate})"
        return BlockedAddressError(f"refused to connect to {shown}: {reason}")

    for candidate in (addr, *carried, *possible):
        reason = _match(candidate, ALWAYS_BLOCKED)
        if reason is not None and (reason == METADATA or candidate not in possible):
            raise refuse(candidate, reason)
    if allow_private:
        return
    for candidate in (addr, *carried):
        reason = _match(candidate, PRIVATE)
        if reason is not None:
            raise refuse(
                candidate, f"{reason} (the operator-wide --allow-private-networks setting permits it)"
            )


def check_host(host: str) -> None:
    """Refuse well-known metadata host names before any DNS lookup."""
    if host.rstrip(".").lower() in METADATA_HOSTS:
        raise BlockedAddressError(f"refused to connect to {host}: cloud metadata host name")


def check_target(host: str, port: int, *, allow_private: bool) -> list[str]:
    """Vet a URL's host before any request: its name, then every address it resolves to; the addresses, in
    the resolver's order. Raise BlockedAddressError, or OSError (socket.gaierror) when it does not
    resolve: an address that was not seen is not sent to a proxy either."""
    check_host(host)
    addresses = [str(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]
    for address in addresses:
        check_address(address, allow_private=allow_private)
    return list(dict.fromkeys(addresses))


class GuardMixin:
    """For urllib3 connection classes that connect to the target itself (not through a proxy)."""

    allow_private = False
    _dns_host: str
    port: int

    def _new_conn(self) -> socket.socket:
        check_target(self._dns_host, self.port, allow_private=self.allow_private)
        sock: socket.socket = super()._new_conn()  # type: ignore[misc]
        try:
            check_address(str(sock.getpeername()[0]), allow_private=self.allow_private)  # DNS rebinding
        except BlockedAddressError:
            sock.close()
            raise
        return sock


class GuardedAdapter(HTTPAdapter):
    """A requests adapter whose direct connections pass the guard. Proxied requests must be vetted
    with `check_target` before they are sent, and sent to the address it vetted: the proxy, not this
    process, connects to the target."""

    connection_mixins: tuple[type, ...] = ()  # placed before GuardMixin in every connection class
    pool_mixins: tuple[type, ...] = ()

    def __init__(self, *, allow_private: bool, **kwargs: Any) -> None:
        attrs = {"allow_private": allow_private}
        guarded = (*self.connection_mixins, GuardMixin)
        http_conn = type("GuardedHTTPConnection", (*guarded, HTTPConnection), attrs)
        https_conn = type("GuardedHTTPSConnection", (*guarded, HTTPSConnection), attrs)
        self._pools = {
            "http": type(
                "GuardedHTTPPool", (*self.pool_mixins, HTTPConnectionPool), {"ConnectionCls": http_conn}
            ),
            "https": type(
                "GuardedHTTPSPool", (*self.pool_mixins, HTTPSConnectionPool), {"ConnectionCls": https_conn}
            ),
        }
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = self._pools
