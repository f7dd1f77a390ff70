"""The engine in process: refresh scheduling, shared fetches, backoff, staleness and restarts.

A FakeKube, a FakeFetcher and a FakeClock stand in for the cluster, the providers and time
(tests/unit/fakes.py); each test runs in milliseconds.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from jwks_operator.model.errors import ApiCallError, FetchError
from jwks_operator.model.freshness import RefreshPolicy
from jwks_operator.model.names import REFRESH_ANNOTATION
from tests.unit.fakes import NS, T0, Rig, at, healthy, jwk

URL = "https://idp.example/jwks"
SPEC = {"jwkUrl": URL, "audiences": ["api"]}

pytestmark = pytest.mark.asyncio


async def test_next_fetch_is_due_when_the_cache_headers_say_and_revalidates() -> None:
    rig = Rig()
    provider = rig.serve(URL, jwk(1))
    await rig.apply("a", SPEC)
    assert rig.fetcher.calls == [(URL, None)]
    assert rig.kids("a-jwks") == ["k1"]
    assert rig.due(("url", URL)) == 300
    assert rig.status("a")["refresh"] == {
        "reason": "ProviderCache",
        "message": "refreshed when the provider's max-age says (within 1m and 24h)",
    }
    await rig.advance(299)
    assert len(rig.fetcher.calls) == 1
    await rig.advance(1)
    assert rig.fetcher.calls[1] == (URL, provider.etag)  # conditional: a 304
    assert len(rig.kube.called("patch_status")) == 1, "a revalidation that changed nothing writes nothing"
    assert rig.kube.writes() == [("publish", "ConfigMap", "a-jwks")]
    assert rig.due(("url", URL)) == 300


@pytest.mark.parametrize(
    ("headers", "refresh", "due", "basis"),
    [
        (
            {"cache-control": "max-age=5"},
            None,
            60,
            "MinInterval: the provider's max-age 5s is below minInterval: refreshed every 1m",
        ),
        (
            {"cache-control": "max-age=9999999"},
            None,
            86400,
            "MaxInterval: the provider's max-age 9999999s is above maxInterval: refreshed every 24h",
        ),
        (
            {"cache-control": "max-age=600", "age": "100"},
            None,
            500,
            "ProviderCache: refreshed when the provider's max-age says (within 1m and 24h)",
        ),
        (
            {"cache-control": "no-cache"},
            None,
            60,
            "NoCache: the provider sends Cache-Control no-cache: revalidated every 1m",
        ),
        ({}, None, 3600, "Fallback: the provider sends no caching headers: fallbackInterval, every 1h"),
        (
            {},
            {"fallbackInterval": "Never"},
            None,
            "Never: the provider sends no caching headers, fallbackInterval is Never: fetched once",
        ),
        (
            {"cache-control": "max-age=5"},
            {"minInterval": "2m"},
            120,
            "MinInterval: the provider's max-age 5s is below minInterval: refreshed every 2m",
        ),
        (
            {"cache-control": "max-age=9999"},
            {"maxInterval": "15m"},
            900,
            "MaxInterval: the provider's max-age 9999s is above maxInterval: refreshed every 15m",
        ),
    ],
)
async def test_due_time_is_clamped_to_the_policy_and_the_status_says_why(
    headers: dict[str, str], refresh: dict[str, str] | None, due: float | None, basis: str
) -> None:
    rig = Rig()
    rig.serve(URL, jwk(1), headers=headers)
    await rig.apply("a", {**SPEC, "refresh": refresh} if refresh else SPEC)
    assert rig.due(("url", URL)) == due
    stated = rig.status("a")["refresh"]
    assert f"{stated['reason']}: {stated['message']}" == basis
    assert "nextRefreshTime" not in rig.status("a"), "a moving time would need a write per period"


async def test_operator_wide_policy_bounds_the_interval() -> None:
    rig = Rig(policy=RefreshPolicy(min_interval=10, max_interval=100, fallback_interval=50))
    rig.serve(URL, jwk(1), headers={"cache-control": "max-age=1"})
    await rig.apply("a", SPEC)
    assert rig.due(("url", URL)) == 10


async def test_subscribers_share_one_fetch_on_the_soonest_policy() -> None:
    rig = Rig()
    provider = rig.serve(URL, jwk(1), headers={"cache-control": "max-age=5"})
    for name in ("a", "b", "c"):  # listed together at startup: all three reconcile at once
        spec = {**SPEC, "refresh": {"minInterval": "2m"}} if name != "b" else SPEC
        await rig.engine.observe(None, rig.body(name, spec))
    await rig.settle()
    assert rig.fetcher.calls == [(URL, None)]
    assert [rig.kids(f"{n}-jwks") for n in "abc"] == [["k1"]] * 3
    assert rig.due(("url", URL)) == 60, "b's minInterval (60s) is the soonest"

    etag, provider.keys = provider.etag, [jwk(2)]  # rotation: one fetch, then every subscriber is updated
    await rig.advance(60)
    assert rig.fetcher.calls == [(URL, None), (URL, etag)]
    assert [rig.kids(f"{n}-jwks") for n in "abc"] == [["k2"]] * 3
    events = sorted(e[1:] for e in rig.kube.called("event"))
    assert events == [(n, "Normal", "Published") for n in "abc"], "a key change is an event on each"


async def test_a_later_subscriber_reads_the_fetched_document() -> None:
    rig = Rig()
    rig.serve(URL, jwk(1))
    await rig.apply("a", SPEC)
    await rig.advance(100)
    await rig.apply("b", SPEC)
    assert len(rig.fetcher.calls) == 1
    assert rig.kids("b-jwks") == ["k1"]
    assert rig.status("b")["lastFetchTime"] == at(0)
    await rig.engine.observe("DELETED", rig.body("a", SPEC))
    await rig.engine.observe("DELETED", rig.body("b", SPEC))
    assert rig.due(("url", URL)) is None, "a URL nobody reads is not fetched again"


async def test_failures_back_off_exponentially_and_honour_retry_after() -> None:
    rig = Rig()
    provider = rig.serve(URL, jwk(1))
    await rig.apply("a", SPEC)
    provider.error = FetchError("HTTP 503")
    delays = []
    for _ in range(4):
        await rig.advance(rig.due(("url", URL)) or 0)
        delays.append(rig.due(("url", URL)))
    assert delays == [5, 10, 20, 40]
    assert rig.status("a")["consecutiveFailures"] == 4
    assert rig.condition("a") == ("True", "KeysPublished"), "the last keys stay published"
    assert rig.condition("a", "Degraded") == ("True", "FetchFailed")
    assert rig.kids("a-jwks") == ["k1"]
    stale_at = (T0 + timedelta(seconds=300 + 86400) - rig.clock.now()).total_seconds()
    assert rig.due(("obj", (NS, "a"))) == pytest.approx(stale_at + 0.01), "only the staleAfter check"

    provider.error = FetchError("HTTP 429", retry_after=900)
    await rig.advance(40)
    assert rig.due(("url", URL)) == 900

    provider.error = None
    await rig.advance(900)
    assert rig.status("a")["consecutiveFailures"] == 0
    assert rig.condition("a", "Degraded") == ("False", "AsExpected")
    assert rig.due(("url", URL)) == 300


async def test_keys_past_stale_after_make_ready_false_but_stay_published() -> None:
    rig = Rig()
    provider = rig.serve(URL, jwk(1))  # due for refresh at 300
    await rig.apply("a", {**SPEC, "refresh": {"staleAfter": "10m"}})
    provider.error = FetchError("connection refused")
    await rig.advance_to(899.9)  # failing at 300, 305, 315, 335, 375, 455 and 615: not 10 minutes past 300
    assert rig.status("a")["consecutiveFailures"] == 7
    assert rig.condition("a") == ("True", "KeysPublished")
    assert rig.due(("url", URL)) == pytest.approx(35.1), "the next retry is at 935"
    await rig.advance_to(900.02)
    assert rig.condition("a") == ("False", "Stale"), "at the staleAfter deadline, not at the next retry"
    assert len(rig.fetcher.calls) == 8, "no fetch for it"
    assert rig.status("a")["lastError"].startswith(f"keys are stale: due for refresh at {at(300)}")
    assert rig.kids("a-jwks") == ["k1"]
    assert rig.kube.writes() == [("publish", "ConfigMap", "a-jwks")], "nothing withdrawn"
    assert ("Warning", "Stale") in {e[:2] for e in rig.kube.events}


async def test_restart_revalidates_healthy_objects_soon_and_spread() -> None:
    rig = Rig()
    urls = [f"https://idp{n}.example/jwks" for n in range(4)]
    for n, url in enumerate(urls):
        rig.serve(url, jwk(n))
        spec = {"jwkUrl": url, "audiences": ["api"]}
        await rig.engine.observe(None, rig.body(f"s{n}", spec, status=healthy(at(600), f"s{n}-jwks")))
    await rig.settle()
    assert rig.fetcher.calls == [], "a restart fetches nothing at once"
    assert rig.kube.calls == [], "and writes nothing"
    dues = [rig.due(("url", url)) for url in urls]
    assert all(d is not None and 0 <= d <= 5 for d in dues), dues
    assert len(set(dues)) == len(dues), "spread, not all at once"
    await rig.advance(5)
    assert sorted(url for url, _ in rig.fetcher.calls) == sorted(urls)


async def test_restart_fetches_an_overdue_url_once_for_all_its_subscribers() -> None:
    rig = Rig()
    rig.serve(URL, jwk(1))
    for name in ("a", "b"):
        body = rig.body(name, SPEC, status=healthy(at(-3600), f"{name}-jwks"))
        await rig.engine.observe(None, body)
    due = rig.due(("url", URL))
    assert due is not None
    assert 0 <= due <= 5
    await rig.advance(5)
    assert rig.fetcher.calls == [(URL, None)]
    assert rig.kids("a-jwks") == rig.kids("b-jwks") == ["k1"]


async def test_restart_reconciles_at_once_what_is_not_known_healthy() -> None:
    rig = Rig()
    rig.serve(URL, jwk(1))
    old_generation = healthy(at(600), "a-jwks", generation=1)
    await rig.apply("a", SPEC, generation=2, status=old_generation)
    assert rig.fetcher.calls == [(URL, None)]
    assert rig.status("a")["observedGeneration"] == 2


async def test_refresh_request_fetches_no_sooner_than_min_interval() -> None:
    rig = Rig()
    rig.serve(URL, jwk(1))
    await rig.apply("a", SPEC)
    await rig.advance(10)
    await rig.apply("a", SPEC, annotations={REFRESH_ANNOTATION: "now"})
    assert rig.due(("url", URL)) == 50
    await rig.advance(50)
    assert len(rig.fetcher.calls) == 2
    await rig.apply("a", SPEC, annotations={REFRESH_ANNOTATION: "now"})  # the same request: nothing
    assert rig.due(("url", URL)) == 300


async def test_a_failed_status_write_is_retried_after_its_retry_after() -> None:
    rig = Rig()
    rig.serve(URL, jwk(1))
    rig.kube.fail["patch_status"] = [ApiCallError("patch_status: HTTP 429", status=429, retry_after=30)]
    await rig.apply("a", SPEC)
    assert (NS, "a") not in rig.kube.statuses
    assert rig.due(("obj", (NS, "a"))) == 30
    await rig.advance(30)
    assert rig.condition("a") == ("True", "KeysPublished")
    assert len(rig.kube.called("publish")) == 1, "the output was written once; only the status is retried"


async def test_spec_error_is_reported_without_fetching_or_publishing() -> None:
    rig = Rig()
    await rig.apply("a", {"jwkUrl": "ftp://idp.example/jwks"})
    assert rig.fetcher.calls == []
    assert rig.kube.writes() == []
    assert rig.condition("a") == ("False", "InvalidSpec")


async def test_stand_by_drops_all_state_and_schedules() -> None:
    rig = Rig()
    rig.serve(URL, jwk(1))
    await rig.apply("a", SPEC)
    rig.engine.stand_by()
    assert rig.engine.objects == {}
    assert rig.engine.sources.by_key == {}
    assert rig.due(("url", URL)) is None
    await rig.advance(3600)
    assert len(rig.fetcher.calls) == 1


async def test_an_unexpected_fetch_error_is_reported_and_the_url_stays_scheduled() -> None:
    rig = Rig()
    provider = rig.serve(URL, jwk(1))
    provider.error = RuntimeError("a library's own error")
    await rig.apply("a", SPEC)
    assert "unexpected RuntimeError" in rig.status("a")["lastError"]
    assert rig.due(("url", URL)) == 5, "retried with backoff, not forgotten"
    provider.error = None
    await rig.advance(5)
    assert rig.condition("a") == ("True", "KeysPublished")
    assert rig.kids("a-jwks") == ["k1"]


async def test_a_ca_bundle_without_certificates_is_a_fetch_error() -> None:
    rig = Rig()
    rig.serve(URL, jwk(1))
    rig.kube.ca_bundles[(NS, "ca")] = "not a certificate"
    await rig.apply("a", {**SPEC, "caBundleRef": {"kind": "ConfigMap", "name": "ca", "key": "ca.crt"}})
    assert "holds no PEM certificate" in rig.status("a")["lastError"]
    assert rig.fetcher.calls == [], "nothing is fetched without the trust it names"


async def test_a_resumed_object_is_reconciled_after_a_new_one_first_fetches_its_url() -> None:
    rig = Rig()
    rig.serve(URL, jwk(1))
    await rig.apply("a", SPEC)
    rig.restart()
    await rig.engine.observe(None, rig.body("a", SPEC))  # resumed: waits for its URL's refresh at 300
    await rig.settle()
    assert rig.kube.writes() == [("publish", "ConfigMap", "a-jwks")]
    await rig.apply("b", SPEC)  # new: fetches the URL now, and its next refresh is a revalidation
    data = rig.kube.outputs.pop(("ConfigMap", NS, "a-jwks"))
    rig.engine.drift("DELETED", rig.configmap_event("a-jwks", "a", data))
    await rig.advance(1)
    assert rig.kids("a-jwks") == ["k1"], "a's deleted output is restored"


async def test_an_unexpected_error_while_publishing_is_reported_and_retried_with_backoff() -> None:
    rig = Rig()
    rig.serve(URL, jwk(1))
    await rig.apply("a", SPEC)
    rig.kube.fail["publish"] = [
        UnicodeDecodeError("utf-8", b"\xffsecret", 0, 1, "invalid start byte"),
        ValueError("Incorrect padding"),
    ]
    await rig.apply("a", {**SPEC, "audiences": ["other"]}, generation=2)
    assert rig.condition("a", "Degraded") == ("True", "UnexpectedError")
    assert rig.status("a")["lastError"] == (
        "unexpected UnicodeDecodeError while publishing the keys (see the operator log)"
    )
    assert rig.condition("a") == ("True", "KeysPublished"), "the last keys stay published"
    assert rig.due(("obj", (NS, "a"))) == 5
    await rig.advance(5)
    assert rig.status("a")["lastError"].startswith("unexpected ValueError while publishing the keys")
    assert rig.status("a")["consecutiveFailures"] == 2
    assert rig.due(("obj", (NS, "a"))) == 10
    await rig.advance(10)
    assert rig.condition("a", "Degraded") == ("False", "AsExpected")
    assert '"other"' in rig.output("a-jwks")["policy.json"]
    assert len(rig.fetcher.calls) == 1, "no extra fetches"


async def test_an_unexpected_error_while_reporting_is_retried_with_backoff() -> None:
    rig = Rig()
    rig.serve(URL, jwk(1))
    rig.kube.fail["patch_status"] = [RuntimeError("a bug"), RuntimeError("a bug")]
    await rig.apply("a", SPEC)
    assert rig.due(("obj", (NS, "a"))) == 5
    await rig.advance(5)
    assert rig.due(("obj", (NS, "a"))) == 10
    await rig.advance(10)
    assert rig.condition("a") == ("True", "KeysPublished")


async def test_after_a_restart_a_failing_first_fetch_reports_the_keys_the_target_holds() -> None:
    rig = Rig()
    provider = rig.serve(URL, jwk(1))
    await rig.apply("a", SPEC)
    provider.error = FetchError("HTTP 503")
    rig.restart()
    await rig.engine.observe(None, rig.body("a", SPEC))
    await rig.advance(5)
    status = rig.status("a")
    assert (status["keyCount"], [k["kid"] for k in status["keys"]]) == (1, ["k1"]), "not keys: []"
    assert status["lastFetchTime"] == at(0), "when they were obtained, as stored"
    assert status["refresh"]["reason"] == "ProviderCache"
    assert rig.condition("a") == ("True", "KeysPublished"), "the ConfigMap still serves them"
    degraded = next(c for c in status["conditions"] if c["type"] == "Degraded")
    assert degraded["message"] == "HTTP 503; the 1 key(s) last published stay in ConfigMap a-jwks"


async def test_backoff_and_the_failure_count_go_on_across_a_restart() -> None:
    rig = Rig()
    provider = rig.serve(URL, jwk(1))
    await rig.apply("a", SPEC)
    provider.error = FetchError("HTTP 503")
    for _ in range(3):
        await rig.advance(rig.due(("url", URL)) or 0)
    assert rig.status("a")["consecutiveFailures"] == 3
    rig.restart()
    await rig.engine.observe(None, rig.body("a", SPEC))
    await rig.advance(rig.due(("url", URL)) or 0)
    assert rig.status("a")["consecutiveFailures"] == 4, "counted on, not from 1"
    assert rig.due(("url", URL)) == 40, "the 4th failure's backoff, not the 1st's 5 s"
