"""The HTTP adapter against a real provider on loopback (TLS from trustme)."""

from __future__ import annotations

import json
import os
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from jwks_operator.fetch.fetcher import Fetcher, FetchSettings
from jwks_operator.fetch.trust import CONTEXTS
from jwks_operator.model.errors import FetchError
from tests.harness.idp import JwksProvider


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def trusted(ca: trustme.CA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))


@pytest.fixture
def provider(ca: trustme.CA) -> Iterator[JwksProvider]:
    with JwksProvider(ca=ca, max_age=300) as p:
        yield p


def fetcher(**settings: object) -> Fetcher:
    return Fetcher(FetchSettings(allow_private_networks=True, **settings))  # type: ignore[arg-type]


@pytest.mark.usefixtures("trusted")
def test_fetch_and_revalidate(provider: JwksProvider) -> None:
    first = fetcher().fetch(provider.url)
    assert first.status == 200
    assert first.body is not None
    assert json.loads(first.body) == provider.document()
    assert first.headers["cache-control"] == "public, max-age=300, must-revalidate, no-transform"
    again = fetcher().fetch(
        provider.url, etag=first.headers["etag"], last_modified=first.headers["last-modified"]
    )
    assert (again.status, again.body) == (304, None)
    assert provider.logged(2).headers["If-None-Match"] == first.headers["etag"]
    provider.rotate()
    changed = fetcher().fetch(provider.url, etag=first.headers["etag"])
    assert changed.status == 200
    assert changed.headers["etag"] != first.headers["etag"]


@pytest.mark.usefixtures("trusted")
def test_a_kept_alive_connection_is_reused_after_200s_and_304s(ca: trustme.CA) -> None:
    """Against a provider that keeps connections alive (as real ones do), one thread's fetches share one
    connection, one TLS handshake: revalidations (304, no body) too, not only 200s read to their end."""
    with JwksProvider(ca=ca, max_age=300, keep_alive=True) as provider:
        fetch = fetcher()
        first = fetch.fetch(provider.url)
        statuses = [first.status]
        for _ in range(3):
            statuses.append(fetch.fetch(provider.url, etag=first.headers["etag"]).status)
        provider.rotate()
        statuses.append(fetch.fetch(provider.url, etag=first.headers["etag"]).status)
        statuses.append(fetch.fetch(provider.url + "?tenant=2").status)
        assert statuses == [200, 304, 304, 304, 200, 200]
        assert (provider.count(), provider.connections) == (6, 1)


def test_a_trust_bundle_is_parsed_once_per_file_not_per_connection(
    provider: JwksProvider, ca: trustme.CA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = tmp_path / "trust.pem"
    bundle.write_bytes(trustme.CA().cert_pem.bytes() + ca.cert_pem.bytes())
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    parsed: list[object] = []
    original = ssl.SSLContext.load_verify_locations

    def counting(self: ssl.SSLContext, *args: object, **kwargs: object) -> None:
        parsed.append(kwargs.get("cafile") or args[0])
        original(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ssl.SSLContext, "load_verify_locations", counting)
    shared = fetcher()
    for _ in range(3):  # the provider closes each connection: three TLS handshakes
        assert shared.fetch(provider.url).status == 200
    assert fetcher().fetch(provider.url).status == 200  # another session (thread) shares the context
    assert parsed == [str(bundle)]
    bundle.write_bytes(trustme.CA().cert_pem.bytes())  # rotated: our CA is gone
    os.utime(bundle, ns=(0, 1))
    with pytest.raises(FetchError, match="TLS error"):
        shared.fetch(provider.url)
    assert parsed == [str(bundle)] * 2
    assert len([k for k in CONTEXTS.cached() if k[:2] == ("file", str(bundle))]) == 1


def test_untrusted_certificate_is_refused(provider: JwksProvider) -> None:
    with pytest.raises(FetchError, match="TLS error"):
        fetcher().fetch(provider.url)


@pytest.mark.usefixtures("trusted")
@pytest.mark.parametrize(
    ("status", "retry_after", "message", "hint"),
    [
        (503, "7", "HTTP 503 Service Unavailable", 7.0),
        (429, None, "HTTP 429 Too Many Requests", None),
        (404, None, "HTTP 404 Not Found", None),
    ],
)
def test_error_statuses(
    provider: JwksProvider, status: int, retry_after: str | None, message: str, hint: float | None
) -> None:
    provider.fail(status, retry_after=retry_after)
    with pytest.raises(FetchError, match=message) as info:
        fetcher().fetch(provider.url)
    assert info.value.retry_after == hint


@pytest.mark.usefixtures("trusted")
def test_size_cap_and_deadline(provider: JwksProvider) -> None:
    provider.serve_raw(b" " * 5000)
    with pytest.raises(FetchError, match="larger than 4096 bytes"):
        fetcher(max_bytes=4096).fetch(provider.url)
    provider.recover()
    provider.delay(1.5)
    with pytest.raises(FetchError, match="read timeout"):
        fetcher(read_timeout=0.5).fetch(provider.url)
    provider.recover()
    provider.drip(200)  # bytes per second: every read succeeds, the whole takes far too long
    with pytest.raises(FetchError, match="took longer than 1s"):
        fetcher(deadline=1.0).fetch(provider.url)


@pytest.mark.usefixtures("trusted")
def test_redirects(provider: JwksProvider, ca: trustme.CA) -> None:
    with JwksProvider() as plain:
        provider.redirect(plain.url)
        with pytest.raises(FetchError, match="refused redirect from https to http"):
            fetcher().fetch(provider.url)
    provider.redirect(provider.url)
    with pytest.raises(FetchError, match="more than 5 redirects"):
        fetcher().fetch(provider.url)
    with JwksProvider(ca=ca) as target:
        provider.redirect(target.url, 301)
        assert fetcher().fetch(provider.url).status == 200


def test_http_needs_opt_in() -> None:
    with JwksProvider() as plain:
        with pytest.raises(FetchError, match="only https is allowed"):
            fetcher().fetch(plain.url)
        assert fetcher().fetch(plain.url, allow_http=True).status == 200


def test_loopback_is_refused_unless_private_networks_are_allowed() -> None:
    with JwksProvider() as plain:
        strict = Fetcher(FetchSettings(allow_http=True))
        with pytest.raises(FetchError, match=r"refused to connect to 127\.0\.0\.1: private or loopback"):
            strict.fetch(plain.url)
        assert plain.count() == 0


def test_connection_refused_is_reported() -> None:
    with pytest.raises(FetchError, match="connection failed"):
        fetcher().fetch("https://127.0.0.1:9/jwks")
