"""One tenant's JwtSecret must not exhaust, stall or hammer for the others (#14): what the engine keeps per
URL is bounded, fetches wait in threads of their own, the operator-wide --min-interval binds every spec,
and a URL nobody reads leaves no metric series behind.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from jwks_operator.engine.url_source import MAX_PARSED
from jwks_operator.keys.keyset import ALGORITHMS, MAX_KEYS
from jwks_operator.model.errors import FetchError
from jwks_operator.model.freshness import RefreshPolicy
from jwks_operator.model.names import REFRESH_ANNOTATION
from jwks_operator.runtime.metrics import Metrics
from tests.unit.fakes import NS, Rig, jwk, stuck, until

URL = "https://idp.example/jwks"
SPEC = {"jwkUrl": URL, "audiences": ["api"]}
RETAINING = {**SPEC, "rotation": {"retainRemovedFor": "1h"}}
FLOOR = RefreshPolicy(min_interval=60)  # --min-interval 60

pytestmark = pytest.mark.asyncio


def url_samples(metrics: Metrics) -> list[tuple[str, dict[str, str]]]:
    """Every sample of the registry labelled with a URL: (sample name, labels)."""
    return [
        (sample.name, sample.labels)
        for family in metrics.registry.collect()
        for sample in family.samples
        if "url" in sample.labels
    ]


# -- memory: what a source keeps -----------------------------------------------------------------


async def test_keys_a_provider_drops_are_kept_only_while_retained_and_never_more_than_max_keys() -> None:
    rig = Rig()
    provider = rig.serve(URL, *(jwk(i) for i in range(100)), headers={"cache-control": "max-age=60"})
    await rig.apply("plain", SPEC)
    await rig.apply("keeper", RETAINING)
    source = rig.engine.sources.get(URL)
    assert source is not None
    fresh = itertools.count(100)
    for _ in range(30):  # 100 fresh keys a minute: 3,000 dropped keys within the hour retained
        provider.keys = [jwk(next(fresh)) for _ in range(100)]
        await rig.advance(60)
    assert len(rig.fetcher.calls) == 31
    assert len(source.removed) == MAX_KEYS, "at most MAX_KEYS dropped keys per URL"
    newest = {f"k{n}" for n in range(2900, 3000)}  # dropped by the last fetch: the oldest went first
    assert {jwk_["kid"] for jwk_, _ in source.removed.values()} == newest
    assert set(rig.kids("plain-jwks")) == set(rig.kids("keeper-jwks")) == {f"k{n}" for n in range(3000, 3100)}
    provider.keys = [jwk(next(fresh)) for _ in range(40)]  # room for 60 retained keys: the newest
    await rig.advance(60)
    assert set(rig.kids("keeper-jwks")) == {f"k{n}" for n in range(3040, 3140)}
    assert set(rig.kids("plain-jwks")) == {f"k{n}" for n in range(3100, 3140)}
    await rig.engine.observe("DELETED", rig.body("keeper", RETAINING))
    await rig.settle()
    assert source.removed == {}, "nobody retains dropped keys any more"
    provider.keys = [jwk(next(fresh))]
    await rig.advance(60)
    assert source.removed == {}, "not even for a moment: only what some subscriber retains is kept"


async def test_the_parsed_document_is_cached_for_a_bounded_number_of_algorithm_lists() -> None:
    rig = Rig()
    rig.serve(URL, jwk(1))
    asymmetric = [alg for alg in ALGORITHMS if not alg.startswith("HS")]
    lists = [("ES256", *extra) for extra in itertools.permutations(asymmetric[:6], 2) if "ES256" not in extra]
    assert len(lists) > 2 * MAX_PARSED
    for n, algorithms in enumerate(lists):  # every tenant its own allow-list
        await rig.apply(f"t{n}", {**SPEC, "algorithms": list(algorithms)})
    source = rig.engine.sources.get(URL)
    assert source is not None
    assert len(source.parsed) <= MAX_PARSED
    assert all(rig.kids(f"t{n}-jwks") == ["k1"] for n in range(len(lists)))
    await rig.advance(300)  # the document read again for each list: still right, still bounded
    assert len(source.parsed) <= MAX_PARSED
    assert rig.condition(f"t{len(lists) - 1}") == ("True", "KeysPublished")


# -- stall: fetches in threads of their own ---------------------------------------------------------


async def test_fetches_stuck_on_a_provider_never_hold_up_the_api_calls_of_others() -> None:
    loop = asyncio.get_running_loop()
    api_threads = ThreadPoolExecutor(4, thread_name_prefix="api")  # asyncio.to_thread's pool (any size)
    loop.set_default_executor(api_threads)
    release = threading.Event()
    rig = Rig(concurrency=8)
    try:
        urls = [f"https://slow{n}.example/jwks" for n in range(8)]
        for n, url in enumerate(urls):
            rig.serve(url, jwk(n), headers=stuck(release))
            await rig.engine.observe(None, rig.body(f"slow{n}", {"jwkUrl": url}))
        rig.engine.scheduler.fire_due()
        assert await until(lambda: len(rig.fetcher.calls) >= 4)
        static = {"static": {"jwks": {"keys": [jwk(99)]}}}
        await rig.engine.observe(None, rig.body("static", static))
        rig.engine.scheduler.fire_due()
        ready = await until(
            lambda: (NS, "static") in rig.kube.statuses and rig.condition("static")[0] == "True"
        )
        assert ready, "a static JwtSecret waited for fetches from another namespace's provider"
        assert rig.kids("static-jwks") == ["k99"]
        assert len(rig.fetcher.calls) == 8, "all eight fetches run at once, in the fetch threads"
    finally:
        release.set()
    await rig.settle()
    assert all(rig.condition(f"slow{n}")[0] == "True" for n in range(8))
    api_threads.shutdown()


async def test_closing_the_sources_does_not_wait_for_stuck_fetches_and_leaves_no_fetch_thread() -> None:
    release = threading.Event()
    rig = Rig(concurrency=2)
    rig.serve(URL, jwk(1), headers=stuck(release))
    await rig.engine.observe(None, rig.body("a", SPEC))
    rig.engine.scheduler.fire_due()
    assert await until(lambda: len(rig.fetcher.calls) == 1)
    pool = rig.engine.sources.pool
    try:
        rig.engine.sources.close()  # the engine stops: returns at once, a stuck fetch or not
        rig.engine.sources.close()  # twice is harmless
    finally:
        release.set()
    rig.engine.scheduler.clear()
    threads = list(getattr(pool, "_threads", ()))
    assert threads, "the fetch ran in a thread of the fetch pool"
    assert all(t.name.startswith("jwks-fetch") for t in threads)
    assert await until(lambda: not any(t.is_alive() for t in threads)), "no fetch thread is left"


# -- hammering: the operator-wide floor binds every spec ---------------------------------------------


async def test_a_shared_url_is_fetched_no_sooner_than_the_operator_min_interval_whatever_a_spec_asks() -> (
    None
):
    rig = Rig(policy=FLOOR)
    rig.serve(URL, jwk(1), headers={"cache-control": "max-age=1"})
    await rig.apply("eager", {**SPEC, "refresh": {"minInterval": "1s"}})  # one namespace asks for 1 s
    await rig.apply("calm", SPEC)
    await rig.advance_to(600)
    assert rig.fetcher.at(URL) == [60.0 * n for n in range(11)], "one GET a minute, not one a second"
    assert rig.status("eager")["refresh"] == {
        "reason": "MinInterval",
        "message": "the provider's max-age 1s is below minInterval: refreshed every 1m",
    }


async def test_a_max_interval_under_the_floor_and_no_cache_answers_are_held_to_the_floor_too() -> None:
    rig = Rig(policy=FLOOR)
    rig.serve(URL, jwk(1), headers={"cache-control": "max-age=3600"})
    rig.serve("https://nocache.example/jwks", jwk(2), headers={"cache-control": "no-cache"})
    await rig.apply("short", {**SPEC, "refresh": {"minInterval": "10ms", "maxInterval": "10s"}})
    await rig.apply("nc", {"jwkUrl": "https://nocache.example/jwks", "refresh": {"minInterval": "10ms"}})
    await rig.advance_to(300)
    assert rig.fetcher.at(URL) == [0, 60, 120, 180, 240, 300]
    assert rig.fetcher.at("https://nocache.example/jwks") == [0, 60, 120, 180, 240, 300]


async def test_refresh_requests_are_spaced_by_the_operator_min_interval_whatever_a_spec_asks() -> None:
    rig = Rig(policy=FLOOR)
    rig.serve(URL, jwk(1), headers={"cache-control": "max-age=3600"})
    spec = {**SPEC, "refresh": {"minInterval": "1s"}}
    await rig.apply("a", spec)
    for n in range(1, 121):  # a new refresh request every second for two minutes
        await rig.advance(1)
        await rig.apply("a", spec, annotations={REFRESH_ANNOTATION: str(n)})
    await rig.settle()
    assert rig.fetcher.at(URL) == [0, 60, 120]


# -- leaks: metric series of URLs nobody reads -------------------------------------------------------


async def test_deleting_every_jwtsecret_leaves_no_series_labelled_with_a_url() -> None:
    rig = Rig()
    urls = [f"https://idp{n}.example/jwks" for n in range(200)]
    for n, url in enumerate(urls):
        rig.serve(url, jwk(n % 5))
        if n % 10 == 0:  # some fail: their error counts are series too
            rig.fetcher.providers[url].error = FetchError("HTTP 503")
        await rig.engine.observe(None, rig.body(f"j{n}", {"jwkUrl": url}))
    await rig.settle()
    await rig.advance(300)  # a refresh each: ok, not_modified and error results
    assert len({labels["url"] for _, labels in url_samples(rig.engine.metrics)}) == 200
    for n, url in enumerate(urls):
        await rig.engine.observe("DELETED", rig.body(f"j{n}", {"jwkUrl": url}))
    await rig.settle()
    assert url_samples(rig.engine.metrics) == []


async def test_a_fetch_that_ends_after_its_url_was_dropped_records_nothing() -> None:
    release = threading.Event()
    rig = Rig()
    rig.serve(URL, jwk(1), headers=stuck(release))
    await rig.engine.observe(None, rig.body("a", SPEC))
    rig.engine.scheduler.fire_due()
    try:
        assert await until(lambda: len(rig.fetcher.calls) == 1)
        await rig.engine.observe("DELETED", rig.body("a", SPEC))
    finally:
        release.set()
    await rig.settle()
    assert url_samples(rig.engine.metrics) == []
    assert rig.due(("url", URL)) is None
    assert rig.engine.sources.get(URL) is None


async def test_standing_by_forgets_every_url_series() -> None:
    rig = Rig()
    for n in range(3):
        rig.serve(f"https://idp{n}.example/jwks", jwk(n))
        await rig.apply(f"j{n}", {"jwkUrl": f"https://idp{n}.example/jwks"})
    assert url_samples(rig.engine.metrics)
    rig.engine.stand_by()
    assert url_samples(rig.engine.metrics) == []


@pytest.mark.asyncio
async def test_a_stopped_engine_closes_its_fetch_threads() -> None:
    rig = Rig()
    task = asyncio.create_task(rig.engine.run())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    with pytest.raises(RuntimeError):
        rig.engine.sources.pool.submit(print)
