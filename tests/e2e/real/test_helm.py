"""`helm install` of the chart on a real control plane, once per values scenario of tests/deploy, and
the operator run out of cluster as the chart's ServiceAccount (a TokenRequest token) with the
Deployment's own args: every object is accepted, the operator makes a JwtSecret Ready with no request
refused by RBAC, and `helm uninstall` keeps the CRD and the users' JwtSecrets. A ClusterRole with one
rule removed makes the same check fail (the check can fail).

Runs on its own cluster: the chart creates its CRDs and cluster-wide RBAC, and no other operator runs.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.render import CHART
from tests.deploy.scenarios import SCENARIOS
from tests.harness.backend import Call, operator_requests
from tests.harness.client import ClusterClient, wait_for
from tests.harness.control_plane import RealCluster
from tests.harness.gomod import service_monitor_crd
from tests.harness.operator import OperatorProcess
from tests.harness.tools import kubectl, run
from tests.material import ec_key, public_jwk

RELEASE = NAMESPACE = "jwks-operator"
SA_USER = f"system:serviceaccount:{NAMESPACE}:{RELEASE}"
Obj = dict[str, Any]


@pytest.fixture(scope="module")
def helm_cluster(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[RealCluster, Path, ClusterClient]]:
    """A cluster without our CRD (the chart brings it), with the namespaces the scenarios name."""
    workdir = tmp_path_factory.mktemp("helm-cluster")
    with RealCluster(workdir, service_monitor_crd()) as cluster:
        admin = cluster.write_kubeconfig(workdir / "admin.kubeconfig")
        for ns in ("team-a", "team-b", "apps"):
            kubectl(admin, "create", "namespace", ns)
        yield cluster, admin, ClusterClient(cluster.api_client(workdir / "client.kubeconfig"))


def helm(admin: Path, *args: str, values: Obj | None = None) -> str:
    stdin = yaml.safe_dump(values) if values is not None else None
    result = run("helm", *args, "--kubeconfig", str(admin), "--namespace", NAMESPACE, stdin=stdin)
    assert result.returncode == 0, f"helm {' '.join(args)}: {result.stderr}"
    return result.stdout


def chart_args(admin: Path) -> list[str]:
    """The installed Deployment's container args, less the ports the test picks itself."""
    deployment = yaml.safe_load(kubectl(admin, "get", "deployment", "-n", NAMESPACE, RELEASE, "-o", "yaml"))
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return [a for a in container["args"] if not a.startswith(("--liveness=", "--metrics-port="))]


def denied(cluster: RealCluster) -> list[Call]:
    """Requests of the chart's ServiceAccount that authorization refused."""
    return [c for c in operator_requests(cluster, SA_USER) if c.forbidden]


def as_chart(cluster: RealCluster, admin: Path, tmp: Path, name: str) -> OperatorProcess:
    """The operator as the chart's ServiceAccount, with its Deployment's args (enter it to start it)."""
    kubeconfig = cluster.service_account_kubeconfig(NAMESPACE, RELEASE, tmp / f"{name}.kubeconfig")
    return OperatorProcess(kubeconfig, tmp / f"{name}.log", args=chart_args(admin), env={"POD_ID": name})


def create(admin: Path, ns: str, name: str) -> None:
    """A JwtSecret with one static EC key, applied by kubectl. As JSON: in YAML an unquoted EC member
    `y` is read by kubectl (YAML 1.1) as the boolean true, and the key loses its y coordinate."""
    jwks = {"keys": [public_jwk(ec_key(), kid=name)]}
    body = {"apiVersion": "jwks.dev/v1alpha1", "kind": "JwtSecret", "metadata": {"name": name},
            "spec": {"static": {"jwks": jwks}, "audiences": ["api"]}}  # fmt: skip
    kubectl(admin, "apply", "--server-side", "-n", ns, "-f", "-", stdin=json.dumps(body))


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_install_run_as_the_chart_and_uninstall(
    scenario: str, helm_cluster: tuple[RealCluster, Path, ClusterClient], tmp_path: Path
) -> None:
    cluster, admin, kube = helm_cluster
    values = SCENARIOS[scenario]
    refused_before = len(denied(cluster))
    helm(admin, "install", RELEASE, str(CHART), "--create-namespace", "--values", "-", values=values)
    try:
        manifest = [d for d in yaml.safe_load_all(helm(admin, "get", "manifest", RELEASE)) if d]
        for doc in manifest:  # every object of the release is stored
            group = doc["apiVersion"].rpartition("/")[0]
            kind = f"{doc['kind']}.{group}" if group else doc["kind"]
            where = doc["metadata"].get("namespace", NAMESPACE)
            kubectl(admin, "get", "-n", where, kind, doc["metadata"]["name"])
        ns = (values.get("watchNamespaces") or ["apps"])[0]
        name = f"app-{scenario}"
        with as_chart(cluster, admin, tmp_path, name) as operator:
            create(admin, ns, name)
            ready = kube.wait_condition(ns, name, timeout=30)
            assert ready["status"]["keyCount"] == 1
            assert kube.configmap(ns, f"{name}-jwks").data["jwks.json"]
            assert operator.process is not None
        assert not denied(cluster)[refused_before:], denied(cluster)[refused_before:][:5]
    finally:  # a failed scenario must not leave its release behind for the next one
        helm(admin, "uninstall", RELEASE)
    crds = kubectl(admin, "get", "crd", "-o", "name")
    assert "jwtsecrets.jwks.dev" in crds, "helm uninstall deleted the CRD"
    assert kube.get(ns, name)["spec"]["audiences"] == ["api"], "the user's JwtSecret is gone"
    assert kube.configmap(ns, f"{name}-jwks").data, "the published keys went with the chart"


def test_a_removed_rule_is_refused_and_detected(
    helm_cluster: tuple[RealCluster, Path, ClusterClient], tmp_path: Path
) -> None:
    """Without `create` on ConfigMaps the operator cannot publish: the API server refuses it, the
    JwtSecret does not become Ready, and the no-refusal check used above reports it."""
    cluster, admin, kube = helm_cluster
    helm(admin, "install", RELEASE, str(CHART), "--create-namespace", "--values", "-", values={})
    try:
        role = yaml.safe_load(kubectl(admin, "get", "clusterrole", RELEASE, "-o", "yaml"))
        for rule in role["rules"]:
            if rule["resources"] == ["configmaps"]:
                rule["verbs"] = [v for v in rule["verbs"] if v != "create"]
        role["metadata"] = {"name": RELEASE}
        kubectl(admin, "replace", "-f", "-", stdin=yaml.safe_dump(role))
        before = len(denied(cluster))
        with as_chart(cluster, admin, tmp_path, "crippled"):
            create(admin, "apps", "crippled")
            refused = wait_for(lambda: denied(cluster)[before:], 30, "a refused request")
            ready = kube.condition("apps", "crippled")
            assert ready is None or ready["status"] != "True", ready
        assert {(c.resource, c.verb) for c in refused} == {("configmaps", "create")}, refused
    finally:
        helm(admin, "uninstall", RELEASE)
