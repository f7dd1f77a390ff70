"""The refresh engine end to end: each provider's schedule, sharing, forcing, failures, restarts, rotation.

The session operator runs with --min-interval 1 --fallback-interval 2 --retry-base 1 --retry-max 4.
Intervals are read from the provider's own request log (monotonic times of the requests it served).
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import trustme

from jwks_operator.names import GROUP, PLURAL, REFRESH_ANNOTATION, VERSION
from tests.harness.client import ClusterClient, wait_for
from tests.harness.idp import JwksProvider
from tests.harness.operator import OperatorProcess

REPORT: list[str] = []


@pytest.fixture
def idp(ca: trustme.CA) -> Iterator[JwksProvider]:
    with JwksProvider(ca=ca, max_age=2) as p:
        yield p


def intervals(provider: JwksProvider) -> list[float]:
    times = [r.monotonic for r in provider.log]
    return [round(b - a, 2) for a, b in itertools.pairwise(times)]


def settle_and_measure(
    kube: ClusterClient, ns: str, name: str, provider: JwksProvider, seconds: float
) -> list[float]:
    kube.wait_condition(ns, name)
    provider.clear_log()
    time.sleep(seconds)
    return intervals(provider)


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
        gaps = settle_and_measure(kube, ns, "r", provider, expected * 3 + 0.5)
        statuses = {r.status for r in provider.log}
    REPORT.append(
        f"{profile:9} max-age={max_age:<5} refresh={refresh or '-'!s:28} expected={expected}s "
        f"observed={gaps} statuses={sorted(statuses)}"
    )
    assert len(gaps) >= 2
    assert all(abs(gap - expected) <= 0.5 for gap in gaps), gaps
    assert statuses == {304}  # every refresh revalidated with If-None-Match, nothing re-downloaded


def test_fallback_never_fetches_once(kube: ClusterClient, ns: str, ca: trustme.CA) -> None:
    with JwksProvider(ca=ca, profile="none") as provider:
        kube.create(ns, "once", {"jwkUrl": provider.url, "refresh": {"fallbackInterval": "Never"}})
        kube.wait_condition(ns, "once")
        time.sleep(3)
        assert provider.count() == 1
        assert "nextRefreshTime" not in kube.get(ns, "once")["status"]


def test_one_fetch_per_url_however_many_jwtsecrets(kube: ClusterClient, ns: str, idp: JwksProvider) -> None:
    for name in ("a", "b", "c"):
        kube.create(ns, name, {"jwkUrl": idp.url, "audiences": [name]})
    for name in ("a", "b", "c"):
        kube.wait_condition(ns, name)
    idp.clear_log()
    time.sleep(6.3)
    REPORT.append(f"3 JwtSecrets on one URL, max-age=2, 6.3 s: {idp.count()} requests {intervals(idp)}")
    assert 2 <= idp.count() <= 4
    idp.rotate()
    wait_for(lambda: all(len(kids(kube, ns, n)) == 2 for n in ("a", "b", "c")), 6, "all three follow")


def test_force_refresh_annotation(kube: ClusterClient, ns: str, ca: trustme.CA) -> None:
    with JwksProvider(ca=ca, max_age=3600) as provider:
        kube.create(ns, "f", {"jwkUrl": provider.url})
        kube.wait_condition(ns, "f")
        new = provider.rotate()
        time.sleep(1.5)
        assert provider.count() == 1  # nothing due for an hour
        requested = time.monotonic()
        stamp = {"metadata": {"annotations": {REFRESH_ANNOTATION: "2026-11-22T10:00:00Z"}}}
        kube.custom.patch_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "f", stamp)
        wait_for(lambda: new in kids(kube, ns, "f"), 5, "forced refresh published the new key")
        first = provider.log[1].monotonic - requested
        stamp["metadata"]["annotations"][REFRESH_ANNOTATION] = "2026-11-22T10:00:01Z"
        kube.custom.patch_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "f", stamp)
        wait_for(lambda: provider.count() == 3, 8, "second forced refresh")
        spacing = provider.log[2].monotonic - provider.log[1].monotonic
    REPORT.append(
        f"force refresh: fetched {first:.2f}s after the annotation; a second request waited {spacing:.2f}s"
    )
    assert first < 1.0
    assert 0.95 <= spacing <= 1.6  # --min-interval 1: forcing never fetches more often


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
    kube.wait_condition(ns, "ra", "True", "FetchFailed", kind="Degraded", timeout=10)
    failed_at = idp.log[-1].monotonic
    wait_for(lambda: idp.log[-1].monotonic > failed_at, 8, "a retry")
    gap = idp.log[-1].monotonic - failed_at
    idp.recover()
    obj = kube.wait_condition(ns, "ra", "False", "AsExpected", kind="Degraded", timeout=10)
    REPORT.append(f"Retry-After: 3 on 503: next attempt after {gap:.2f}s; recovered with failures reset")
    assert 2.9 <= gap <= 4.0
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
    wait_for(lambda: kids(kube, ns, "ret") == {old, new}, 6, "new key added")
    idp.retire(old)
    removed_at = time.monotonic()
    time.sleep(2.5)
    assert kids(kube, ns, "ret") == {old, new}  # still retained
    wait_for(lambda: kids(kube, ns, "ret") == {new}, 5, "old key dropped after retention")
    REPORT.append(
        f"retainRemovedFor=3s: removed key unpublished {time.monotonic() - removed_at:.1f}s after removal"
    )


def test_restart_resumes_without_refetching(
    kube: ClusterClient, ns: str, ca: trustme.CA, operator: OperatorProcess
) -> None:
    with JwksProvider(ca=ca, max_age=8) as provider:
        kube.create(ns, "rs", {"jwkUrl": provider.url})
        obj = kube.wait_condition(ns, "rs")
        operator.stop()
        provider.clear_log()
        operator.start()
        restarted = time.monotonic()
        wait_for(lambda: provider.count() >= 1, 20, "the refresh after restart")
        first = provider.log[0].monotonic - restarted
        assert provider.log[0].status == 200  # validators are not kept across restarts
    REPORT.append(
        f"restart: first fetch {first:.1f}s after restart (nextRefreshTime was "
        f"{obj['status']['nextRefreshTime']}, spread 0-5 s)"
    )
    assert first >= 3.0


@pytest.mark.last  # after the tests that fill the report
def test_report() -> None:
    """Print what was measured (run with -s to see it)."""
    print("\n".join(["", "refresh report:", *REPORT]))
