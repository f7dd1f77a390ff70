"""The engine in process: refresh scheduling, shared fetches, backoff, staleness and restarts.

A FakeKube, a FakeFetcher and a FakeClock stand in for the cluster, the providers and time
(tests/unit/fakes.py); each test runs in milliseconds.
"""

from __future__ import annotations

import pytest

from jwks_operator.errors import ApiCallError, FetchError
from jwks_operator.freshness import RefreshPolicy
from jwks_operator.names import REFRESH_ANNOTATION
from tests.unit.fakes import NS, Rig, at, healthy, jwk

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
    assert rig.status("a")["nextRefreshTime"] == at(300)
    await rig.advance(299)
    assert len(rig.fetcher.calls) == 1
    await rig.advance(1)
    assert rig.fetcher.calls[1] == (URL, provider.etag)  # conditional: a 304
    assert len(rig.kube.called("patch_status")) == 1, "a revalidation that changed nothing writes nothing"
    assert rig.kube.writes() == [("publish", "ConfigMap", "a-jwks")]
    assert rig.due(("url", URL)) == 300


@pytest.mark.parametrize(
    ("headers", "refresh", "due"),
    [
        ({"cache-control": "max-age=5"}, None, 60),  # clamped up to minInterval
        ({"cache-control": "max-age=9999999"}, None, 86400),  # clamped down to maxInterval
        ({"cache-control": "max-age=600", "age": "100"}, None, 500),
        ({"cache-control": "no-cache"}, None, 60),
        ({}, None, 3600),  # no caching headers: the fallback interval
        ({}, {"fallbackInterval": "Never"}, None),
        ({"cache-control": "max-age=5"}, {"minInterval": "2m"}, 120),
        ({"cache-control": "max-age=9999"}, {"maxInterval": "15m"}, 900),
    ],
)
async def test_due_time_is_clamped_to_the_policy(
    headers: dict[str, str], refresh: dict[str, str] | None, due: float | None
) -> None:
    rig = Rig()
    rig.serve(URL, jwk(1), headers=headers)
    await rig.apply("a", {**SPEC, "refresh": refresh} if refresh else SPEC)
    assert rig.due(("url", URL)) == due
    assert rig.status("a").get("nextRefreshTime") == (at(due) if due is not None else None)


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
    assert rig.due(("obj", (NS, "a"))) is None, "fetch errors retry on the URL's schedule only"

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
    await rig.advance_to(934)  # failing at 300, 305, 315, 335, 375, 455 and 615: not 10 minutes past 300
    assert rig.status("a")["consecutiveFailures"] == 7
    assert rig.condition("a") == ("True", "KeysPublished")
    assert rig.due(("url", URL)) == 1
    await rig.advance(1)
    assert rig.condition("a") == ("False", "Stale")
    assert rig.status("a")["lastError"].startswith(f"keys are stale: due for refresh at {at(300)}")
    assert rig.kids("a-jwks") == ["k1"]
    assert rig.kube.writes() == [("publish", "ConfigMap", "a-jwks")], "nothing withdrawn"
    assert ("Warning", "Stale") in {e[:2] for e in rig.kube.events}


async def test_restart_resumes_healthy_objects_at_their_stored_refresh_time_spread() -> None:
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
    assert all(d is not None and 600 <= d <= 605 for d in dues), dues
    assert len(set(dues)) == len(dues), "spread, not all at once"
    await rig.advance(605)
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
