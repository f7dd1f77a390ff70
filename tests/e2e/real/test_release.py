"""Deleting a JwtSecret with gateway outputs, on a real control plane of its own (issue #27, item 2).

The operator runs as deploy/'s ServiceAccount plus the rules the chart adds with
`outputs.envoyGateway.enabled` (none for Istio), on a cluster without any gateway's CRD:

- an `envoyGateway` output has a kind the API server does not serve: nothing of ours can be there, so
  the deletion goes through at once and an Event says why (before: Terminating forever, the release
  retried with a growing backoff and the status silent);
- an `istio` output the operator may not write (no RBAC): the deletion waits, the status says for what
  and why, and the README's command to remove the finalizer by hand frees it.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.client.exceptions import ApiException

from jwks_operator.model.names import GROUP, PLURAL, VERSION
from tests.conftest import OPERATOR_ARGS
from tests.deploy.render import documents, template
from tests.harness import ROOT
from tests.harness.backend import OPERATOR_NAMESPACE, OPERATOR_SA
from tests.harness.client import ClusterClient, wait_for
from tests.harness.control_plane import RealCluster
from tests.harness.k8s import load_crds
from tests.harness.operator import OperatorProcess
from tests.harness.readme import steps
from tests.harness.tools import kubectl, tool
from tests.material import ec_key, public_jwk

FINALIZER = "jwks.dev/release-outputs"
ROLE = "jwks-operator-envoy-gateway"


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, ClusterClient]]:
    """A cluster with our CRD and no gateway's, the operator running as deploy/'s ServiceAccount with
    the chart's Envoy Gateway rules; an admin kubeconfig and client."""
    workdir = tmp_path_factory.mktemp("release")
    with RealCluster(workdir / "cluster", load_crds(ROOT / "crds")) as cluster:
        admin = cluster.write_kubeconfig(workdir / "admin.kubeconfig")
        for name in ("namespace.yaml", "rbac.yaml"):
            kubectl(admin, "apply", "--server-side", "-f", str(ROOT / "deploy" / name))
        base = next(d for d in documents(template()) if d["kind"] == "ClusterRole")
        chart = documents(template({"outputs": {"envoyGateway": {"enabled": True}}}))
        role = next(d for d in chart if d["kind"] == "ClusterRole")
        extra = [rule for rule in role["rules"] if rule not in base["rules"]]
        assert extra, "the chart grants nothing for envoyGateway"
        assert all("gateway.envoyproxy.io" in r["apiGroups"] for r in extra), extra
        ref = {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": ROLE}
        subject = {"kind": "ServiceAccount", "name": OPERATOR_SA, "namespace": OPERATOR_NAMESPACE}
        rbac = [
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
             "metadata": {"name": ROLE}, "rules": extra},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
             "metadata": {"name": ROLE}, "roleRef": ref, "subjects": [subject]},
        ]  # fmt: skip
        kubectl(admin, "apply", "-f", "-", stdin=yaml.safe_dump_all(rbac))
        kubeconfig = cluster.service_account_kubeconfig(OPERATOR_NAMESPACE, OPERATOR_SA, workdir / "sa")
        kube = ClusterClient(cluster.api_client(workdir / "client.kubeconfig"))
        kubectl(admin, "create", "namespace", "apps")
        with OperatorProcess(kubeconfig, workdir / "operator.log", args=OPERATOR_ARGS) as operator:
            yield admin, kube
            print(f"operator log:\n{operator.log()}")


def jwtsecret(kube: ClusterClient, name: str, output: dict[str, Any]) -> None:
    spec = {
        "static": {"jwks": {"keys": [public_jwk(ec_key(), kid=name)]}},
        "audiences": ["api"],
        "issuers": ["https://idp.test/"],
        "outputs": [output],
    }
    kube.create("apps", name, spec)


def output_ready(kube: ClusterClient, name: str) -> dict[str, Any] | None:
    outputs = (kube.get("apps", name).get("status") or {}).get("outputs") or []
    found: dict[str, Any] | None = outputs[0]["conditions"][0] if outputs else None
    return found


def by_hand(admin: Path, name: str) -> subprocess.CompletedProcess[str]:
    """The README's command to remove the finalizer by hand, run as written but for the names."""
    (step,) = [s for s in steps("## Upgrades and uninstall") if "stuck in Terminating" in s.title]
    assert step.script.count("\n") == 1, step.script  # one command
    command = step.script.replace("NAMESPACE", "apps").replace("NAME", name)
    env = {**os.environ, "KUBECONFIG": str(admin), "PATH": f"{tool('kubectl').parent}:{os.environ['PATH']}"}
    return subprocess.run(["bash", "-c", command], env=env, capture_output=True, text=True, check=False)


def gone(kube: ClusterClient, name: str) -> bool:
    try:
        kube.get("apps", name)
    except ApiException as exc:
        return bool(exc.status == 404)
    return False


def test_an_output_whose_crd_is_not_installed_does_not_block_deletion(
    setup: tuple[Path, ClusterClient],
) -> None:
    _, kube = setup
    jwtsecret(kube, "edge", {"envoyGateway": {"securityPolicy": "edge"}})
    ready = wait_for(lambda: output_ready(kube, "edge"), 30, "the output's condition")
    assert (ready["status"], ready["reason"]) == ("False", "KindNotInstalled"), ready
    assert kube.get("apps", "edge")["metadata"]["finalizers"] == [FINALIZER]
    kube.delete("apps", "edge")
    wait_for(lambda: gone(kube, "edge"), 30, "the JwtSecret to be gone")
    notes = [e for e in kube.events("apps", "edge") if e.reason == "KindNotInstalled"]
    assert notes, [(e.reason, e.message) for e in kube.events("apps", "edge")]
    assert notes[0].type == "Normal"
    assert "does not serve SecurityPolicy" in notes[0].message, notes[0].message
    assert "nothing to take out" in notes[0].message


def test_a_stuck_release_says_why_and_the_readme_frees_it(setup: tuple[Path, ClusterClient]) -> None:
    admin, kube = setup
    jwtsecret(kube, "mesh", {"istio": {"name": "mesh"}})
    ready = wait_for(lambda: output_ready(kube, "mesh"), 30, "the output's condition")
    assert (ready["status"], ready["reason"]) == ("False", "Forbidden"), ready
    kube.delete("apps", "mesh")

    def waiting() -> dict[str, Any] | None:
        status = kube.get("apps", "mesh").get("status") or {}
        found: dict[str, Any] = next(
            (c for c in status.get("conditions") or [] if c["type"] == "Degraded"), {}
        )
        return found if found.get("reason") == "ReleaseFailed" else None

    degraded = wait_for(waiting, 30, "the status to say what the deletion waits for")
    assert degraded["message"].startswith(
        f"deletion waits until this JwtSecret's entries are out of istio/mesh (finalizer {FINALIZER}; "
    ), degraded["message"]
    assert "may not write RequestAuthentication" in degraded["message"], degraded["message"]
    warnings = [e for e in kube.events("apps", "mesh") if e.reason == "ReleaseBlocked"]
    assert warnings, [e.reason for e in kube.events("apps", "mesh")]
    assert warnings[0].type == "Warning"
    assert kube.get("apps", "mesh")["metadata"]["finalizers"] == [FINALIZER]

    done = by_hand(admin, "mesh")
    assert done.returncode == 0, done.stderr
    wait_for(lambda: gone(kube, "mesh"), 30, "the JwtSecret to be gone")


def test_the_finalizer_command_leaves_another_finalizer_alone(setup: tuple[Path, ClusterClient]) -> None:
    """The README's command removes ours only when it is the only one: its `test` step guards the rest."""
    admin, kube = setup
    kube.create("apps", "other", {"static": {"jwks": {"keys": [public_jwk(ec_key(), kid="o")]}}})
    both = {"metadata": {"finalizers": ["example.com/theirs", FINALIZER]}}
    kube.custom.patch_namespaced_custom_object(GROUP, VERSION, "apps", PLURAL, "other", both)
    done = by_hand(admin, "other")
    assert done.returncode != 0, done.stdout
    assert "request is invalid" in done.stderr, done.stderr  # 422: the `test` step did not hold
    # theirs stays; ours may go meanwhile: the running operator takes it off a JwtSecret without outputs
    assert kube.get("apps", "other")["metadata"]["finalizers"][0] == "example.com/theirs"
    none = {"metadata": {"finalizers": None}}
    kube.custom.patch_namespaced_custom_object(GROUP, VERSION, "apps", PLURAL, "other", none)
