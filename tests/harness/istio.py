"""Istio's translation of RequestAuthentications and AuthorizationPolicies into Envoy HTTP filters, by
istiod's own code: tests/gateways/istio-envoy (built by tests/harness/gomod.py) generates the sidecar
listeners istiod would push for a workload and prints the jwt_authn and rbac filters of its inbound HTTP
chains."""

from __future__ import annotations

import json
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tests.harness.envoy import GatewayConfig
from tests.harness.gomod import istio_envoy

KUBECTL_FIELDS = ("apiVersion", "kind", "metadata", "spec")


def istio_config(
    objects: Sequence[Mapping[str, Any]], namespace: str, labels: Mapping[str, str]
) -> GatewayConfig:
    """The HTTP filters istiod gives a sidecar of `namespace` with `labels` for these objects
    (RequestAuthentications, AuthorizationPolicies as the API server returns them); AssertionError
    carrying istio-envoy's message when it refuses them."""
    with tempfile.TemporaryDirectory(prefix="istio-envoy-") as folder:
        paths = []
        for index, obj in enumerate(objects):
            path = Path(folder) / f"{index}.json"
            path.write_text(json.dumps({k: obj[k] for k in KUBECTL_FIELDS if k in obj}))
            paths.append(str(path))
        selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        done = subprocess.run(
            [str(istio_envoy()), "-namespace", namespace, "-labels", selector, *paths],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    if done.returncode:
        raise AssertionError(f"istio-envoy refused the objects ({done.returncode}): {done.stderr.strip()}")
    out = json.loads(done.stdout)
    return GatewayConfig(tuple(out["http_filters"]))
