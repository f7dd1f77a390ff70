"""Watches (resume, selector transitions, expiry, live events) and fault injection, over HTTP."""

from __future__ import annotations

import json
import threading
import urllib.request
from typing import Any

from kubernetes import client

from tests.harness.k8s import ApiServer, EmulatedCluster
from tests.harness.k8s.tests.widgets import api_error, core


def watch(cluster: EmulatedCluster, path: str, seconds: int = 1) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{cluster.url}{path}&timeoutSeconds={seconds}") as response:
        return [json.loads(line) for line in response.read().splitlines() if line.strip()]


def test_watch_resume_selector_transitions_and_expiry(
    cluster: EmulatedCluster, api: client.ApiClient, ns: str
) -> None:
    base = f"/api/v1/namespaces/{ns}/configmaps?watch=true"
    start = core(api).list_namespaced_config_map(ns).metadata.resource_version
    core(api).create_namespaced_config_map(ns, {"metadata": {"name": "m", "labels": {"on": "1"}}})
    core(api).patch_namespaced_config_map(
        "m", ns, {"metadata": {"labels": {"on": None}}}, _content_type="application/merge-patch+json"
    )
    events = watch(cluster, f"{base}&resourceVersion={start}")
    assert [e["type"] for e in events] == ["ADDED", "MODIFIED"]
    selected = watch(cluster, f"{base}&resourceVersion={start}&labelSelector=on")
    assert [e["type"] for e in selected] == ["ADDED", "DELETED"]
    assert [e["type"] for e in watch(cluster, f"{base}&resourceVersion=0")] == ["ADDED"]
    for i in range(60):
        core(api).create_namespaced_config_map(ns, {"metadata": {"name": f"x{i}"}})
    (expired,) = watch(cluster, f"{base}&resourceVersion={start}")
    assert (expired["type"], expired["object"]["code"]) == ("ERROR", 410)


def test_live_watch_and_faults(cluster: EmulatedCluster, api: client.ApiClient, ns: str) -> None:
    seen: list[list[dict[str, Any]]] = []
    rv = core(api).list_namespaced_config_map(ns).metadata.resource_version
    reader = threading.Thread(
        target=lambda: seen.append(
            watch(cluster, f"/api/v1/namespaces/{ns}/configmaps?watch=true&resourceVersion={rv}", 2)
        )
    )
    reader.start()
    cluster.call(lambda server: server.inject("create", "configmaps", status=503))
    status, body = api_error(lambda: core(api).create_namespaced_config_map(ns, {"metadata": {"name": "f"}}))
    assert (status, body["reason"]) == (503, "InjectedFault")
    core(api).create_namespaced_config_map(ns, {"metadata": {"name": "f"}})
    reader.join()
    assert [e["object"]["metadata"]["name"] for e in seen[0]] == ["f"]
    counts = cluster.call(ApiServer.counts)
    assert counts[("create", "configmaps")] >= 2


def test_a_watch_asking_for_bookmarks_gets_one_when_its_timeout_ends_it(
    cluster: EmulatedCluster, api: client.ApiClient, ns: str
) -> None:
    base = f"/api/v1/namespaces/{ns}/configmaps?watch=true&labelSelector=on"
    start = core(api).list_namespaced_config_map(ns).metadata.resource_version
    core(api).create_namespaced_config_map(ns, {"metadata": {"name": "off"}})  # not selected
    now = core(api).list_namespaced_config_map(ns).metadata.resource_version
    assert watch(cluster, f"{base}&resourceVersion={start}") == []
    (mark,) = watch(cluster, f"{base}&resourceVersion={start}&allowWatchBookmarks=true")
    assert mark["type"] == "BOOKMARK"
    assert mark["object"]["kind"] == "ConfigMap"
    assert mark["object"]["metadata"]["resourceVersion"] == now
