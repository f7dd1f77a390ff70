"""kube.watch_http: list and watch over HTTP against the emulated API server (label selector, resume,
bookmarks, 410, errors, close from another thread), and the ListWatch loop on it."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from jwks_operator.kube.listwatch import ListWatch
from jwks_operator.kube.watch_http import WatchExpiredError, WatchHttp
from jwks_operator.model.errors import ApiCallError
from tests.harness.k8s import ApiServer, EmulatedCluster


def core(api: client.ApiClient) -> Any:
    return client.CoreV1Api(api)


@pytest.fixture(scope="module")
def cluster() -> Iterator[EmulatedCluster]:
    with EmulatedCluster(history=50) as emulated:
        yield emulated


@pytest.fixture(scope="module")
def api(cluster: EmulatedCluster, tmp_path_factory: pytest.TempPathFactory) -> client.ApiClient:
    return cluster.api_client(Path(tmp_path_factory.mktemp("kube")) / "config")


@pytest.fixture
def ns(api: client.ApiClient) -> str:
    name = f"t-{uuid.uuid4().hex[:10]}"
    core(api).create_namespace({"metadata": {"name": name}})
    return name


def make(api: client.ApiClient, ns: str, name: str, on: bool = True) -> None:
    labels = {"on": "1"} if on else {}
    core(api).create_namespaced_config_map(ns, {"metadata": {"name": name, "labels": labels}})


def test_list_and_watch_only_what_the_selector_picks(api: client.ApiClient, ns: str) -> None:
    make(api, ns, "a")
    make(api, ns, "b", on=False)
    http = WatchHttp(api, "configmaps", namespace=ns, selector="on=1")
    items, version = http.list()
    assert [i["metadata"]["name"] for i in items] == ["a"]
    make(api, ns, "c")
    core(api).patch_namespaced_config_map(
        "a", ns, {"metadata": {"labels": {"on": None}}}, _content_type="application/merge-patch+json"
    )
    events = [(e["type"], e["object"]["metadata"].get("name")) for e in http.watch(version, 1)]
    # The label taken off: DELETED; the stream ends with its bookmark (asked for).
    assert events == [("ADDED", "c"), ("DELETED", "a"), ("BOOKMARK", None)]


def test_410_and_errors(cluster: EmulatedCluster, api: client.ApiClient, ns: str) -> None:
    http = WatchHttp(api, "configmaps", namespace=ns, selector="on=1")
    _, version = http.list()
    cluster.call(lambda server: server.inject("watch", "configmaps", status=410))
    (expired,) = list(http.watch(version, 1))  # a real server says it in the stream
    assert (expired["type"], expired["object"]["code"]) == ("ERROR", 410)
    cluster.call(lambda server: server.inject("list", "configmaps", status=403))
    with pytest.raises(ApiCallError, match="403"):
        http.list()


def test_an_http_410_is_watch_expired(cluster: EmulatedCluster, api: client.ApiClient, ns: str) -> None:
    http = WatchHttp(api, "configmaps", namespace=ns, selector="on=1")
    cluster.call(lambda server: server.inject("list", "configmaps", status=410))
    with pytest.raises(WatchExpiredError):
        http.list()


def test_the_loop_relists_after_410_and_close_ends_a_silent_stream(
    cluster: EmulatedCluster, api: client.ApiClient, ns: str
) -> None:
    make(api, ns, "a")
    seen: list[tuple[str | None, str]] = []
    got = threading.Event()

    def deliver(kind: str | None, obj: Mapping[str, Any]) -> None:
        seen.append((kind, obj["metadata"]["name"]))
        got.set()

    cluster.call(lambda server: server.inject("watch", "configmaps", status=410))
    http = WatchHttp(api, "configmaps", namespace=ns, selector="on=1")
    loop = ListWatch(http, deliver, timeout=600)
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    while len(seen) < 2:  # listed, 410, listed again (then a watch of 600 s, silent)
        assert got.wait(10)
        got.clear()
    make(api, ns, "b")
    assert got.wait(10)
    loop.stop()  # shuts the silent stream: the thread ends long before the watch's 600 s
    thread.join(10)
    assert not thread.is_alive()
    assert seen == [(None, "a"), (None, "a"), ("ADDED", "b")]
    counts = cluster.call(ApiServer.counts)
    assert counts[("list", "configmaps")] >= 2
