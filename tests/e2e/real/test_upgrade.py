"""A CRD upgrade that adds a field while JwtSecrets exist, on a real control plane (issue #27, item 6).

The chart is installed and the operator runs as its ServiceAccount (with the Deployment's own args) with
JwtSecrets Ready; then the JwtSecret CRD is upgraded to one with an extra optional spec field, the way
README.md's "Upgrades and uninstall" says for how it was installed:

- by the chart (the release installed it): `helm upgrade` of a newer chart whose CRD has the field;
- by kubectl before the chart (the Quick start's way; the chart left it alone): `kubectl apply
  --server-side -f crds/` of the newer CRD, and `helm upgrade` then leaves it as it is.

Either way: the existing JwtSecrets keep their spec, status and published ConfigMaps; the API server
keeps the new field (not pruned) on a JwtSecret that sets it; the running operator, whose watch the API
server restarts with the new schema, goes on reconciling old and new JwtSecrets.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.render import CHART
from tests.e2e.real.test_helm import RELEASE, as_chart, create, helm
from tests.harness import ROOT
from tests.harness.client import ClusterClient, wait_for
from tests.harness.control_plane import RealCluster
from tests.harness.tools import kubectl

CRD = "jwtsecrets.jwks.dev"
FIELD = "upgradeProbe"  # the field the newer CRD adds under spec


def newer(chart: Path, crds: Path) -> None:
    """A chart (and crds/) of a newer version: the CRD with one more optional spec field."""
    for path in (chart / "files" / f"{CRD}.yaml", crds / f"{CRD}.yaml"):
        crd = yaml.safe_load(path.read_text())
        spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
        spec["properties"][FIELD] = {"type": "string", "description": "A field a newer version adds."}
        path.write_text(yaml.safe_dump(crd, sort_keys=False))
    meta = yaml.safe_load((chart / "Chart.yaml").read_text())
    meta["version"] = "0.1.1"
    (chart / "Chart.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))


def served_fields(admin: Path) -> set[str]:
    crd = json.loads(kubectl(admin, "get", "crd", CRD, "-o", "json"))
    return set(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"])


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[RealCluster, Path, ClusterClient]]:
    """A control plane without our CRD, with namespace apps; an admin kubeconfig and client."""
    with RealCluster(tmp_path / "cluster") as real:
        admin = real.write_kubeconfig(tmp_path / "admin.kubeconfig")
        kubectl(admin, "create", "namespace", "apps")
        yield real, admin, ClusterClient(real.api_client(tmp_path / "client.kubeconfig"))


def snapshot(kube: ClusterClient, names: list[str]) -> dict[str, Any]:
    """What must not change: each JwtSecret's spec, generation and status, and its ConfigMap's data."""
    found = {}
    for name in names:
        obj = kube.get("apps", name)
        found[name] = (
            obj["spec"],
            obj["metadata"]["generation"],
            obj["status"],
            kube.configmap("apps", f"{name}-jwks").data,
        )
    return found


@pytest.mark.parametrize("installed_by", ["helm", "kubectl"])
@pytest.mark.timeout(300)
def test_a_crd_upgrade_that_adds_a_field_keeps_the_jwtsecrets_and_the_operator_working(
    installed_by: str, cluster: tuple[RealCluster, Path, ClusterClient], tmp_path: Path
) -> None:
    real, admin, kube = cluster
    chart, crds = tmp_path / "chart", tmp_path / "crds"
    shutil.copytree(CHART, chart)
    shutil.copytree(ROOT / "crds", crds)
    if installed_by == "kubectl":
        kubectl(admin, "apply", "--server-side", "-f", str(crds))
        kubectl(admin, "wait", "--for=condition=Established", f"crd/{CRD}")
    helm(admin, "install", RELEASE, str(chart), "--create-namespace")
    try:
        with as_chart(real, admin, tmp_path, "operator") as operator:
            for name in ("old-1", "old-2"):
                create(admin, "apps", name)
                kube.wait_condition("apps", name, timeout=30)
            before = snapshot(kube, ["old-1", "old-2"])
            assert FIELD not in served_fields(admin)

            newer(chart, crds)
            if installed_by == "kubectl":
                kubectl(admin, "apply", "--server-side", "-f", str(crds))
            helm(admin, "upgrade", RELEASE, str(chart))
            wait_for(lambda: FIELD in served_fields(admin), 30, "the upgraded CRD")
            owner = json.loads(kubectl(admin, "get", "crd", CRD, "-o", "json"))["metadata"]
            released = (owner.get("annotations") or {}).get("meta.helm.sh/release-name")
            assert released == (RELEASE if installed_by == "helm" else None), owner  # each tool its own

            assert snapshot(kube, ["old-1", "old-2"]) == before, "an existing JwtSecret changed"
            create(admin, "apps", "new")
            kube.patch_spec("apps", "new", {FIELD: "kept"})
            ready = kube.wait_condition("apps", "new", timeout=30)
            assert ready["spec"][FIELD] == "kept", "the API server pruned the new field"
            assert kube.configmap("apps", "new-jwks").data["jwks.json"]
            kube.patch_spec("apps", "old-1", {"audiences": ["api", "upgraded"]})
            changed = kube.wait_condition("apps", "old-1", timeout=30)  # observedGeneration caught up
            policy = json.loads(kube.configmap("apps", "old-1-jwks").data["policy.json"])
            assert policy["audiences"] == ["api", "upgraded"], changed["status"]
            assert operator.process is not None
            assert operator.process.poll() is None, operator.log()[-3000:]
    finally:
        helm(admin, "uninstall", RELEASE)
