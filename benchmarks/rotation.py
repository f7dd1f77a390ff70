"""A key rotation at one provider, seen by the operator when the cached set expires (stress) or at once
through the refresh-requested-at annotation on one JwtSecret per affected URL, as a user forces it
(realistic: the cache lasts hours); and the floor its writes have on the backend."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from urllib.parse import urlsplit

from tests.harness.idp import JwksProvider

from benchmarks.backends import Backend, Key, Monitor
from benchmarks.emulator import user_agent
from benchmarks.measure import OPERATOR_AGENT, operator_calls, wait_quiet
from benchmarks.rawhttp import MERGE_PATCH
from benchmarks.results import WRITES, Result, Settings
from benchmarks.workload import Item
from jwks_operator.model.names import GROUP, PLURAL, REFRESH_ANNOTATION, VERSION


def forced_objects(todo: list[Item], provider: int) -> list[Item]:
    """One JwtSecret per URL of `provider`: the first that names it (its URL source refreshes them all)."""
    first: dict[str, Item] = {}
    for item in todo:
        if item.provider == provider and item.url is not None:
            first.setdefault(item.url, item)
    return list(first.values())


def force_refresh(cluster: Backend, objects: list[Item], workers: int) -> None:
    """Set the refresh-requested-at annotation on these JwtSecrets (one merge patch each)."""
    api = cluster.harness()
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    def patch(item: Item) -> None:
        path = f"/apis/{GROUP}/{VERSION}/namespaces/{item.namespace}/{PLURAL}/{item.name}"
        api.request("PATCH", path, {"metadata": {"annotations": {REFRESH_ANNOTATION: stamp}}}, MERGE_PATCH)

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(patch, objects))


def rotation(
    cluster: Backend,
    monitor: Monitor,
    providers: list[JwksProvider],
    todo: list[Item],
    settings: Settings,
    result: Result,
) -> None:
    """A new key at provider 0 (forced with the annotation in a profile that says so): seconds until every
    affected ConfigMap lists it, and the writes."""
    affected = [(item.namespace, f"{item.name}-jwks") for item in todo if item.provider == 0]
    result.rotation_affected = len(affected)
    tally0, mark = cluster.tally(), len(providers[0].log)
    kid = providers[0].rotate()
    start = time.monotonic()
    if settings.profile.forced:
        forced = forced_objects(todo, 0)
        force_refresh(cluster, forced, settings.concurrency)
        result.rotation_forced_objects = len(forced)
        result.rotation_forced = time.monotonic() - start
    deadline = start + max(60.0, settings.period * 10, 0.05 * len(affected))
    while time.monotonic() < deadline:
        if monitor.published(affected, kid) == len(affected):
            result.rotation_seconds = time.monotonic() - start
            break
        time.sleep(0.05)
    else:
        result.notes.append(
            f"N={result.n} ({settings.profile.name}): rotation not published everywhere after "
            f"{deadline - start:.0f} s"
        )
    result.rotation_fetched = (
        last_refetch(providers[0], mark, {i.url for i in todo if i.provider == 0}) - start
    )
    wait_quiet(cluster, settings.period)
    calls, _ = operator_calls(tally0, cluster.tally())
    result.rotation_writes = sum(calls.get(v, 0) for v in WRITES)


def last_refetch(provider: JwksProvider, mark: int, urls: set[str | None]) -> float:
    """When the operator last fetched one of `urls` for the first time (a 200) after log index `mark`."""
    paths = {urlsplit(url)._replace(scheme="", netloc="").geturl() for url in urls if url}
    first: dict[str, float] = {}
    with provider._lock:
        records = provider.log[mark:]
    for record in records:
        if record.status == 200 and user_agent(record.headers).startswith(OPERATOR_AGENT):
            first.setdefault(record.path, record.monotonic)
    return max((t for path, t in first.items() if path in paths), default=float("nan"))


def publish_floor(cluster: Backend, configmaps: list[Key], workers: int) -> float:
    """Seconds the harness takes to change these ConfigMaps' jwks.json (one merge patch each)."""
    api = cluster.harness()

    def patch(key: Key) -> None:
        body = {"data": {"jwks.json": '{"keys": []}'}}
        api.request("PATCH", f"/api/v1/namespaces/{key[0]}/configmaps/{key[1]}", body, MERGE_PATCH)

    start = time.monotonic()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(patch, configmaps))
    return time.monotonic() - start
