"""Scale out (issue #26): two releases of the chart on one real control plane, with disjoint
`watchNamespaces` (README.md, "Scale out: several releases").

Release A installs the CRD, release B (with Kopf peering: replicaCount 2) finds it installed and leaves
it out. Each operator runs out of
cluster as its release's ServiceAccount (a TokenRequest token) with its Deployment's own args, as
tests/e2e/real/test_helm.py runs the chart. The audit log says who did what: every request in A's
namespaces is A's (none is B's, and the other way round), including the release of a JwtSecret with a
gateway output (the finalizer both operators name alike) on deletion; the API server refuses each
ServiceAccount the other's namespaces. `helm uninstall` of A, whose release installed the CRD, leaves the
CRD and everyone's JwtSecrets and ConfigMaps, and B goes on reconciling. A third release overlapping
either one is refused by `helm install`, naming the release it overlaps (unless `overlapCheck` is off), and
upgrades leave the release itself out of the check.

Runs on its own cluster: the chart creates its CRDs, and no other operator runs.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.client.exceptions import ApiException

from tests.deploy.render import CHART
from tests.harness.client import ClusterClient, wait_for
from tests.harness.control_plane import RealCluster, Request
from tests.harness.operator import OperatorProcess
from tests.harness.readme import PATIENCE, README, Shell, clone, newcomer_env, steps
from tests.harness.tools import kubectl, run
from tests.material import ec_key, public_jwk

Obj = dict[str, Any]
CRD = "jwtsecrets.jwks.dev"
# release name -> (its namespace, the namespaces it watches)
RELEASES = {"jwks-operator-a": ("ops-a", ["team-a1", "team-a2"]), "jwks-operator-b": ("ops-b", ["team-b1"])}
# B runs with Kopf peering (HA values): its KopfPeering and its leader are its own
EXTRA: dict[str, Obj] = {"jwks-operator-a": {}, "jwks-operator-b": {"replicaCount": 2, "peeringLifetime": 20}}
WRITES = {"create", "update", "patch", "delete"}


def sa_user(release: str) -> str:
    """The release's ServiceAccount as the API server names it: the release's name, which holds the
    chart's (the chart's full name)."""
    return f"system:serviceaccount:{RELEASES[release][0]}:{release}"


@pytest.fixture(scope="module")
def two_releases(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[RealCluster, Path, ClusterClient]]:
    """A cluster without our CRD, with each release's namespaces, and both releases installed."""
    workdir = tmp_path_factory.mktemp("scaleout")
    with RealCluster(workdir) as cluster:
        admin = cluster.write_kubeconfig(workdir / "admin.kubeconfig")
        for ns in ("team-a1", "team-a2", "team-b1", "team-c"):
            kubectl(admin, "create", "namespace", ns)
        for release, (namespace, watched) in RELEASES.items():
            installed = helm(admin, namespace, "install", release, "--create-namespace",
                             values={"watchNamespaces": watched, **EXTRA[release]})  # fmt: skip
            assert installed.returncode == 0, f"helm install {release}: {installed.stderr}"
        yield cluster, admin, ClusterClient(cluster.api_client(workdir / "client.kubeconfig"))


def helm(admin: Path, namespace: str, *args: str, values: Obj | None = None) -> Any:
    """`helm ARGS CHART` (install, upgrade) or `helm ARGS` (the rest) in `namespace`; the caller checks."""
    chart = [str(CHART), "--values", "-"] if args[0] in ("install", "upgrade") else []
    stdin = yaml.safe_dump(values or {}) if chart else None
    return run("helm", *args, *chart, "--kubeconfig", str(admin), "--namespace", namespace, stdin=stdin)


def as_release(cluster: RealCluster, admin: Path, tmp: Path, release: str) -> OperatorProcess:
    """The operator as the release's ServiceAccount, with its Deployment's args (enter it to start it)."""
    namespace = RELEASES[release][0]
    deployment = yaml.safe_load(kubectl(admin, "get", "deployment", "-n", namespace, release, "-o", "yaml"))
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    args = [a for a in container["args"] if not a.startswith(("--liveness=", "--metrics-port="))]
    kubeconfig = cluster.service_account_kubeconfig(namespace, release, tmp / f"{release}.kubeconfig")
    return OperatorProcess(kubeconfig, tmp / f"{release}.log", args=args, env={"POD_ID": release})


def create(admin: Path, ns: str, name: str, outputs: list[Obj] | None = None) -> None:
    """A JwtSecret with one static EC key (as JSON: kubectl reads a bare YAML `y` as true)."""
    spec: Obj = {"static": {"jwks": {"keys": [public_jwk(ec_key(), kid=name)]}}, "audiences": ["api"]}
    if outputs:
        spec["outputs"] = outputs
    body = {"apiVersion": "jwks.dev/v1alpha1", "kind": "JwtSecret", "metadata": {"name": name}, "spec": spec}
    kubectl(admin, "apply", "--server-side", "-n", ns, "-f", "-", stdin=json.dumps(body))


def by_operators(cluster: RealCluster) -> list[Request]:
    """Every audited request of either release's ServiceAccount."""
    users = {sa_user(release) for release in RELEASES}
    return [r for r in cluster.requests() if r.user in users]


def notes(admin: Path, release: str) -> str:
    """The release's NOTES as its last install or upgrade rendered them."""
    answer = helm(admin, RELEASES[release][0], "get", "notes", release)
    assert answer.returncode == 0, answer.stderr
    return str(answer.stdout)


def can_i(admin: Path, release: str, *args: str) -> bool:
    """`kubectl auth can-i ARGS --as` the release's ServiceAccount."""
    answer = kubectl(admin, "auth", "can-i", *args, "--as", sa_user(release), check=False)
    return answer.strip().splitlines()[0] == "yes"


def test_two_releases_with_disjoint_namespaces(
    two_releases: tuple[RealCluster, Path, ClusterClient], tmp_path: Path
) -> None:
    cluster, admin, kube = two_releases
    crd = yaml.safe_load(kubectl(admin, "get", "crd", CRD, "-o", "yaml"))
    assert crd["metadata"]["annotations"]["meta.helm.sh/release-name"] == "jwks-operator-a", (
        "A installed the CRD"
    )
    b_kinds = [
        d["kind"]
        for d in yaml.safe_load_all(helm(admin, "ops-b", "get", "manifest", "jwks-operator-b").stdout)
        if d
    ]
    assert "CustomResourceDefinition" not in b_kinds, "B must neither own nor delete the CRD"
    assert "already installed by release jwks-operator-a (namespace ops-a)" in notes(admin, "jwks-operator-b")
    assert not {"ClusterRole", "ClusterRoleBinding", "ClusterKopfPeering"} & set(b_kinds), b_kinds
    peerings = kubectl(admin, "get", "kopfpeerings", "-A", "-o", "jsonpath={.items[*].metadata.namespace}")
    assert peerings.split() == ["team-b1"], peerings

    names = {ns: f"app-{ns}" for _, watched in RELEASES.values() for ns in watched}
    released = {"team-a1": "out-a", "team-b1": "out-b"}  # JwtSecrets with a gateway output: a finalizer
    with (
        as_release(cluster, admin, tmp_path, "jwks-operator-a") as a,
        as_release(cluster, admin, tmp_path, "jwks-operator-b") as b,
    ):
        for ns, name in names.items():
            create(admin, ns, name)
        for ns, name in released.items():
            create(admin, ns, name, outputs=[{"nginx": {"name": f"{name}-jwk"}}])
        for ns, name in [*names.items(), *released.items()]:
            assert kube.wait_condition(ns, name, timeout=60)["status"]["keyCount"] == 1
            assert kube.configmap(ns, f"{name}-jwks").data["jwks.json"]
        for ns, name in released.items():
            assert "jwks.dev/release-outputs" in kube.get(ns, name)["metadata"]["finalizers"]
            kube.delete(ns, name)  # released by its own operator only: the other one never sees it
            wait_for(functools.partial(gone, kube, ns, name), 60, f"{ns}/{name} deleted")

        # who did what: every request in a release's namespaces is its own operator's, each of them
        # wrote there (status, ConfigMaps, finalizers), and neither asked anything cluster-wide
        requests = by_operators(cluster)
        for release, (_, watched) in RELEASES.items():
            theirs = [r for r in requests if r.namespace in watched and r.user != sa_user(release)]
            assert not theirs, f"another operator in {release}'s namespaces: {theirs[:3]}"
            writes = {
                (r.namespace, r.resource) for r in requests if r.user == sa_user(release) and r.verb in WRITES
            }
            for ns in watched:
                assert {(ns, "jwtsecrets/status"), (ns, "configmaps")} <= writes, (release, ns, writes)
        assert {
            (r.namespace, r.resource) for r in requests if r.resource == "jwtsecrets" and r.verb == "patch"
        } == {("team-a1", "jwtsecrets"), ("team-b1", "jwtsecrets")}, (
            "each finalizer set and taken off by its own operator"
        )
        assert not [r for r in requests if r.resource and not r.namespace], "a cluster-wide request"
        assert not [r for r in requests if r.decision == "forbid"], "a request refused by RBAC"

        # RBAC: each ServiceAccount is refused the other's namespaces, and anything cluster-wide
        for release, other in (("jwks-operator-a", "team-b1"), ("jwks-operator-b", "team-a1")):
            mine = RELEASES[release][1][0]
            for verb, resource in (
                ("list", "jwtsecrets.jwks.dev"),
                ("get", "configmaps"),
                ("create", "configmaps"),
            ):
                what = f"{release} may {verb} {resource}"
                assert can_i(admin, release, verb, resource, "-n", mine), f"{what} in {mine}: no"
                assert not can_i(admin, release, verb, resource, "-n", other), f"{what} in {other}"
                assert not can_i(admin, release, verb, resource, "--all-namespaces"), f"{what} cluster-wide"

        # a third release overlapping either one is refused, naming the release it overlaps
        for watched, overlapped in (
            (["team-c", "team-a2"], "jwks-operator-a"),
            ([], "jwks-operator-a"),
            (["team-b1"], "jwks-operator-b"),
        ):
            refused = helm(admin, "ops-c", "install", "jwks-operator-c", "--create-namespace",
                           values={"watchNamespaces": watched})  # fmt: skip
            assert refused.returncode != 0, f"an overlapping release {watched} was installed"
            assert f"overlaps release {overlapped} " in refused.stderr, refused.stderr
        unchecked = {"watchNamespaces": ["team-a2"], "overlapCheck": False}  # what refused them
        installed = helm(admin, "ops-c", "install", "jwks-operator-c", "--create-namespace", values=unchecked)
        assert installed.returncode == 0, installed.stderr
        assert helm(admin, "ops-c", "uninstall", "jwks-operator-c").returncode == 0

        # upgrades re-check the overlap, leaving the release itself out; B's notes warn while A would
        # delete the CRD on uninstall
        for keep in (False, True):
            for release, (namespace, watched) in RELEASES.items():
                values = {"watchNamespaces": watched, "crds": {"keep": keep}, **EXTRA[release]}
                upgraded = helm(admin, namespace, "upgrade", release, values=values)
                assert upgraded.returncode == 0, upgraded.stderr
            warned = "WARNING: that release installed it without crds.keep" in notes(admin, "jwks-operator-b")
            assert warned != keep, f"B's notes with crds.keep={keep} on A"

        # uninstalling A (whose release installed the CRD; its operator stops first, as its pod would)
        # leaves the CRD and everyone's JwtSecrets and ConfigMaps, and B goes on
        published = {ns: kube.configmap(ns, f"{name}-jwks").data for ns, name in names.items()}
        a.stop()
        uninstalled = helm(admin, "ops-a", "uninstall", "jwks-operator-a")
        assert uninstalled.returncode == 0, uninstalled.stderr
        assert CRD in kubectl(admin, "get", "crd", "-o", "name"), "helm uninstall of A deleted the CRD"
        for ns, name in names.items():
            assert kube.get(ns, name)["spec"]["audiences"] == ["api"], f"{ns}/{name} is gone"
            assert kube.configmap(ns, f"{name}-jwks").data == published[ns], f"{ns}/{name}-jwks changed"
        create(admin, "team-b1", "after")
        assert kube.wait_condition("team-b1", "after", timeout=60)["status"]["keyCount"] == 1
        assert b.process is not None
        assert b.process.poll() is None, "operator B stopped"
    assert helm(admin, "ops-b", "uninstall", "jwks-operator-b").returncode == 0


def gone(kube: ClusterClient, ns: str, name: str) -> bool:
    """Whether the JwtSecret is deleted (a 404)."""
    try:
        kube.get(ns, name)
    except ApiException as exc:
        if exc.status == 404:
            return True
        raise
    return False


def test_readme_scale_out_commands_as_written(tmp_path: Path) -> None:
    """README.md's "Scale out: several releases" commands, unchanged, on a fresh control plane: two
    releases deployed, each watching its namespaces, neither owning the CRD; a third overlapping one is
    refused with the message the README quotes."""
    (way,) = [step for step in steps("## Install") if step.title == "Scale out: several releases"]
    with RealCluster(tmp_path / "cluster") as cluster:
        kubeconfig = cluster.write_kubeconfig(tmp_path / "kubeconfig")
        shell = Shell(newcomer_env(kubeconfig, tmp_path), clone(tmp_path))
        try:
            out = shell.run(way.script, PATIENCE)
        finally:
            shell.close()
        assert out.count("STATUS: deployed") == 2, out
        for release, watched in (("jwks-operator-a", ["team-a", "team-b"]), ("jwks-operator-b", ["team-c"])):
            deployment = json.loads(
                kubectl(kubeconfig, "get", "deploy", "-n", release, release, "-o", "json")
            )
            (container,) = deployment["spec"]["template"]["spec"]["containers"]
            assert [a for a in container["args"] if a.startswith("--namespace")] == [
                f"--namespace={ns}" for ns in watched
            ]
            manifest = run("helm", "get", "manifest", release, "-n", release, "--kubeconfig", str(kubeconfig))
            assert "kind: CustomResourceDefinition" not in manifest.stdout, release
        overlapping = [
            "--set",
            "watchNamespaces={team-b}",
            "--create-namespace",
            "--kubeconfig",
            str(kubeconfig),
        ]
        third = run("helm", "install", "jwks-operator-c", str(CHART), "-n", "jwks-operator-c", *overlapping)
        assert third.returncode != 0, "the overlapping release was installed"
        quoted = re.search(
            r"`(watchNamespaces \[team-b\] overlaps.*?)`", " ".join(README.read_text().split())
        )
        assert quoted, "README.md quotes the overlap error"
        assert quoted.group(1) in third.stderr, third.stderr
