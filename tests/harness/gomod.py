"""Files of other projects, taken at test time from their published Go modules (never committed).

`go mod download` fetches a module at a pinned version through the Go module proxy into Go's module
cache; tests read CRDs (Envoy Gateway's SecurityPolicy, prometheus-operator's ServiceMonitor) from it.
"""

from __future__ import annotations

import functools
import json
import subprocess
from pathlib import Path
from typing import Any

import yaml
from tools.control_plane import go_binary

ENVOY_GATEWAY = ("github.com/envoyproxy/gateway", "v1.9.1")
PROMETHEUS_OPERATOR = ("github.com/prometheus-operator/prometheus-operator", "v0.85.0")


@functools.cache
def module_dir(path: str, version: str) -> Path:
    """The extracted module in Go's module cache (downloaded on first use)."""
    command = [go_binary(), "mod", "download", "-json", f"{path}@{version}"]
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=600)
    info = json.loads(done.stdout or "{}")
    if done.returncode or "Dir" not in info:
        raise RuntimeError(f"go mod download {path}@{version} failed: {info.get('Error') or done.stderr}")
    return Path(info["Dir"])


def crds(module: tuple[str, str], *files: str) -> list[dict[str, Any]]:
    """The CustomResourceDefinitions in these files of a module."""
    root = module_dir(*module)
    docs = [d for name in files for d in yaml.safe_load_all((root / name).read_text()) if d]
    return [d for d in docs if d.get("kind") == "CustomResourceDefinition"]


def security_policy_crd() -> list[dict[str, Any]]:
    """Envoy Gateway's SecurityPolicy CRD."""
    return crds(
        ENVOY_GATEWAY,
        "charts/gateway-helm/charts/crds/crds/generated/gateway.envoyproxy.io_securitypolicies.yaml",
    )


def service_monitor_crd() -> list[dict[str, Any]]:
    """prometheus-operator's ServiceMonitor CRD."""
    return crds(
        PROMETHEUS_OPERATOR, "example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml"
    )


if __name__ == "__main__":  # `make test-real` fetches them before the tests' timeouts start
    for module in (ENVOY_GATEWAY, PROMETHEUS_OPERATOR):
        print(module_dir(*module))
