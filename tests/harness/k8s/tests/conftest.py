"""Fixtures of the emulator's own tests: one emulated cluster serving Widgets per test module."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from kubernetes import client

from tests.harness.k8s import EmulatedCluster
from tests.harness.k8s.tests.widgets import CRD, core


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatedCluster]:
    with EmulatedCluster(crds=[CRD], history=50) as emulated:
        yield emulated


@pytest.fixture(scope="module")
def api(cluster: EmulatedCluster, tmp_path_factory: pytest.TempPathFactory) -> client.ApiClient:
    return cluster.api_client(tmp_path_factory.mktemp("kube") / "config")


@pytest.fixture
def ns(api: client.ApiClient) -> str:
    name = f"t-{uuid.uuid4().hex[:10]}"
    core(api).create_namespace({"metadata": {"name": name}})
    return name
