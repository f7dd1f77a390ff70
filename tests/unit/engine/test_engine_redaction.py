"""Credentials in a jwkUrl never leave the request: status, policy.json, metrics labels, logs."""

from __future__ import annotations

import logging

import pytest

from jwks_operator.engine.url_source import UrlSource
from jwks_operator.model.errors import FetchError
from tests.unit.fakes import NS, Rig, jwk

URL = "https://alice:pw-canary@idp.example/jwks?token=tok-canary&x=1"
SPEC = {"jwkUrl": URL, "audiences": ["api"]}
CANARIES = ("pw-canary", "tok-canary", "alice")


def leaks(text: str) -> list[str]:
    return [c for c in CANARIES if c in text]


@pytest.mark.asyncio
async def test_credentials_reach_no_status_policy_metric_or_log(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    rig = Rig()
    provider = rig.serve(URL, jwk(1))
    await rig.apply("a", SPEC)
    provider.error = FetchError(
        f"connection failed: Max retries exceeded with url: /jwks?token=tok-canary ({URL})"
    )
    await rig.advance(300)
    status = rig.status("a")
    assert status["lastError"].startswith("connection failed")
    assert leaks(str(status)) == [], status
    assert leaks(str(rig.output("a-jwks"))) == [], "policy.json"
    samples = [s for m in rig.engine.metrics.registry.collect() for s in m.samples if "url" in s.labels]
    assert samples, "the URL's series exist"
    assert leaks(str([s.labels for s in samples])) == []
    assert leaks(caplog.text) == [], caplog.text
    assert rig.due(("url", URL)) is not None, "the request itself still uses the real URL"
    assert rig.fetcher.calls[0][0] == URL
    await rig.engine.observe("DELETED", rig.body("a", SPEC))
    left = [s for m in rig.engine.metrics.registry.collect() for s in m.samples if "url" in s.labels]
    assert left == [], "forgotten under the same redacted label"
    assert NS == "ns"


def test_urls_differing_only_in_hidden_values_keep_separate_series() -> None:
    signin = UrlSource("k1", "https://b2c.example/keys?p=B2C_1_signin", allow_http=False)
    admin = UrlSource("k2", "https://b2c.example/keys?p=B2C_1_admin", allow_http=False)
    assert signin.label != admin.label
    assert "B2C_1" not in signin.label + admin.label
    plain = UrlSource("k3", "https://idp.example/keys", allow_http=False)
    assert plain.label == "https://idp.example/keys", "nothing hidden: the URL itself"
