"""Through a proxy, the fetcher asks for the address the guard vetted, never the name: a rebinding name
(public on the guard's lookup, a metadata or private address on the proxy's) cannot reach what the guard
refused. TLS still sends and verifies the name; plain http sends the name in the Host header."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest
import requests
import trustme

from jwks_operator.fetch.adapter import _pinned
from jwks_operator.fetch.fetcher import Fetcher, FetchSettings
from jwks_operator.model.errors import FetchError
from tests.harness.idp import PATH, JwksProvider
from tests.harness.proxy import LoopbackProxy
from tests.unit.fetch.test_fetch_hostile import PROXY_VARIABLES, RawServer, read_request

NAME = "rebind.test"
PUBLIC = "93.184.216.34"  # the first answer: a public address, which the guard lets through
METADATA = "169.254.169.254"  # every later answer: what the guard always refuses
SECRET = b'{"keys": [], "Code": "Success", "AccessKeyId": "metadata-canary"}'
QUICK = FetchSettings(read_timeout=2.0, deadline=5.0)


class RebindingResolver:
    """socket.getaddrinfo as a rebinding DNS name makes it: NAME answers PUBLIC on its first lookup and
    METADATA on every later one (whoever asks); other names resolve as usual."""

    def __init__(self, real: Callable[..., Any]) -> None:
        self.real = real
        self.lookups = 0

    def __call__(self, host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host != NAME:
            return self.real(host, port, *args, **kwargs)
        self.lookups += 1
        address = PUBLIC if self.lookups == 1 else METADATA
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, int(port or 0)))]


@pytest.fixture
def resolver(monkeypatch: pytest.MonkeyPatch) -> RebindingResolver:
    stub = RebindingResolver(socket.getaddrinfo)
    monkeypatch.setattr(socket, "getaddrinfo", stub)
    return stub


@pytest.fixture
def metadata() -> Iterator[RawServer]:
    """The metadata service (on loopback): answers anything with its credentials."""

    def answer(conn: socket.socket, gone: Callable[[], bool]) -> None:
        read_request(conn)
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(SECRET), SECRET)
        )

    with RawServer(answer) as server:
        yield server


@pytest.fixture(autouse=True)
def no_proxy_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


def port_of(provider: JwksProvider) -> int:
    return int(provider.base_url.rsplit(":", 1)[1])


def test_https_through_a_proxy_connects_to_the_vetted_address(
    resolver: RebindingResolver, metadata: RawServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: `CONNECT rebind.test:443`, which the proxy resolved again, to the metadata address."""
    ca = trustme.CA()
    with JwksProvider(ca=ca, hosts=(NAME,)) as provider:
        routes = {(PUBLIC, 443): port_of(provider), (METADATA, 443): metadata.port}
        with LoopbackProxy(routes) as proxy:
            monkeypatch.setenv("HTTPS_PROXY", proxy.url)
            result = Fetcher(QUICK).fetch(f"https://{NAME}{PATH}", ca_bundle=ca.cert_pem.bytes().decode())
        assert provider.logged(1).headers["Host"] == NAME, "the request inside the tunnel names the host"
    assert result.status == 200
    assert proxy.lines == [f"CONNECT {PUBLIC}:443"]
    assert proxy.reached == [(PUBLIC, 443)]
    assert metadata.held == [], "the metadata address was never reached"
    assert resolver.lookups == 1, "only the guard looked the name up"


def test_plain_http_through_a_proxy_names_the_vetted_address_and_the_host_header_the_name(
    resolver: RebindingResolver, metadata: RawServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: `GET http://rebind.test/latest/meta-data/` came back with the metadata service's answer."""
    with JwksProvider() as provider:
        routes = {(PUBLIC, 80): port_of(provider), (METADATA, 80): metadata.port}
        with LoopbackProxy(routes) as proxy:
            monkeypatch.setenv("HTTP_PROXY", proxy.url)
            result = Fetcher(replace(QUICK, allow_http=True)).fetch(f"http://{NAME}{PATH}")
        assert [(s.line, s.host) for s in proxy.seen] == [(f"GET http://{PUBLIC}{PATH}", NAME)]
        assert SECRET not in (result.body or b"")
        assert provider.logged(1).headers["Host"] == NAME
    assert result.status == 200
    assert metadata.held == []
    assert resolver.lookups == 1


def test_tls_through_a_proxy_still_verifies_the_name_not_the_address(
    resolver: RebindingResolver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The vetted address carries the connection, the name its trust: a certificate for the address (or
    another name) is refused."""
    ca = trustme.CA()
    for hosts in ((PUBLIC,), ("other.test",)):
        resolver.lookups = 0
        with (
            JwksProvider(ca=ca, hosts=hosts) as provider,
            LoopbackProxy({(PUBLIC, 443): port_of(provider)}) as proxy,
        ):
            monkeypatch.setenv("HTTPS_PROXY", proxy.url)
            with pytest.raises(FetchError, match=r"TLS error: .*(match|mismatch)"):
                Fetcher(QUICK).fetch(f"https://{NAME}{PATH}", ca_bundle=ca.cert_pem.bytes().decode())
            assert proxy.lines == [f"CONNECT {PUBLIC}:443"]


def test_a_name_the_proxy_is_bypassed_for_is_connected_to_directly_and_checked_as_it_connects(
    resolver: RebindingResolver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """NO_PROXY still applies to the name; the direct connection's own lookup is checked again."""
    with LoopbackProxy() as proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        monkeypatch.setenv("NO_PROXY", NAME)
        with pytest.raises(FetchError, match=f"refused to connect to {METADATA}"):
            Fetcher(QUICK).fetch(f"https://{NAME}{PATH}")
    assert proxy.lines == []


def test_a_pinned_request_keeps_all_but_its_host_which_moves_to_the_host_header() -> None:
    prepared = requests.Request("GET", "https://alice:pw@IdP.Example:8443/a/b?c=d#frag").prepare()
    pinned, name = _pinned(prepared, "2001:db8::7")
    assert pinned.url == "https://[2001:db8::7]:8443/a/b?c=d"
    assert pinned.headers["Host"] == "idp.example:8443"
    assert name == "idp.example"
    assert pinned.headers["Authorization"] == prepared.headers["Authorization"], "credentials stay"
    assert prepared.url == "https://alice:pw@idp.example:8443/a/b?c=d#frag", "the original is left as it is"
    assert "Host" not in prepared.headers
    plain, _ = _pinned(requests.Request("GET", "http://idp.example/jwks").prepare(), "203.0.113.7")
    assert (plain.url, plain.headers["Host"]) == ("http://203.0.113.7/jwks", "idp.example")
