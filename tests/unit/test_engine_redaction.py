"""Credentials in a jwkUrl never leave the request: status, policy.json, metrics labels, logs."""

from __future__ import annotations

import logging

import pytest

from jwks_operator.errors import FetchError
from tests.unit.fakes import NS, Rig, jwk

URL = "https://alice:pw-canary@idp.example/jwks?token=tok-canary&x=1"
SPEC = {"jwkUrl": URL, "audiences": ["api"]}
CANARIES = ("pw-canary", "tok-canary", "alice")

pytestmark = pytest.mark.asyncio


def leaks(text: str) -> list[str]:
    return [c for c in CANARIES if c in text]


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
