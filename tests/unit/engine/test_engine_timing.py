"""The timing tests/e2e/test_refresh.py sees in real time, asserted exactly on the fake clock: the refresh
cadence each provider profile's caching headers make (from the request, however slow the answer), one
fetch per URL and period however many JwtSecrets read it, a refresh request's minInterval spacing, the
resume after a restart, and how long a removed key stays published.

The rig runs with the e2e operator's bounds (--min-interval 1 --fallback-interval 2); the e2e suite
checks what holds however slow the machine is, and prints the gaps it observed.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import datetime, timedelta
from types import SimpleNamespace

import pytest

from jwks_operator.model.freshness import RefreshPolicy
from jwks_operator.model.names import REFRESH_ANNOTATION
from tests.harness import idp
from tests.unit.fakes import Rig, jwk

URL = "https://idp.example/jwks"
SPEC = {"jwkUrl": URL, "audiences": ["api"]}
E2E_POLICY = RefreshPolicy(min_interval=1, fallback_interval=2)  # the e2e session operator's flags

pytestmark = pytest.mark.asyncio


def e2e_headers(
    monkeypatch: pytest.MonkeyPatch, profile: str, max_age: int, skew: float = 0.0
) -> Callable[[datetime], dict[str, str]]:
    """The caching headers the e2e provider (tests/harness/idp.py) sends for a profile, dated at the time
    of each answer on the fake clock (plus `skew`: a provider whose own clock is off)."""
    provider = idp.JwksProvider(profile=profile, max_age=max_age)  # not started: only its headers are used
    moment = [0.0]
    monkeypatch.setattr(idp, "time", SimpleNamespace(time=lambda: moment[0]))

    def headers(now: datetime) -> dict[str, str]:
        moment[0] = (now + timedelta(seconds=skew)).timestamp()
        return provider.headers_for()

    return headers


def gaps(times: list[float]) -> list[float]:
    return [b - a for a, b in itertools.pairwise(times)]


@pytest.mark.parametrize(
    ("profile", "max_age", "skew", "refresh", "expected"),
    [
        ("google", 3, 0, {}, 3),  # Cache-Control max-age (with Expires)
        ("auth0", 4, 0, {}, 4),  # max-age; stale-while-revalidate=60 and stale-if-error are not lifetimes
        ("expires", 5, 0, {}, 5),  # Expires relative to Date
        ("expires", 5, 90, {}, 5),  # ... to the provider's Date, not our clock (90 s behind it)
        ("no-cache", 3, 0, {"minInterval": "1500ms"}, 1.5),  # revalidate each time we may
        ("google", 1, 0, {"minInterval": "2s"}, 2),  # clamped up: never hammer a provider
        ("google", 3600, 0, {"maxInterval": "2s"}, 2),  # clamped down: a year is still checked
        ("none", 3, 0, {}, 2),  # no caching headers: the fallback interval
    ],
)
async def test_refreshes_follow_each_provider_profile_revalidating_every_time(
    monkeypatch: pytest.MonkeyPatch,
    profile: str,
    max_age: int,
    skew: float,
    refresh: dict[str, str],
    expected: float,
) -> None:
    rig = Rig(policy=E2E_POLICY)
    provider = rig.serve(URL, jwk(1), headers=e2e_headers(monkeypatch, profile, max_age, skew))
    await rig.apply("a", {**SPEC, "refresh": refresh} if refresh else SPEC)
    await rig.advance_to(expected * 4)
    assert gaps(rig.fetcher.at(URL)) == [expected] * 4
    assert rig.fetcher.calls[1:] == [(URL, provider.etag)] * 4, "each refresh revalidated: a 304"
    assert len(rig.kube.called("patch_status")) == 1, "and wrote nothing"


@pytest.mark.parametrize("profile", ["google", "expires"])
async def test_a_slow_answer_does_not_make_the_refreshes_later(
    monkeypatch: pytest.MonkeyPatch, profile: str
) -> None:
    rig = Rig(policy=E2E_POLICY)
    provider = rig.serve(URL, jwk(1), headers=e2e_headers(monkeypatch, profile, 3))
    provider.latency = 0.4  # freshness counts from the request (RFC 9111 4.2.3), not from the answer
    await rig.apply("a", SPEC)
    assert rig.due(("url", URL)) == pytest.approx(2.6)
    await rig.advance_to(12)
    assert gaps(rig.fetcher.at(URL)) == pytest.approx([3, 3, 3, 3])


async def test_three_jwtsecrets_on_a_url_cost_as_many_fetches_as_one() -> None:
    rig = Rig(policy=E2E_POLICY)
    solo, url = "https://solo.example/jwks", URL
    rig.serve(solo, jwk(1), headers={"cache-control": "max-age=2"})
    shared = rig.serve(url, jwk(2), headers={"cache-control": "max-age=2"})
    await rig.apply("solo", {"jwkUrl": solo, "audiences": ["api"]})
    for name in ("a", "b", "c"):  # joining at 0, 0.5 and 1: the later ones read the fetched document
        await rig.apply(name, {"jwkUrl": url, "audiences": [name]})
        await rig.advance(0.5)
    shared.keys = [jwk(2), jwk(3)]  # a rotation, seen by the refresh at 2
    await rig.advance_to(12)
    assert rig.fetcher.at(url) == rig.fetcher.at(solo) == [0, 2, 4, 6, 8, 10, 12]
    assert [rig.kids(f"{n}-jwks") for n in "abc"] == [["k2", "k3"]] * 3, "one fetch updated all three"


async def test_a_refresh_request_fetches_at_once_and_the_next_no_sooner_than_min_interval() -> None:
    rig = Rig(policy=E2E_POLICY)
    provider = rig.serve(URL, jwk(1), headers={"cache-control": "max-age=3600"})
    await rig.apply("a", SPEC)
    provider.keys = [jwk(1), jwk(2)]
    await rig.advance(1.5)
    assert rig.fetcher.at(URL) == [0], "nothing due for an hour"
    await rig.apply("a", SPEC, annotations={REFRESH_ANNOTATION: "2026-11-22T10:00:00Z"})
    assert rig.fetcher.at(URL) == [0, 1.5], "minInterval has passed since the last fetch: at once"
    assert rig.kids("a-jwks") == ["k1", "k2"]
    await rig.advance(0.25)
    await rig.apply("a", SPEC, annotations={REFRESH_ANNOTATION: "2026-11-22T10:00:01Z"})
    assert rig.due(("url", URL)) == pytest.approx(0.75)
    await rig.advance_to(3602.5)
    assert rig.fetcher.at(URL) == [0, 1.5, 2.5, 3602.5], "spaced by minInterval, then on the schedule again"


async def test_a_restart_revalidates_each_url_once_within_the_spread_and_writes_nothing() -> None:
    rig = Rig(policy=E2E_POLICY)
    rig.serve(URL, jwk(1), headers={"cache-control": "max-age=8"})
    await rig.apply("a", SPEC)
    await rig.advance(2)
    rig.restart()
    rig.kube.calls.clear()
    before = dict(rig.kube.outputs)
    await rig.engine.observe(None, rig.body("a", SPEC))  # resumed from the status written before
    due = rig.due(("url", URL))
    assert due is not None
    assert 0 <= due <= 5, "soon, spread by up to 5 s (the next refresh time is not stored)"
    assert rig.due(("obj", ("ns", "a"))) is None, "a healthy JwtSecret waits for its URL"
    await rig.advance_to(2 + due)
    assert rig.fetcher.calls == [(URL, None), (URL, None)], "validators are not kept across restarts"
    assert rig.kube.called("patch_status") == [], "the same keys and status: no status write"
    assert rig.kube.outputs == before, "the ConfigMap holds the same"
    assert rig.due(("url", URL)) == pytest.approx(8)


async def test_a_removed_key_stays_published_for_retain_removed_for_after_the_fetch_that_saw_it_go() -> None:
    rig = Rig(policy=E2E_POLICY)
    provider = rig.serve(URL, jwk(1), jwk(2), headers={"cache-control": "max-age=2"})
    await rig.apply("a", {**SPEC, "rotation": {"retainRemovedFor": "3s"}})
    provider.keys = [jwk(2)]
    published: list[tuple[float, list[str]]] = []
    for moment in (2, 4, 5, 5.04):  # removed at 2; a revalidation at 4 changes nothing
        await rig.advance_to(moment)
        published.append((moment, sorted(rig.kids("a-jwks"))))
    await rig.advance_to(5.05)
    published.append((5.05, rig.kids("a-jwks")))
    assert published == [(m, ["k1", "k2"]) for m in (2, 4, 5, 5.04)] + [(5.05, ["k2"])]
    assert rig.fetcher.at(URL) == [0, 2, 4]
