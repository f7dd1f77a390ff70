"""The operator and the CRD, in either order, on a real control plane of its own (issue #27, item 3).

Kopf discovers what it watches once, at startup: an operator started before the CRD used to run on,
watching nothing, and a JwtSecret created after the CRD stayed untouched (91 s, and for ever). Now `run`
exits at once with status 2 and one line naming the missing CRD; started again once the CRD is there (as a
pod's restart does), it reconciles. With --peering, Kopf's peering CRD is checked the same way.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.harness import ROOT
from tests.harness.client import ClusterClient
from tests.harness.control_plane import RealCluster
from tests.harness.operator import OperatorProcess
from tests.harness.tools import kubectl
from tests.material import ec_key, public_jwk

CRD = "jwtsecrets.jwks.dev"


def run(kubeconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`jwks-operator run` as a user starts it; it must end by itself (the timeout fails the test)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_SERVICE")}
    return subprocess.run(
        [sys.executable, "-m", "jwks_operator", "run", *args],
        env={**env, "KUBECONFIG": str(kubeconfig)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_started_before_the_crd_it_exits_2_naming_it_and_after_it_works(tmp_path: Path) -> None:
    with RealCluster(tmp_path / "cluster") as cluster:
        admin = cluster.write_kubeconfig(tmp_path / "admin.kubeconfig")
        early = run(admin)
        assert early.returncode == 2, early.stderr[-2000:]
        assert early.stderr.strip().splitlines() == [
            f"jwks-operator: CRD {CRD}: not installed in the cluster at {cluster.url}; "
            "install it first: kubectl apply --server-side -f crds/"
        ], early.stderr

        kubectl(admin, "apply", "--server-side", "-f", str(ROOT / "crds"))
        kubectl(admin, "wait", "--for=condition=Established", f"crd/{CRD}")
        peering = run(admin, "--peering", "jwks-operator")
        assert peering.returncode == 2, peering.stderr[-2000:]
        assert peering.stderr.strip().splitlines() == [
            "jwks-operator: CRD clusterkopfpeerings.kopf.dev: not installed in the cluster at "
            f"{cluster.url}; install it first: kubectl apply --server-side -f helm/jwks-operator/crds/ "
            "(Kopf's peering CRDs)"
        ], peering.stderr

        kube = ClusterClient(cluster.api_client(tmp_path / "client.kubeconfig"))
        with OperatorProcess(admin, tmp_path / "operator.log"), kube.namespace("order") as ns:
            kube.create(
                ns, "api", {"static": {"jwks": {"keys": [public_jwk(ec_key(), kid="k")]}}, "audiences": ["a"]}
            )
            assert kube.wait_condition(ns, "api", timeout=30)["status"]["keyCount"] == 1
