"""The real tier's own tests: what only a real control plane can decide (tests/harness/control_plane.py).

They run with `JWKS_BACKEND=real` (`make test-real`, part of `make test`) and are deselected, not
skipped, on the emulator and on a user's cluster (JWKS_E2E_KUBECONFIG).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.harness.control_plane import RealCluster


@pytest.fixture
def real(cluster: RealCluster | None) -> RealCluster:
    """The session's real control plane."""
    assert isinstance(cluster, RealCluster), "the real tier needs JWKS_BACKEND=real"
    return cluster


@pytest.fixture
def admin(real: RealCluster, tmp_path: Path) -> Path:
    """An admin kubeconfig for kubectl and helm."""
    return real.write_kubeconfig(tmp_path / "admin.kubeconfig")
