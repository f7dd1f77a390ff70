"""Fault suite fixtures: an emulated cluster that injects faults, and one operator process for it.

Faults are injected into the emulator (tests/harness/k8s/ `ApiServer.inject`), so this suite runs on
the emulator only. The last line of the run is the tally from tests/faults/summary.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from tests.faults.summary import SUMMARY, line
from tests.harness import ROOT
from tests.harness.client import ClusterClient
from tests.harness.k8s import EmulatedCluster, load_crds
from tests.harness.operator import OperatorProcess, trusting_operator

# Short retries and API timeouts so that each fault costs a second or two.
OPERATOR_ARGS = [
    "--min-interval", "1", "--fallback-interval", "2", "--retry-base", "0.5", "--retry-max", "2",
    "--fetch-timeout", "2", "--fetch-deadline", "3", "--api-timeout", "2", "--resync-interval", "3",
    "--allow-private-networks",
]  # fmt: skip


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if SUMMARY:
        terminalreporter.write_line(line())


@pytest.fixture(scope="session")
def fault_ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def fault_cluster() -> Iterator[EmulatedCluster]:
    with EmulatedCluster(crds=load_crds(ROOT / "crds")) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def fault_kubeconfig(fault_cluster: EmulatedCluster, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fault_cluster.write_kubeconfig(tmp_path_factory.mktemp("faults") / "kubeconfig")


@pytest.fixture(scope="session")
def fault_kube(fault_kubeconfig: Path) -> ClusterClient:
    return ClusterClient.from_kubeconfig(fault_kubeconfig)


@pytest.fixture(scope="session")
def fault_operator(
    fault_kubeconfig: Path, fault_ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    workdir = tmp_path_factory.mktemp("fault-operator")
    bundle = workdir / "ca.pem"
    fault_ca.cert_pem.write_to_path(str(bundle))
    with trusting_operator(fault_kubeconfig, workdir, bundle, OPERATOR_ARGS) as proc:
        yield proc


@pytest.fixture
def fault_ns(fault_kube: ClusterClient, fault_operator: OperatorProcess) -> Iterator[str]:
    with fault_kube.namespace("f") as name:
        yield name
