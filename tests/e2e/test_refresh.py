"""The refresh engine end to end: each provider's schedule, sharing, forcing, failures, restarts, rotation.

The session operator runs with --min-interval 1 --fallback-interval 2 --retry-base 1 --retry-max 4.
What is asserted holds however slow the machine is: which requests were made, in what order, and lower
bounds on when (never sooner than the policy allows). The exact timings are asserted on a fake clock in
tests/unit/engine/test_engine_timing.py; the intervals observed here (from the provider's request log) are
printed by test_report (`pytest -s`).
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import trustme

from jwks_operator.model.names import GROUP, PLURAL, REFRESH_ANNOTATION, VERSION
from tests.harness.client import ClusterClient, wait_for
from tests.harness.idp import JwksProvider, Record
from tests.harness.operator import OperatorProcess

REPORT: list[str] = []
PATIENCE = 60.0  # seconds to wait for what must happen: generous for a slow machine, never a measurement


@pytest.fixture
def idp(ca: trustme.CA) -> Iterator[JwksProvider]:
    with JwksProvider(ca=ca, max_age=2) as p:
        yield p


def intervals(log: list[Record]) -> list[float]:
    """Seconds between the requests of a provider's log (measured, for the report)."""
    return [round(b.monotonic - a.monotonic, 2) for a, b in itertools.pairwise(log)]


def conditional(record: Record) -> bool:
    """A request with If-None-Match: the operator holds the document and its ETag."""
    return "if-none-match" in {name.lower() for name in record.headers}


def revalidated(log: list[Record]) -> bool:
    """The first request fetched the document; every later one revalidated it: a conditional 304."""
    return log[0].status == 200 and all(conditional(r) and r.status == 304 for r in log[1:])


def answered(provider: JwksProvider, match: Callable[[Record], bool], count: int) -> list[Record]:
    """Wait until `count` requests matching `match` were answered; the first `count` of them. (The
    provider logs a request once it has answered it: the log is read by what it holds, never cleared.)"""

    def found() -> list[Record] | None:
        hits = [r for r in list(provider.log) if match(r)]
        return hits[:count] if len(hits) >= count else None

    return wait_for(found, PATIENCE, f"{count} matching request(s) to the provider")


def kids(kube: ClusterClient, ns: str, name: str) -> set[str]:
    data = kube.configmap(ns, f"{name}-jwks").data
    return {k["kid"] for k in json.loads(data["jwks.json"])["keys"]}


@pytest.mark.parametrize(
    ("profile", "max_age", "refresh", "expected"),
    [
        ("google", 2, {}, 2.0),  # Cache-Control max-age (with Expires)
        ("auth0", 3, {}, 3.0),  # max-age with stale-while-revalidate / stale-if-error
        ("expires", 2, {}, 2.0),  # Expires relative to Date only
        ("no-cache", 2, {"minInterval": "1500ms"}, 1.5),  # revalidate each time we may
        ("google", 1, {"minInterval": "2s"}, 2.0),  # clamped up: never hammer a provider
        ("google", 3600, {"maxInterval": "2s"}, 2.0),  # clamped down: a year is still checked
        ("none", 2, {}, 2.0),  # no caching headers: the fallback interval
    ],
)
def test_refresh_follows_the_provider(
    kube: ClusterClient,
    ns: str,
    ca: trustme.CA,
    profile: str,
    max_age: int,
    refresh: dict[str, str],
    expected: float,
) -> None:
    with JwksProvider(ca=ca, profile=profile, max_age=max_age) as provider:
        kube.create(
            ns, "r", {"jwkUrl": provider.url, "refresh": refresh} if refresh else {"jwkUrl": provider.url}
        )
        kube.wait_condition(ns, "r")
        log = answered(provider, lambda _: True, 4)  # the first fetch, three refreshes (max-age=3600 too)
    REPORT.append(
        f"{profile:9} max-age={max_age:<5} refresh={refresh or '-'!s:28} expected={expected}s "
        f"observed={intervals(log)} statuses={[r.status for r in log]}"
    )
    assert revalidated(log), log  # each refresh revalidated with If-None-Match, nothing re-downloaded


def test_fallback_never_fetches_once(kube: ClusterClient, ns: str, ca: trustme.CA) -> None:
    with JwksProvider(ca=ca, profile="none") as provider:
        kube.create(ns, "once", {"jwkUrl": provider.url, "refresh": {"fallbackInterval": "Never"}})
        kube.wait_condition(ns, "once")
        time.sleep(3)
        assert provider.count() == 1
        assert kube.get(ns, "once")["status"]["refresh"]["reason"] == "Never"


def test_one_fetch_per_url_however_many_jwtsecrets(
    kube: ClusterClient, ns: str, ca: trustme.CA, idp: JwksProvider
) -> None:
    """Three JwtSecrets on one URL make as many requests as one JwtSecret on another URL with the same
    max-age, created just before them: each URL has one schedule, so the counts differ by at most the
    one period in which one URL may be ahead of the other (a fetch per JwtSecret would be three times
    as many)."""
    with JwksProvider(ca=ca, max_age=idp.max_age) as solo:
        kube.create(ns, "solo", {"jwkUrl": solo.url})
        for name in ("a", "b", "c"):
            kube.create(ns, name, {"jwkUrl": idp.url, "audiences": [name]})
        for name in ("solo", "a", "b", "c"):
            kube.wait_condition(ns, name)
        answered(solo, lambda _: True, 5)  # the first fetch and four refreshes
        shared, single = list(idp.log), solo.count()
    REPORT.append(
        f"3 JwtSecrets on one URL: {len(shared)} requests {intervals(shared)}; "
        f"1 JwtSecret on another: {single} requests (max-age=2)"
    )
    assert len(shared) <= single + 1
    assert revalidated(shared), shared
    idp.rotate()
    wait_for(lambda: all(len(kids(kube, ns, n)) == 2 for n in ("a", "b", "c")), PATIENCE, "all three follow")


def test_force_refresh_annotation(kube: ClusterClient, ns: str, ca: trustme.CA) -> None:
    with JwksProvider(ca=ca, max_age=3600) as provider:
        kube.create(ns, "f", {"jwkUrl": provider.url})
        kube.wait_condition(ns, "f")
        new = provider.rotate()
        time.sleep(1.5)  # past --min-interval 1 since the first fetch
        assert provider.count() == 1  # nothing due for an hour
        requested = time.monotonic()
        stamp = {"metadata": {"annotations": {REFRESH_ANNOTATION: "2026-11-22T10:00:00Z"}}}
        kube.custom.patch_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "f", stamp)
        wait_for(lambda: provider.count() == 2, PATIENCE, "the forced refresh")
        stamp["metadata"]["annotations"][REFRESH_ANNOTATION] = "2026-11-22T10:00:01Z"
        kube.custom.patch_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "f", stamp)
        wait_for(lambda: new in kids(kube, ns, "f"), PATIENCE, "the forced refresh published the new key")
        wait_for(lambda: provider.count() == 3, PATIENCE, "the second forced refresh")
        log = list(provider.log)
    first, second = log[1].monotonic - requested, log[2].monotonic - requested
    REPORT.append(
        f"force refresh: fetched {first:.2f}s after the annotation; a second request, annotated right "
        f"after, {second - first:.2f}s later"
    )
    assert [r.status for r in log] == [200, 200, 304]  # the new key, then a revalidation
    # --min-interval 1: the second forced fetch is not sooner than 1 s after the first one started,
    # which was after `requested` (the provider logs a request when it has answered it)
    assert second >= 1.0


@pytest.mark.parametrize(
    ("break_it", "reason"),
    [
        (lambda p: p.fail(500), "HTTP 500"),
        (lambda p: p.fail(404), "HTTP 404"),
        (lambda p: p.serve_raw(b"{not json"), "not valid JSON"),
        (lambda p: p.serve_raw(b'{"keys": []}'), "no usable key"),
        (
            lambda p: p.serve_raw(b'{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}'),
            "only accepted from a Secret",
        ),
        (lambda p: p.serve_raw(b" " * (1024 * 1024 + 1)), "larger than 1048576 bytes"),
        (lambda p: p.redirect("http://127.0.0.1:9/jwks"), "refused redirect from https to http"),
        (lambda p: p.stop(), "connection failed"),
    ],
)
def test_last_good_keys_survive_each_failure(
    kube: ClusterClient, ns: str, ca: trustme.CA, break_it: Any, reason: str
) -> None:
    with JwksProvider(ca=ca, max_age=1) as provider:
        kube.create(ns, "lg", {"jwkUrl": provider.url})
        kube.wait_condition(ns, "lg")
        before = kube.configmap(ns, "lg-jwks")
        break_it(provider)
        obj = kube.wait_condition(ns, "lg", "True", "FetchFailed", kind="Degraded", timeout=10)
        after = kube.configmap(ns, "lg-jwks")
    assert reason in obj["status"]["lastError"]
    assert (kube.condition(ns, "lg") or {}).get("status") == "True"
    assert after.data == before.data
    assert after.metadata.resource_version == before.metadata.resource_version
    REPORT.append(f"failure {reason!r}: keys kept, Ready=True, Degraded=FetchFailed")


def test_backoff_honours_retry_after_and_recovers(kube: ClusterClient, ns: str, idp: JwksProvider) -> None:
    kube.create(ns, "ra", {"jwkUrl": idp.url})
    kube.wait_condition(ns, "ra")
    idp.fail(503, retry_after="3")
    kube.wait_condition(ns, "ra", "True", "FetchFailed", kind="Degraded", timeout=PATIENCE)
    failed, retried = answered(idp, lambda r: r.status == 503, 2)
    gap = retried.monotonic - failed.monotonic
    idp.recover()
    obj = kube.wait_condition(ns, "ra", "False", "AsExpected", kind="Degraded", timeout=PATIENCE)
    REPORT.append(f"Retry-After: 3 on 503: next attempt after {gap:.2f}s; recovered with failures reset")
    # Not sooner than Retry-After: 3 (--retry-base 1 alone retries after at most 1.2 s); the margin is
    # for the provider logging its first 503 after the operator, which planned the retry, read it.
    assert gap >= 2.0
    assert obj["status"]["consecutiveFailures"] == 0
    assert "lastError" not in obj["status"]


def test_stale_keys_make_ready_false_but_stay_published(
    kube: ClusterClient, ns: str, idp: JwksProvider
) -> None:
    kube.create(ns, "st", {"jwkUrl": idp.url, "refresh": {"staleAfter": "2s"}})
    kube.wait_condition(ns, "st")
    idp.fail(500)
    obj = kube.wait_condition(ns, "st", "False", "Stale", timeout=15)
    assert "keys are stale" in (kube.condition(ns, "st") or {}).get("message", "")
    assert obj["status"]["keyCount"] == 1
    assert kube.configmap(ns, "st-jwks").data
    idp.recover()
    kube.wait_condition(ns, "st", "True", "KeysPublished", timeout=10)


def test_removed_keys_are_retained_for_a_while(kube: ClusterClient, ns: str, idp: JwksProvider) -> None:
    old = idp.keys[0]
    kube.create(ns, "ret", {"jwkUrl": idp.url, "rotation": {"retainRemovedFor": "3s"}})
    kube.wait_condition(ns, "ret")
    new = idp.rotate()
    wait_for(lambda: kids(kube, ns, "ret") == {old, new}, PATIENCE, "new key added")
    removed_at = time.monotonic()
    idp.retire(old)
    (seen,) = answered(idp, lambda r: r.status == 200 and r.monotonic > removed_at, 1)  # without it
    wait_for(lambda: kids(kube, ns, "ret") == {new}, PATIENCE, "old key dropped after retention")
    dropped = time.monotonic() - removed_at
    REPORT.append(
        f"retainRemovedFor=3s: removed key unpublished {dropped:.1f}s after removal "
        f"(the operator fetched the document without it after {seen.monotonic - removed_at:.1f}s)"
    )
    # Still published for 3 s after the operator saw it go, which was after removed_at: a lower bound
    # (observed by polling, so never sooner than it happened).
    assert dropped >= 3.0


def test_restart_revalidates_once_and_writes_nothing(
    kube: ClusterClient, ns: str, ca: trustme.CA, operator: OperatorProcess
) -> None:
    with JwksProvider(ca=ca, max_age=30) as provider:
        kube.create(ns, "rs", {"jwkUrl": provider.url})
        before = kube.wait_condition(ns, "rs")
        operator.stop()
        operator.start()
        restarted = time.time()
        # The restarted operator holds no ETag: its first request is the second unconditional one, within
        # the resume spread (the next refresh time is not stored: it would need a write per period).
        first = answered(provider, lambda r: not conditional(r), 2)[1]
        time.sleep(1)
        after = kube.get(ns, "rs")
    REPORT.append(f"restart: first fetch {first.wall - restarted:.1f}s after restart (spread 0-5 s)")
    assert first.status == 200  # validators are not kept across restarts
    assert provider.count() == 2, "one fetch per URL after a restart, then max-age (30 s) again"
    same = before["metadata"]["resourceVersion"] == after["metadata"]["resourceVersion"]
    assert same, "the same keys and the same refresh basis: no status write"


@pytest.mark.last  # after the tests that fill the report
def test_report() -> None:
    """Print what was measured (run with -s to see it)."""
    print("\n".join(["", "refresh report:", *REPORT]))
