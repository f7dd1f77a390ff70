"""The SSRF guard's address policy: one row per address, with the verdict it must get."""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

import pytest

from jwks_operator.fetch import netguard
from jwks_operator.fetch.netguard import BlockedAddressError, check_address, check_host, check_target

PUBLIC, PRIVATE, BLOCKED = "public", "private", "blocked"

ADDRESSES: list[tuple[str, str]] = [
    # plain IPv4
    ("8.8.8.8", PUBLIC),
    ("1.1.1.1", PUBLIC),
    ("168.63.129.17", PUBLIC),
    ("198.17.255.255", PUBLIC),
    ("198.20.0.1", PUBLIC),
    ("100.128.0.1", PUBLIC),
    ("223.255.255.255", PUBLIC),
    ("169.254.169.254", BLOCKED),  # AWS, GCP, Azure, OpenStack metadata
    ("169.254.1.1", BLOCKED),
    ("168.63.129.16", BLOCKED),  # Azure WireServer
    ("100.100.100.200", BLOCKED),  # Alibaba Cloud metadata
    ("0.0.0.0", BLOCKED),
    ("0.1.2.3", BLOCKED),
    ("224.0.0.1", BLOCKED),
    ("239.255.255.250", BLOCKED),
    ("255.255.255.255", BLOCKED),
    ("10.1.2.3", PRIVATE),
    ("172.16.0.1", PRIVATE),
    ("172.31.255.255", PRIVATE),
    ("192.168.1.1", PRIVATE),
    ("127.0.0.1", PRIVATE),
    ("127.255.255.254", PRIVATE),
    ("100.64.0.1", PRIVATE),
    ("198.18.0.1", PRIVATE),  # benchmarking
    ("198.19.255.254", PRIVATE),
    ("240.0.0.1", PRIVATE),  # class E
    ("254.255.255.255", PRIVATE),
    ("192.0.0.8", PRIVATE),
    ("192.0.2.1", PRIVATE),
    ("198.51.100.7", PRIVATE),
    ("203.0.113.9", PRIVATE),
    # plain IPv6
    ("2001:4860:4860::8888", PUBLIC),
    ("2606:4700:4700::1111", PUBLIC),
    ("fe80::1", BLOCKED),
    ("fe80::1%eth0", BLOCKED),
    ("fd00:ec2::254", BLOCKED),  # AWS IMDS over IPv6
    ("::", BLOCKED),
    ("ff02::1", BLOCKED),
    ("::1", PRIVATE),
    ("fc00::1", PRIVATE),
    ("fd12:3456::1", PRIVATE),
    ("fec0::1", PRIVATE),
    ("2001:db8::1", PRIVATE),
    ("100::1", PRIVATE),
    # IPv4-mapped ::ffff:a.b.c.d
    ("::ffff:8.8.8.8", PUBLIC),
    ("::ffff:169.254.169.254", BLOCKED),
    ("::ffff:a9fe:a9fe", BLOCKED),
    ("::ffff:10.0.0.5", PRIVATE),
    # IPv4-translated ::ffff:0:a.b.c.d (SIIT)
    ("::ffff:0:808:808", PUBLIC),
    ("::ffff:0:a9fe:a9fe", BLOCKED),
    ("::ffff:0:a00:5", PRIVATE),
    # IPv4-compatible ::a.b.c.d (deprecated): never public
    ("::a9fe:a9fe", BLOCKED),
    ("::169.254.169.254", BLOCKED),
    ("::a00:5", PRIVATE),
    ("::808:808", PRIVATE),
    # NAT64, well-known prefix: what an IPv6-only cluster with DNS64 connects to
    ("64:ff9b::808:808", PUBLIC),
    ("64:ff9b::8.8.8.8", PUBLIC),
    ("64:ff9b::a9fe:a9fe", BLOCKED),
    ("64:ff9b::a83f:8110", BLOCKED),  # 168.63.129.16
    ("64:ff9b::7f00:1", PRIVATE),
    ("64:ff9b::a00:5", PRIVATE),
    # NAT64, local-use prefix 64:ff9b:1::/48 (RFC 8215), IPv4 at /96, /64 and /48
    ("64:ff9b:1::808:808", PRIVATE),
    ("64:ff9b:1::a9fe:a9fe", BLOCKED),
    ("64:ff9b:1:0:a9:fea9:fe00:0", BLOCKED),
    ("64:ff9b:1:a9fe:a9:fe00::", BLOCKED),
    # 6to4 2002:a.b.c.d::/48
    ("2002:808:808::1", PUBLIC),
    ("2002:a9fe:a9fe::", BLOCKED),
    ("2002:a9fe:a9fe:1::1", BLOCKED),
    ("2002:a00:5::1", PRIVATE),
    ("2002:7f00:1::", PRIVATE),
    # Teredo 2001:0:<server>:<flags>:<port>:<client inverted>
    ("2001:0:808:808:0:0:fefe:fefe", PUBLIC),  # server 8.8.8.8, client 1.1.1.1
    ("2001:0:808:808:0:0:5601:5601", BLOCKED),  # client 169.254.169.254
    ("2001:0:a9fe:a9fe:0:0:fefe:fefe", BLOCKED),  # server 169.254.169.254
    ("2001:0:808:808:0:0:f5ff:fffa", PRIVATE),  # client 10.0.0.5
]


@pytest.mark.parametrize(("address", "verdict"), ADDRESSES, ids=[a for a, _ in ADDRESSES])
def test_address_policy(address: str, verdict: str) -> None:
    if verdict == PUBLIC:
        check_address(address, allow_private=False)
        check_address(address, allow_private=True)
        return
    with pytest.raises(BlockedAddressError, match="refused to connect to") as strict:
        check_address(address, allow_private=False)
    if verdict == PRIVATE:
        assert "--allow-private-networks" in str(strict.value)
        check_address(address, allow_private=True)
    else:
        assert "--allow-private-networks" not in str(strict.value)
        with pytest.raises(BlockedAddressError) as lenient:
            check_address(address, allow_private=True)
        assert str(lenient.value) == str(strict.value)


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("169.254.169.254", "refused to connect to 169.254.169.254: link-local or cloud metadata address"),
        ("::ffff:169.254.169.254", "refused to connect to 169.254.169.254: link-local or cloud metadata"),
        (
            "64:ff9b::a9fe:a9fe",
            "refused to connect to 64:ff9b::a9fe:a9fe (which carries 169.254.169.254): link-local or cloud",
        ),
        ("2002:a9fe:a9fe::", "2002:a9fe:a9fe:: (which carries 169.254.169.254): link-local"),
        ("::ffff:0:a9fe:a9fe", "(which carries 169.254.169.254): link-local"),
        ("168.63.129.16", "168.63.129.16: link-local or cloud metadata address"),
        ("0.0.0.0", "0.0.0.0: unspecified, multicast or broadcast address"),
        ("240.0.0.1", "240.0.0.1: reserved (not publicly routed) address (the operator-wide"),
        ("127.0.0.1", "127.0.0.1: private or loopback address (the operator-wide"),
    ],
)
def test_refusals_name_the_address_and_why(address: str, message: str) -> None:
    with pytest.raises(BlockedAddressError) as info:
        check_address(address, allow_private=False)
    assert message in str(info.value)


def test_embedded_addresses() -> None:
    v6 = ipaddress.IPv6Address
    v4 = ipaddress.IPv4Address
    assert netguard.embedded_ipv4(v6("64:ff9b::a9fe:a9fe")) == (v4("169.254.169.254"),)
    assert netguard.embedded_ipv4(v6("2002:a9fe:a9fe::")) == (v4("169.254.169.254"),)
    assert netguard.embedded_ipv4(v6("2001:0:4136:e378:8000:63bf:3fff:fdd2")) == (  # RFC 4380's example
        v4("65.54.227.120"),
        v4("192.0.2.45"),
    )
    assert netguard.embedded_ipv4(v6("::1")) == ()
    assert netguard.embedded_ipv4(v6("2001:4860:4860::8888")) == ()
    assert v4("169.254.169.254") in netguard.possible_ipv4(v6("64:ff9b:1:a9fe:a9:fe00::"))


def test_metadata_host_names_are_refused_before_any_lookup(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_lookup(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("resolved")

    monkeypatch.setattr(socket, "getaddrinfo", no_lookup)
    for host in ("metadata.google.internal", "METADATA.google.internal.", "instance-data", "metadata.goog"):
        with pytest.raises(BlockedAddressError, match="metadata host name"):
            check_host(host)
        with pytest.raises(BlockedAddressError, match="metadata host name"):
            check_target(host, 443, allow_private=True)
    check_host("www.googleapis.com")


def test_a_name_is_refused_when_any_of_its_addresses_is(monkeypatch: pytest.MonkeyPatch) -> None:
    answers = {
        "public.example": ["8.8.8.8", "2001:4860:4860::8888", "8.8.8.8"],  # a resolver may repeat one
        "mixed.example": ["8.8.8.8", "64:ff9b::a9fe:a9fe"],
        "inside.example": ["8.8.8.8", "10.0.0.5"],
    }

    def resolve(host: str, port: int, *args: Any, **kwargs: Any) -> list[Any]:
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [
            (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
            for a in answers[host]
        ]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    # the vetted addresses, in the resolver's order, each once: the first is the one a proxy is asked for
    assert check_target("public.example", 443, allow_private=False) == ["8.8.8.8", "2001:4860:4860::8888"]
    with pytest.raises(BlockedAddressError, match=r"carries 169\.254\.169\.254"):
        check_target("mixed.example", 443, allow_private=True)
    with pytest.raises(BlockedAddressError, match=r"10\.0\.0\.5: private"):
        check_target("inside.example", 443, allow_private=False)
    assert check_target("inside.example", 443, allow_private=True) == ["8.8.8.8", "10.0.0.5"]
    with pytest.raises(OSError, match="not known"):
        check_target("nowhere.example", 443, allow_private=True)


def test_literal_addresses_in_any_notation_are_resolved_then_judged() -> None:
    for host in ("169.254.169.254", "2852039166", "0xa9.0xfe.0xa9.0xfe", "64:ff9b::a9fe:a9fe"):
        with pytest.raises(BlockedAddressError, match="link-local or cloud metadata"):
            check_target(host, 443, allow_private=True)
    with pytest.raises(BlockedAddressError, match="private or loopback"):
        check_target("localhost", 443, allow_private=False)
