"""app.owned: the watch of the ConfigMaps we publish, against the emulated API server: events reach
`drift` on the event loop; a stop ends the threads; a start after a stop lists afresh."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from jwks_operator.app.owned import OwnedWatch
from jwks_operator.model.names import MANAGED_BY, MANAGED_BY_LABEL
from tests.harness.k8s import EmulatedCluster


@pytest.fixture(scope="module")
def cluster() -> Iterator[EmulatedCluster]:
    with EmulatedCluster() as emulated:
        yield emulated


@pytest.fixture(scope="module")
def api(cluster: EmulatedCluster, tmp_path_factory: pytest.TempPathFactory) -> client.ApiClient:
    return cluster.api_client(Path(tmp_path_factory.mktemp("kube")) / "config")


def namespace(api: client.ApiClient) -> str:
    name = f"t-{uuid.uuid4().hex[:10]}"
    core: Any = client.CoreV1Api(api)
    core.create_namespace({"metadata": {"name": name}})
    return name


def configmap(api: client.ApiClient, ns: str, name: str, managed: bool = True) -> None:
    labels = {MANAGED_BY_LABEL: MANAGED_BY} if managed else {}
    core: Any = client.CoreV1Api(api)
    core.create_namespaced_config_map(ns, {"metadata": {"name": name, "labels": labels}})


async def until(seen: list[Any], count: int) -> None:
    for _ in range(200):
        if len(seen) >= count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"only {seen}")


@pytest.mark.asyncio
async def test_managed_configmaps_of_the_watched_namespaces_reach_drift_on_the_loop(
    api: client.ApiClient,
) -> None:
    ns, other = namespace(api), namespace(api)
    configmap(api, ns, "a")
    configmap(api, ns, "not-ours", managed=False)
    configmap(api, other, "elsewhere")
    loop = asyncio.get_running_loop()
    seen: list[tuple[str | None, str]] = []

    def drift(event_type: str | None, obj: Mapping[str, Any]) -> None:
        assert asyncio.get_running_loop() is loop  # called on the event loop, not the watch thread
        seen.append((event_type, obj["metadata"]["name"]))

    owned = OwnedWatch(api, [ns], drift, loop, timeout=600)
    owned.start()
    owned.start()  # a no-op while running
    await until(seen, 1)
    configmap(api, ns, "b")
    await until(seen, 2)
    await asyncio.to_thread(owned.stop, join=True)
    assert not owned.running
    configmap(api, ns, "c")  # while stopped (a standby): nothing
    await asyncio.sleep(0.3)
    assert seen == [(None, "a"), ("ADDED", "b")]
    owned.start()  # leading again: a fresh list
    await until(seen, 5)
    assert sorted(seen[2:]) == [(None, "a"), (None, "b"), (None, "c")]
    await asyncio.to_thread(owned.stop, join=True)
