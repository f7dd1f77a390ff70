"""Shared fixtures: the session's cluster (emulated or real), the operator process, TLS providers; and
the collection hooks that pick what runs on the selected backend and in which order.

The backend is JWKS_BACKEND=emulator (default) or real (tests/harness/backend.py). Against a user's
cluster: `JWKS_E2E_KUBECONFIG=~/.kube/config make e2e`. The CRD is applied from crds/, each test uses
its own namespace, and the operator runs locally with that kubeconfig.

A test marked `last` runs after every other test of the session (marked ones in collection order).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from tests.harness import ROOT
from tests.harness.backend import BACKEND, OPERATOR_NAMESPACE, OPERATOR_SA, new_cluster
from tests.harness.client import ClusterClient
from tests.harness.control_plane import RealCluster
from tests.harness.k8s import EmulatedCluster, load_crds
from tests.harness.operator import OperatorProcess, trusting_operator
from tests.harness.tools import kubectl

OPERATOR_ARGS = [
    "--min-interval", "1", "--fallback-interval", "2", "--retry-base", "1", "--retry-max", "4",
    "--fetch-timeout", "2", "--fetch-deadline", "3", "--allow-private-networks",
]  # fmt: skip
REAL_TIER = Path(__file__).parent / "e2e" / "real"  # as pytest names the items' paths
ENVOY_TIER = Path(__file__).parent / "envoy"


def envoy_tier_named(config: pytest.Config) -> bool:
    """Whether the command line names tests/envoy or something in it (`make test-envoy`)."""
    for arg in config.args:
        path = (config.invocation_params.dir / arg.split("::")[0]).resolve()
        if path == ENVOY_TIER or ENVOY_TIER in path.parents:
            return True
    return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect (not skip) what does not belong to this tier: tests/e2e/real/ needs the real control
    plane (JWKS_BACKEND=real); tests/envoy/ runs only when named (`make test-envoy`: it needs Go for
    istiod's translation); tests marked `emulator_only` need the emulator. Then move the tests marked
    `last` to the end."""
    real = BACKEND == "real" and not os.environ.get("JWKS_E2E_KUBECONFIG")
    envoy = envoy_tier_named(config)

    def wanted(item: pytest.Item) -> bool:
        if REAL_TIER in Path(str(item.path)).parents:
            return real
        if ENVOY_TIER in Path(str(item.path)).parents:
            return envoy
        return not (BACKEND == "real" and item.get_closest_marker("emulator_only"))

    keep = [item for item in items if wanted(item)]
    if len(keep) < len(items):
        config.hook.pytest_deselected(items=[item for item in items if not wanted(item)])
    last = [item for item in keep if item.get_closest_marker("last")]
    items[:] = [item for item in keep if not item.get_closest_marker("last")] + last


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatedCluster | RealCluster | None]:
    """The session's cluster of the selected backend (None with JWKS_E2E_KUBECONFIG: a user's)."""
    if os.environ.get("JWKS_E2E_KUBECONFIG"):
        yield None
        return
    with new_cluster(tmp_path_factory.mktemp("cluster"), load_crds(ROOT / "crds")) as started:
        yield started


@pytest.fixture(scope="session")
def kubeconfig(
    cluster: EmulatedCluster | RealCluster | None, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """An admin kubeconfig for the session's cluster, or JWKS_E2E_KUBECONFIG (CRD applied)."""
    if cluster is not None:
        return cluster.write_kubeconfig(tmp_path_factory.mktemp("kube") / "kubeconfig")
    path = Path(os.environ["JWKS_E2E_KUBECONFIG"]).expanduser()
    api = config.new_client_from_config(str(path))  # type: ignore[no-untyped-call]
    ext: Any = client.ApiextensionsV1Api(api)
    for crd in load_crds(ROOT / "crds"):
        try:
            ext.create_custom_resource_definition(crd)
        except ApiException as exc:
            if exc.status != 409:
                raise
    time.sleep(2)  # let the API server establish the CRD
    return path


@pytest.fixture(scope="session")
def operator_kubeconfig(
    cluster: EmulatedCluster | RealCluster | None, kubeconfig: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """What the operator runs with: on the real control plane, the ServiceAccount and RBAC of deploy/
    (a token from the TokenRequest API), so every request is authorized as in a cluster."""
    if not isinstance(cluster, RealCluster):
        return kubeconfig
    kubectl(kubeconfig, "apply", "--server-side", "-f", str(ROOT / "deploy" / "namespace.yaml"))
    kubectl(kubeconfig, "apply", "--server-side", "-f", str(ROOT / "deploy" / "rbac.yaml"))
    path = tmp_path_factory.mktemp("operator-sa") / "kubeconfig"
    return cluster.service_account_kubeconfig(OPERATOR_NAMESPACE, OPERATOR_SA, path)


@pytest.fixture(scope="session")
def kube(kubeconfig: Path) -> ClusterClient:
    return ClusterClient.from_kubeconfig(kubeconfig)


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def ca_bundle(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tls") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


@pytest.fixture(scope="session")
def operator(
    operator_kubeconfig: Path, ca_bundle: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    """One operator for the session, trusting the test CA, refreshing at least every second."""
    workdir = tmp_path_factory.mktemp("operator")
    with trusting_operator(operator_kubeconfig, workdir, ca_bundle, OPERATOR_ARGS, metrics=True) as proc:
        yield proc


@pytest.fixture
def ns(kube: ClusterClient, operator: OperatorProcess) -> Iterator[str]:
    """A fresh namespace per test (the operator is running)."""
    with kube.namespace("t") as name:
        yield name


@pytest.fixture
def examples() -> dict[str, list[dict[str, Any]]]:
    """The YAML documents of every file in examples/, by file name."""
    return {
        p.name: list(yaml.safe_load_all(p.read_text())) for p in sorted((ROOT / "examples").glob("*.yaml"))
    }
