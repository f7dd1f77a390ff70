"""Render the Helm chart with the real `helm`, and write deploy/ (plain manifests) from it.

`python -m tests.deploy.render` rewrites deploy/ from helm/jwks-operator with default values, split by
purpose so that `kubectl apply -f deploy/` (files in name order) creates the CRD, the namespace, the
RBAC and then the workload. Helm-only metadata (helm.sh/chart and managed-by labels, the CRD's keep
policy) is left out. tests/deploy/test_chart.py fails when deploy/ differs from this rendering.

deploy/Kustomization lists the same files, so that deploy/ is also a kustomize base: an overlay sets
the image at render time (`images:`), which re-applies without a field-manager conflict, where
`kubectl set image` after `kubectl apply --server-side` does not (README.md, "With plain manifests").
Its name has no extension, so `kubectl apply -f deploy/` (which reads *.yaml, *.yml, *.json) skips it.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from tests.harness.tools import run

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "jwks-operator"
DEPLOY = ROOT / "deploy"
RELEASE = NAMESPACE = "jwks-operator"

FILE_OF_KIND = {
    "CustomResourceDefinition": "crds.yaml",
    "ServiceAccount": "rbac.yaml",
    "ClusterRole": "rbac.yaml",
    "ClusterRoleBinding": "rbac.yaml",
    "Deployment": "workload.yaml",
    "Service": "workload.yaml",
}
PURPOSE = {
    "crds.yaml": "The JwtSecret CRD (the same as crds/jwtsecrets.jwks.dev.yaml).",
    "namespace.yaml": "The operator's namespace; its pods meet the `restricted` Pod Security Standard.",
    "rbac.yaml": "ServiceAccount and least-privilege RBAC for watching all namespaces.",
    "workload.yaml": "The operator Deployment and its metrics Service.",
}
KUSTOMIZATION = "Kustomization"  # one of kustomize's file names; kubectl -f reads no file without extension
NAMESPACE_DOC = f"""---
apiVersion: v1
kind: Namespace
metadata:
  name: {NAMESPACE}
  labels:
    app.kubernetes.io/name: jwks-operator
    app.kubernetes.io/part-of: jwks-operator
    pod-security.kubernetes.io/enforce: restricted
"""
HELM_ONLY = re.compile(r"^ *(helm\.sh/chart: .*|app\.kubernetes\.io/managed-by: Helm)\n", re.MULTILINE)


def helm(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run helm; the caller checks the return code."""
    return run("helm", *args, stdin=stdin, timeout=60)


def template(values: Mapping[str, Any] | None = None, *flags: str) -> str:
    """`helm template` of the chart as release jwks-operator in namespace jwks-operator."""
    result = helm(
        "template", RELEASE, str(CHART), "--namespace", NAMESPACE, "--values", "-", *flags,
        stdin=yaml.safe_dump(dict(values or {})),
    )  # fmt: skip
    if result.returncode:
        raise RuntimeError(f"helm template failed: {result.stderr}")
    return result.stdout


def documents(text: str) -> list[dict[str, Any]]:
    """The objects of a multi-document YAML text."""
    return [doc for doc in yaml.safe_load_all(text) if doc]


def render_deploy() -> dict[str, str]:
    """deploy/'s files: name -> content."""
    chunks: dict[str, list[str]] = {name: [] for name in PURPOSE}
    chunks["namespace.yaml"].append(NAMESPACE_DOC)
    for chunk in re.split(r"^---\n", template({"crds": {"keep": False}}), flags=re.MULTILINE):
        doc = yaml.safe_load(chunk)
        if not doc:
            continue
        if doc["kind"] not in FILE_OF_KIND:
            raise RuntimeError(f"no deploy/ file for kind {doc['kind']}: add it to FILE_OF_KIND")
        chunks[FILE_OF_KIND[doc["kind"]]].append("---\n" + HELM_ONLY.sub("", chunk))
    header = "# Generated from helm/jwks-operator (default values): `python -m tests.deploy.render`.\n"
    files = {name: f"{header}# {PURPOSE[name]}\n" + "".join(parts) for name, parts in chunks.items()}
    files[KUSTOMIZATION] = (
        f"{header}# deploy/ as a kustomize base: an overlay with `resources: [../deploy]` sets the image\n"
        "# (`images:`). No extension, so that `kubectl apply -f deploy/` leaves this file out.\n"
        f"resources: [{', '.join(PURPOSE)}]\n"
    )
    return files


def main() -> None:
    for name, content in render_deploy().items():
        (DEPLOY / name).write_text(content)
        print(DEPLOY / name)


if __name__ == "__main__":
    main()
