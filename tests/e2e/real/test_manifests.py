"""What the real API server decides about our manifests: the CRD (structural schema, CEL cost
budget), deploy/, `kubectl explain` and printer columns, every example and every YAML block of the docs."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from jwks_operator.model.names import GROUP, PLURAL, VERSION
from tests.harness import ROOT
from tests.harness.client import ClusterClient, wait_for
from tests.harness.control_plane import RealCluster
from tests.harness.gomod import gateway_crds
from tests.harness.k8s import load_crds
from tests.harness.tools import kubectl, run
from tests.material import ec_key, public_jwk

CRD = load_crds(ROOT / "crds")[0]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_crds_and_deploy_apply_server_side(admin: Path) -> None:
    """Server-side apply of crds/ and then deploy/ (CRD, namespace, RBAC, workload): accepted, and no
    warning (the Deployment's pods would meet the namespace's `restricted` Pod Security Standard)."""
    for directory in ("crds", "deploy"):
        out = kubectl(
            admin, "apply", "--server-side", "--force-conflicts", "-f", str(ROOT / directory), check=False
        )
        assert "serverside-applied" in out, out
        assert "Warning" not in out, out
        assert "error" not in out.lower(), out
    crd = yaml.safe_load(kubectl(admin, "get", "crd", CRD["metadata"]["name"], "-o", "yaml"))
    conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
    assert conditions["Established"] == "True", conditions
    assert conditions["NamesAccepted"] == "True", conditions
    assert conditions.get("NonStructuralSchema") is None, conditions
    assert crd["status"]["acceptedNames"]["shortNames"] == CRD["spec"]["names"]["shortNames"]
    deployment = kubectl(admin, "get", "deployment", "-n", "jwks-operator", "jwks-operator", "-o", "name")
    assert deployment.strip() == "deployment.apps/jwks-operator"


def _descriptions(schema: dict[str, Any]) -> dict[str, str]:
    return {name: " ".join(sub["description"].split()) for name, sub in schema["properties"].items()}


def test_kubectl_explain_shows_descriptions(admin: Path) -> None:
    spec = CRD["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]

    # The API server publishes a CRD's OpenAPI schema a few seconds after it is Established.
    def explain() -> str | None:
        result = run("kubectl", "--kubeconfig", str(admin), "explain", "jwtsecret.spec.refresh")
        return result.stdout if result.returncode == 0 else None

    out = " ".join(wait_for(explain, 30, "kubectl explain").split())
    refresh = spec["properties"]["refresh"]
    assert " ".join(refresh["description"].split())[:60] in out, out
    for name, text in _descriptions(refresh).items():
        assert f" {name} " in out, (name, out)
        assert text[:50] in out, (name, out)
    recursive = kubectl(admin, "explain", "jwtsecrets.spec", "--recursive")
    for name in spec["properties"]:
        assert re.search(rf"^\s+{name}\s", recursive, re.MULTILINE), (name, recursive)


def test_get_wide_shows_the_printer_columns(admin: Path, kube: ClusterClient, ns: str) -> None:
    kube.create(
        ns, "cols", {"static": {"jwks": {"keys": [public_jwk(ec_key(), kid="k")]}}, "audiences": ["a"]}
    )
    kube.wait_condition(ns, "cols")
    columns = CRD["spec"]["versions"][0]["additionalPrinterColumns"]
    narrow, wide = (
        kubectl(admin, "get", "jwts", "-n", ns, *flags).splitlines() for flags in ([], ["-o", "wide"])
    )
    headers = [c["name"].upper() for c in columns]
    assert [h for h in headers if h in narrow[0]] == [
        c["name"].upper() for c in columns if not c.get("priority")
    ]
    assert all(h in wide[0] for h in headers), wide[0]
    row = dict(zip(re.split(r"\s{2,}", wide[0].strip()), re.split(r"\s{2,}", wide[1].strip()), strict=False))
    assert (row["NAME"], row["READY"], row["KEYS"]) == ("cols", "True", "1"), row
    assert row["SOURCE"].startswith("static"), row


def test_every_example_applies(admin: Path, kube: ClusterClient, ns: str) -> None:
    """Each file of examples/ (and examples/providers/) is created for real by kubectl."""
    files = sorted((ROOT / "examples").rglob("*.yaml"))
    assert len(files) >= 5
    for path in files:
        out = kubectl(admin, "apply", "--server-side", "-n", ns, "-f", str(path), check=False)
        assert "serverside-applied" in out, (path.name, out)
        assert "error" not in out.lower(), (path.name, out)
    names = {
        i["metadata"]["name"]
        for i in kube.custom.list_namespaced_custom_object(GROUP, VERSION, ns, PLURAL)["items"]
    }
    expected = {
        d["metadata"]["name"]
        for p in files
        for d in yaml.safe_load_all(p.read_text())
        if d and d["kind"] == "JwtSecret"
    }
    assert names == expected


def yaml_blocks() -> list[tuple[str, str]]:
    return [
        (page.name, body)
        for page in PAGES
        for body in re.findall(r"```yaml\n(.*?)```", page.read_text(), re.DOTALL)
    ]


def test_every_yaml_block_in_the_docs_applies(
    admin: Path, real: RealCluster, ns: str, tmp_path: Path
) -> None:
    """Every YAML block of README.md and docs/: JwtSecrets and Secrets are created; other kinds (Pods,
    the gateways' objects, with their CRDs from the gateways' Go modules) go through
    `--dry-run=server`, which runs admission and the schema without storing them."""
    real.install(gateway_crds())
    blocks = yaml_blocks()
    assert len(blocks) >= 8
    named = {
        d["metadata"]["namespace"]
        for _, b in blocks
        for d in yaml.safe_load_all(b)
        if d and "namespace" in d["metadata"]
    }
    for namespace in sorted(named):  # the namespaces the guides use, as their reader would have them
        kubectl(admin, "create", "namespace", namespace)
    kinds = set()
    for index, (page, body) in enumerate(blocks):
        docs = [d for d in yaml.safe_load_all(body) if d]
        kinds |= {d["kind"] for d in docs}
        stored = all(d["kind"] in {"JwtSecret", "Secret", "ConfigMap"} for d in docs)
        path = tmp_path / f"{index}.yaml"
        path.write_text(body)
        flags = [] if stored else ["--dry-run=server"]
        flags += [] if any("namespace" in d["metadata"] for d in docs) else ["-n", ns]
        out = kubectl(admin, "apply", "--server-side", *flags, "-f", str(path), check=False)
        assert "serverside-applied" in out, (page, body, out)
        assert "error" not in out.lower(), (page, body, out)
    gateways = {"SecurityPolicy", "AuthorizationPolicy", "KongConsumer", "KongPlugin"}
    assert {"JwtSecret", "Pod", "ConfigMap", *gateways} <= kinds, kinds
    for namespace in sorted(named):
        kubectl(admin, "delete", "namespace", namespace, "--wait=false")


def test_an_unquoted_ec_y_in_yaml_is_lost_by_kubectl(admin: Path, kube: ClusterClient, ns: str) -> None:
    """kubectl reads YAML 1.1, where a bare `y` key is the boolean true: the README says to quote it."""
    jwk = public_jwk(ec_key(), kid="k")
    manifest = yaml.safe_dump(
        {
            "apiVersion": "jwks.dev/v1alpha1",
            "kind": "JwtSecret",
            "metadata": {"name": "{name}"},
            "spec": {"static": {"jwks": {"keys": [jwk]}}, "audiences": ["api"]},
        }
    )
    assert "\n        y: " in manifest, manifest  # PyYAML (YAML 1.1 too) leaves it bare
    quoted = manifest.replace("\n        y: ", '\n        "y": ')
    for name, text in (("bare", manifest), ("quoted", quoted)):
        kubectl(admin, "apply", "-n", ns, "-f", "-", stdin=text.replace("'{name}'", name))
    lost = kube.wait_condition(ns, "bare", status="False")
    assert "'y'" in lost["status"]["lastError"], lost["status"]
    assert 'in YAML write "y": quoted' in lost["status"]["lastError"], lost["status"]  # the status says so
    assert kube.wait_condition(ns, "quoted")["status"]["keyCount"] == 1
