"""The real `jwks-operator` process on what a user can fix: exit 2, one line on stderr, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.harness.client import ClusterClient
from tests.harness.k8s import EmulatedCluster
from tests.unit.app.test_cli import listening, one_line, unreachable_kubeconfig


def jwks_operator(*argv: str, kubeconfig: Path) -> tuple[int, str]:
    """Run the console entry point with this KUBECONFIG and no in-cluster environment; (status, stderr)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_SERVICE")}
    result = subprocess.run(
        [sys.executable, "-m", "jwks_operator", *argv],
        env={**env, "KUBECONFIG": str(kubeconfig)},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return result.returncode, result.stderr


@pytest.fixture
def unreachable(tmp_path: Path) -> tuple[Path, str]:
    """A kubeconfig whose API server is a closed loopback port, and that server's address."""
    return tmp_path / "kubeconfig", unreachable_kubeconfig(tmp_path / "kubeconfig")


@pytest.mark.parametrize("argv", [["run"], ["verify", "--token", "t", "--jwtsecret", "ns/api"]])
def test_no_kubeconfig_and_not_in_a_cluster(tmp_path: Path, argv: list[str]) -> None:
    code, err = jwks_operator(*argv, kubeconfig=tmp_path / "missing")
    assert code == 2
    assert one_line(err) == (
        f"jwks-operator: KUBECONFIG={tmp_path / 'missing'}: no such file, and not in a cluster; "
        "point KUBECONFIG at a kubeconfig file, or run in a pod with a ServiceAccount"
    )


@pytest.mark.parametrize("flag", ["--metrics-port", "--liveness"])
def test_run_with_a_port_in_use(unreachable: tuple[Path, str], flag: str) -> None:
    with listening() as busy:
        value = str(busy) if flag == "--metrics-port" else f"http://127.0.0.1:{busy}/healthz"
        code, err = jwks_operator("run", flag, value, kubeconfig=unreachable[0])
    assert code == 2
    assert one_line(err) == f"jwks-operator: {flag} {value}: address already in use; pick another port"


@pytest.mark.parametrize("flag", ["--jwtsecret", "--configmap"])
def test_verify_against_an_unreachable_api(unreachable: tuple[Path, str], flag: str) -> None:
    kubeconfig, server = unreachable
    code, err = jwks_operator("verify", "--token", "t", flag, "ns/api", kubeconfig=kubeconfig)
    assert code == 2
    assert one_line(err) == (
        f"jwks-operator: {flag} ns/api: cannot reach the Kubernetes API at {server} (connection refused); "
        "check that the cluster is up and that the kubeconfig names its address"
    )


@pytest.mark.parametrize(
    ("flag", "expected"),
    [
        (
            "--jwtsecret",
            "JwtSecret not found; check the namespace and the name (kubectl get jwtsecrets -n {ns})",
        ),
        (
            "--configmap",
            "ConfigMap not found; check the namespace and the name (kubectl get configmaps -n {ns})",
        ),
    ],
)
def test_verify_a_missing_object(kubeconfig: Path, kube: ClusterClient, flag: str, expected: str) -> None:
    with kube.namespace("cli") as ns:
        code, err = jwks_operator("verify", "--token", "t", flag, f"{ns}/absent", kubeconfig=kubeconfig)
    assert code == 2
    assert one_line(err) == f"jwks-operator: {flag} {ns}/absent: " + expected.format(ns=ns)


def test_verify_a_missing_directory(tmp_path: Path) -> None:
    code, err = jwks_operator("verify", "--token", "t", "--dir", str(tmp_path / "nope"), kubeconfig=tmp_path)
    assert code == 2
    assert one_line(err) == (
        f"jwks-operator: --dir {tmp_path / 'nope'}: no such directory; "
        "give the folder where the published ConfigMap or Secret is mounted"
    )


def test_bad_flag_value(tmp_path: Path) -> None:
    code, err = jwks_operator("run", "--metrics-port", "http", kubeconfig=tmp_path)
    assert code == 2
    assert (
        one_line(err)
        == "jwks-operator: --metrics-port http: not a port number; give a port number of 0 to 65535"
    )


def test_run_against_an_unreachable_api(unreachable: tuple[Path, str]) -> None:
    kubeconfig, server = unreachable
    code, err = jwks_operator("run", kubeconfig=kubeconfig)
    assert code == 2
    assert one_line(err) == (
        f"jwks-operator: CRD jwtsecrets.jwks.dev: cannot reach the Kubernetes API at {server} (connection "
        "refused); check that the cluster is up and that the kubeconfig names its address"
    )


@pytest.mark.emulator_only  # the real tier starts a control plane for it: tests/e2e/real/test_crd_order.py
def test_run_on_a_cluster_without_the_crd(tmp_path: Path) -> None:
    """Started before the CRD, the operator used to run on and never watch JwtSecrets."""
    with EmulatedCluster() as cluster:
        kubeconfig = cluster.write_kubeconfig(tmp_path / "kubeconfig")
        code, err = jwks_operator("run", kubeconfig=kubeconfig)
    assert code == 2
    assert one_line(err) == (
        f"jwks-operator: CRD jwtsecrets.jwks.dev: not installed in the cluster at {cluster.url}; "
        "install it first: kubectl apply --server-side -f crds/"
    )


def test_verify_reaches_the_cluster_its_kubeconfig_flag_names(
    kubeconfig: Path, kube: ClusterClient, tmp_path: Path
) -> None:
    """--kubeconfig and --context as kubectl takes them: here $KUBECONFIG names no file at all."""
    context = yaml.safe_load(kubeconfig.read_text())["current-context"]
    flags = ["--kubeconfig", str(kubeconfig), "--context", context]
    with kube.namespace("cli") as ns:
        code, err = jwks_operator(
            "verify", "--token", "t", "--configmap", f"{ns}/absent", *flags, kubeconfig=tmp_path / "none"
        )
    assert code == 2
    assert one_line(err) == (
        f"jwks-operator: --configmap {ns}/absent: ConfigMap not found; check the namespace and the name "
        f"(kubectl get configmaps -n {ns})"
    )
