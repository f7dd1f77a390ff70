"""The SSRF guard where it meets connections (issue #28, mutation testing): the name checked before any
connection, the connected peer checked again (DNS rebinding), the adapter's connection classes; and the
address readings test_netguard.py did not pin (NAT64 /56, a u octet, ::2, the over-blocking edge)."""

from __future__ import annotations

import http.server
import ipaddress
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from urllib3.connection import HTTPConnection, HTTPSConnection

from jwks_operator.fetch import netguard
from jwks_operator.fetch.netguard import (
    METADATA_HOSTS,
    BlockedAddressError,
    GuardedAdapter,
    GuardMixin,
    check_address,
    check_host,
)

V4, V6 = ipaddress.IPv4Address, ipaddress.IPv6Address
METADATA = "link-local or cloud metadata address"


def refusal(address: str, *, allow_private: bool = False) -> str:
    with pytest.raises(BlockedAddressError) as raised:
        check_address(address, allow_private=allow_private)
    return str(raised.value)


# --- addresses --------------------------------------------------------------------------------------------


def test_a_public_address_ending_in_a_metadata_address_is_allowed() -> None:
    """Only the local-use NAT64 prefix (64:ff9b:1::/48) is read at every prefix length: elsewhere the
    last 32 bits are no IPv4 address, and reading them as one would refuse a public host."""
    assert netguard.possible_ipv4(V6("2606:4700::a9fe:a9fe")) == ()
    check_address("2606:4700::a9fe:a9fe", allow_private=False)


def test_the_local_nat64_prefix_is_read_at_56_bits_too() -> None:
    address = "64:ff9b:1:a9:fe:a9fe::"  # 169.254.169.254 after a /56 prefix, the u octet skipped
    readings = netguard.possible_ipv4(V6(address))
    assert readings[1] == V4("169.254.169.254")
    assert refusal(address, allow_private=True) == (
        f"refused to connect to {address} (which carries 169.254.169.254): {METADATA}"
    )


def with_u_octet(address: str, u: int) -> ipaddress.IPv6Address:
    """The address with its bits 64-71 (RFC 6052's u octet, never part of the IPv4 address) set to u."""
    value = int(V6(address)) & ~(0xFF << 56)
    return V6(value | (u << 56))


@pytest.mark.parametrize(
    "address",
    ["64:ff9b:1:a9fe:a9:fe00::", "64:ff9b:1:a9:fe:a9fe::", "64:ff9b:1:0:a9:fea9:fe00:0"],
    ids=["/48", "/56", "/64"],
)
def test_the_u_octet_is_no_part_of_any_reading(address: str) -> None:
    readings = netguard.possible_ipv4(V6(address))
    assert V4("169.254.169.254") in readings
    for u in (0x01, 0x80, 0xFF):
        assert netguard.possible_ipv4(with_u_octet(address, u)) == readings


def test_every_ipv4_compatible_address_past_1_carries_its_ipv4() -> None:
    assert netguard.embedded_ipv4(V6("::2")) == (V4("0.0.0.2"),)
    assert refusal("::2", allow_private=True) == (
        "refused to connect to ::2 (which carries 0.0.0.2): unspecified, multicast or broadcast address"
    )
    assert netguard.embedded_ipv4(V6("::1")) == ()
    assert netguard.embedded_ipv4(V6("::")) == ()


def test_an_ipv4_mapped_address_carries_its_ipv4() -> None:
    assert netguard.embedded_ipv4(V6("::ffff:a9fe:a9fe")) == (V4("169.254.169.254"),)


def test_a_scoped_address_is_named_without_its_zone() -> None:
    assert refusal("fe80::1%eth0", allow_private=True) == f"refused to connect to fe80::1: {METADATA}"


def test_every_metadata_host_name_is_refused_and_nothing_more() -> None:
    assert {
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "instance-data",
        "instance-data.ec2.internal",
    } <= METADATA_HOSTS
    for host in sorted(METADATA_HOSTS):
        for spelling in (host, host.upper(), host + "."):
            with pytest.raises(BlockedAddressError, match=r"cloud metadata host name$"):
                check_host(spelling)
    for host in ("metadataX", "metadata.google", "xmetadata", "instance-data.ec2"):
        check_host(host)


# --- connections: GuardMixin ------------------------------------------------------------------------------


class FakeSocket:
    def __init__(self, peer: str) -> None:
        self.peer = peer
        self.closed = False

    def getpeername(self) -> tuple[str, int]:
        return (self.peer, 443)

    def close(self) -> None:
        self.closed = True


class Connects:
    """Stands for urllib3's HTTPConnection: `_new_conn` answers the socket it "connected", to `peer`."""

    def __init__(self, host: str, peer: str) -> None:
        self._dns_host = host
        self.port = 443
        self.sock = FakeSocket(peer)
        self.connected = False

    def _new_conn(self) -> Any:
        self.connected = True
        return self.sock


class Guarded(GuardMixin, Connects):
    pass


class Lenient(GuardMixin, Connects):
    allow_private = True


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Host name -> the one address DNS answers for it (when the guard looks, before connecting)."""
    answers: dict[str, str] = {}

    def resolve(host: str, port: int, *args: Any, **kwargs: Any) -> list[Any]:
        address = answers.get(host, host)
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        return [(family, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    return answers


def test_a_name_is_checked_before_any_connection(dns: dict[str, str]) -> None:
    dns["inside.example"] = "10.0.0.5"
    conn = Guarded("inside.example", peer="8.8.8.8")
    with pytest.raises(BlockedAddressError, match=r"^refused to connect to 10\.0\.0\.5: private"):
        conn._new_conn()
    assert not conn.connected


def test_the_connected_peer_is_checked_again_dns_rebinding(dns: dict[str, str]) -> None:
    """The name said public when checked; the connection reached a private address: refused, closed."""
    dns["rebind.example"] = "8.8.8.8"
    conn = Guarded("rebind.example", peer="127.0.0.1")
    with pytest.raises(BlockedAddressError, match=r"^refused to connect to 127\.0\.0\.1: private"):
        conn._new_conn()
    assert conn.connected
    assert conn.sock.closed
    metadata = Lenient("rebind.example", peer="169.254.169.254")
    with pytest.raises(BlockedAddressError, match=f"^refused to connect to 169.254.169.254: {METADATA}$"):
        metadata._new_conn()
    assert metadata.sock.closed


def test_an_allowed_peer_gets_its_socket(dns: dict[str, str]) -> None:
    dns["idp.example"] = "8.8.8.8"
    conn = Guarded("idp.example", peer="8.8.4.4")
    connected: Any = conn._new_conn()
    assert connected is conn.sock
    assert not conn.sock.closed
    private = Lenient("idp.example", peer="10.0.0.5")
    connected = private._new_conn()
    assert connected is private.sock


def test_the_guard_refuses_private_peers_unless_told_otherwise(dns: dict[str, str]) -> None:
    assert GuardMixin.allow_private is False
    with pytest.raises(BlockedAddressError):
        Guarded("127.0.0.1", peer="127.0.0.1")._new_conn()


# --- connections: GuardedAdapter --------------------------------------------------------------------------


@pytest.mark.parametrize("allow_private", [False, True])
def test_every_connection_class_of_the_adapter_is_guarded(allow_private: bool) -> None:
    pools = GuardedAdapter(allow_private=allow_private).poolmanager.pool_classes_by_scheme
    assert sorted(pools) == ["http", "https"]
    for scheme, base in (("http", HTTPConnection), ("https", HTTPSConnection)):
        connection = pools[scheme].ConnectionCls
        assert issubclass(connection, GuardMixin)
        assert issubclass(connection, base)
        assert connection.allow_private is allow_private


class Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "5")
        self.end_headers()
        self.wfile.write(b"hello")

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def local_url() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hello)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_a_session_with_the_adapter_reaches_what_it_may_only(local_url: str) -> None:
    strict, lenient = requests.Session(), requests.Session()
    strict.mount("http://", GuardedAdapter(allow_private=False))
    lenient.mount("http://", GuardedAdapter(allow_private=True))
    assert lenient.get(local_url, timeout=10).text == "hello"
    with pytest.raises(BlockedAddressError, match=r"refused to connect to 127\.0\.0\.1: private"):
        strict.get(local_url, timeout=10)
