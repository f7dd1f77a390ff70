"""Credentials in a jwkUrl never leave the request: status, policy.json, metrics labels, logs. What a spec
author wrote (an issuer) is echoed escaped: no control character reaches a status, an Event or a log."""

from __future__ import annotations

import logging

import pytest

from jwks_operator.engine.url_source import UrlSource
from jwks_operator.model.errors import FetchError
from jwks_operator.publish.gateways import ObjectRef
from jwks_operator.runtime.logs import JsonFormatter, TextFormatter
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


# An issuer that would start a forged log line, clear a terminal and break a line in a status viewer.
ISSUER = "https://idp.example/\n2026-01-01 12:00:00 INFO forged line\x1b[2J\u2028\x00"
ESCAPED = "https://idp.example/\\n2026-01-01 12:00:00 INFO forged line\\x1b[2J\\u2028\\x00"
RA = ObjectRef("security.istio.io", "v1", "requestauthentications", "RequestAuthentication", NS, "api")


def controls(text: str) -> list[str]:
    return [c for c in text if not c.isprintable()]


@pytest.mark.asyncio
async def test_an_issuer_with_control_characters_is_escaped_wherever_it_is_echoed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The spec accepts any issuer (a token's iss is compared byte for byte); an OutputConflict that names
    it reaches the output's condition, Degraded, a Warning Event and the log, each escaped."""
    caplog.set_level(logging.DEBUG)
    rig = Rig()
    rig.serve("https://idp.example/jwks", jwk(1))
    rig.kube.objects[RA] = {  # a user's RequestAuthentication with its own rule for that issuer
        "apiVersion": "security.istio.io/v1",
        "kind": "RequestAuthentication",
        "metadata": {
            "name": "api",
            "namespace": NS,
            "resourceVersion": "3",
            "annotations": {"jwks.dev/allow-jwtsecrets": "a"},
        },
        "spec": {"jwtRules": [{"issuer": ISSUER, "jwksUri": "https://idp.example/jwks"}]},
    }
    spec = {"jwkUrl": "https://idp.example/jwks", "audiences": ["api"], "issuers": [ISSUER]}
    await rig.apply("a", {**spec, "outputs": [{"istio": {"name": "api"}}]})

    status = rig.status("a")
    ready = status["outputs"][0]["conditions"][0]
    assert ready["reason"] == "OutputConflict"
    degraded = next(c for c in status["conditions"] if c["type"] == "Degraded")
    events = [message for _, reason, message in rig.kube.events if reason == "OutputFailed"]
    assert events
    for text in (ready["message"], degraded["message"], *events):
        assert ESCAPED in text, text
        assert controls(text) == [], text
    logged = [r for r in caplog.records if ISSUER in r.getMessage()]
    assert logged, "the conflict is logged"
    for record in logged:
        line = TextFormatter().format(record)
        assert ESCAPED in line
        assert controls(line) == [], line
        assert controls(JsonFormatter().format(record)) == []
    assert rig.kube.objects[RA]["spec"]["jwtRules"][0]["issuer"] == ISSUER, "the data itself is kept as is"
