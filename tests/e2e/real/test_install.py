"""The README's Install commands, run exactly as written after the Quick start, on a real control plane.

A newcomer runs the Quick start (tests/harness/readme.py reads its steps from the README, as
tests/e2e/test_quickstart.py does), cleans it up, and then installs in the cluster with the commands
of one `###` way of README.md's "## Install" section, unchanged (`REGISTRY` stays: the control plane
runs no pods, so no image is pulled). Each way gets a cluster of its own: both install the same objects.

- With Helm: `helm install` used to fail on the CRD the Quick start applied ("invalid ownership
  metadata", exit 1); the chart now leaves a CRD it did not install as it is.
- With plain manifests: applied, then applied again (a re-apply after any change). The README's old
  `kubectl set image` step made the re-apply fail with a field-manager conflict on the image.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.client import ClusterClient
from tests.harness.control_plane import RealCluster
from tests.harness.operator import free_port
from tests.harness.readme import (
    PATIENCE,
    Shell,
    Step,
    clone,
    newcomer_env,
    quick_start,
    quick_start_changes,
    run_steps,
    steps,
)
from tests.harness.tools import kubectl

NAMESPACE = DEPLOYMENT = "jwks-operator"
CONTAINER = "operator"
IMAGE = "REGISTRY/jwks-operator:0.1.0"  # what the README's commands name, with the chart's appVersion
CRD = "jwtsecrets.jwks.dev"


def install_way(title: str) -> Step:
    """One `###` way of README.md's Install section."""
    (way,) = [step for step in steps("## Install") if step.title == title]
    assert way.script, f"README's Install: {title!r} has no sh block"
    return way


@pytest.fixture
def after_quick_start(tmp_path: Path) -> Iterator[tuple[Shell, Path, ClusterClient]]:
    """A fresh control plane without the CRD on which a newcomer ran the whole Quick start (cleaned up)
    in a clone of the repository; their terminal, still open, at the clone's top folder."""
    with RealCluster(tmp_path / "cluster") as cluster:
        kubeconfig = cluster.write_kubeconfig(tmp_path / "kubeconfig")
        _, *run = quick_start()  # step 1 (pip install) is this suite's own virtualenv
        changes = quick_start_changes(f"quickstart-{uuid.uuid4().hex[:6]}", tmp_path / "scratch", free_port())
        shell = Shell(newcomer_env(kubeconfig, tmp_path), clone(tmp_path))
        try:
            run_steps(shell, run, changes)
            yield shell, kubeconfig, ClusterClient(cluster.api_client(tmp_path / "client.kubeconfig"))
        finally:
            shell.close()
            print(f"session:\n{shell.output([])}")


def image(kubeconfig: Path) -> str:
    deployment = json.loads(kubectl(kubeconfig, "get", "deploy", "-n", NAMESPACE, DEPLOYMENT, "-o", "json"))
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["name"] == CONTAINER
    return str(container["image"])


@pytest.mark.timeout(600)
def test_helm_install_as_written_after_the_quick_start(
    after_quick_start: tuple[Shell, Path, ClusterClient],
) -> None:
    shell, kubeconfig, _ = after_quick_start
    out = shell.run(install_way("With Helm").script, PATIENCE)
    assert "STATUS: deployed" in out, out
    assert "The JwtSecret CRD was already installed, not by this release" in out, out  # the notes
    status = shell.run(f"helm status {DEPLOYMENT} -n {NAMESPACE}", PATIENCE)
    assert "STATUS: deployed" in status, status  # as the README says it then does
    assert image(kubeconfig) == IMAGE
    crd = json.loads(kubectl(kubeconfig, "get", "crd", CRD, "-o", "json"))
    assert "meta.helm.sh/release-name" not in (crd["metadata"].get("annotations") or {}), crd["metadata"]
    manifest = shell.run(f"helm get manifest {DEPLOYMENT} -n {NAMESPACE}", PATIENCE)
    assert "kind: CustomResourceDefinition" not in manifest  # left out of the release, left as it was


@pytest.mark.timeout(600)
def test_plain_manifests_as_written_after_the_quick_start_and_again(
    after_quick_start: tuple[Shell, Path, ClusterClient],
) -> None:
    shell, kubeconfig, _ = after_quick_start
    way = install_way("With plain manifests")
    for attempt in ("apply", "re-apply"):
        out = shell.run(way.script, PATIENCE)
        assert out.count("serverside-applied") == 7, (attempt, out)  # one line per object, as it says
        assert image(kubeconfig) == IMAGE, attempt
    found = kubectl(
        kubeconfig, "get", "deploy", "-n", NAMESPACE, DEPLOYMENT, "-o", "json", "--show-managed-fields"
    )
    deployment = json.loads(found)
    managers = {(m["manager"], m["operation"]) for m in deployment["metadata"]["managedFields"]}
    assert ("kubectl", "Apply") in managers, managers
    assert not [m for m in managers if m[0] == "kubectl-set"], managers
