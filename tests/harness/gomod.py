"""Files of other projects, taken at test time from their published Go modules (never committed).

`go mod download` fetches a module at a pinned version through the Go module proxy into Go's module
cache; tests read CRDs (Envoy Gateway's SecurityPolicy, prometheus-operator's ServiceMonitor, Istio's
RequestAuthentication, Kong's KongConsumer) from it. `istio_validator()` builds tests/gateways/istio,
which judges a RequestAuthentication with istiod's own validation webhook code; `istio_envoy()` builds
tests/gateways/istio-envoy, which prints the Envoy HTTP filters istiod generates for RequestAuthentications
and AuthorizationPolicies (the Envoy tier, tests/envoy).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml
from tools.control_plane import go_binary

ENVOY_GATEWAY = ("github.com/envoyproxy/gateway", "v1.9.1")
PROMETHEUS_OPERATOR = ("github.com/prometheus-operator/prometheus-operator", "v0.85.0")
ISTIO_API = ("istio.io/api", "v1.32.0")
KONG_CONFIGURATION = ("github.com/kong/kubernetes-configuration", "v1.5.3")  # v2 is not served here
# istio.io/istio has no semver tags: a master commit, as pinned by tests/gateways/istio/go.mod
ISTIO = ("istio.io/istio", "v0.0.0-20260827124520-eed52ebb66ad")
ISTIO_VALIDATOR_SOURCE = Path(__file__).resolve().parents[1] / "gateways" / "istio"
ISTIO_ENVOY_SOURCE = Path(__file__).resolve().parents[1] / "gateways" / "istio-envoy"
GATEWAY_TOOLS = Path(__file__).resolve().parents[2] / ".tools" / "gateways"


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


def istio_crds(*kinds: str) -> list[dict[str, Any]]:
    """Istio's CRDs of these kinds (e.g. RequestAuthentication: security.istio.io, v1 served and stored)."""
    docs = crds(ISTIO_API, "kubernetes/customresourcedefinitions.gen.yaml")
    return [d for d in docs if d["spec"]["names"]["kind"] in kinds]


def request_authentication_crd() -> list[dict[str, Any]]:
    """Istio's RequestAuthentication CRD."""
    return istio_crds("RequestAuthentication")


def kong_consumer_crd() -> list[dict[str, Any]]:
    """Kong's KongConsumer CRD (configuration.konghq.com/v1), as Kong Ingress Controller v3 installs it."""
    return crds(
        KONG_CONFIGURATION, "config/crd/ingress-controller/configuration.konghq.com_kongconsumers.yaml"
    )


def kong_crds(*plurals: str) -> list[dict[str, Any]]:
    """Kong Ingress Controller's CRDs of these plurals (e.g. kongconsumers, kongplugins)."""
    files = [f"config/crd/ingress-controller/configuration.konghq.com_{p}.yaml" for p in plurals]
    return crds(KONG_CONFIGURATION, *files)


def gateway_crds() -> list[dict[str, Any]]:
    """Every gateway CRD the outputs and the guides use: Istio's RequestAuthentication and
    AuthorizationPolicy, Envoy Gateway's SecurityPolicy, Kong's KongConsumer and KongPlugin."""
    return [
        *istio_crds("RequestAuthentication", "AuthorizationPolicy"),
        *security_policy_crd(),
        *kong_crds("kongconsumers", "kongplugins"),
    ]


@functools.cache
def istio_validator() -> Path:
    """tests/gateways/istio's `istio-validate`, built once per go.mod + go.sum + main.go (go_program)."""
    return go_program(ISTIO_VALIDATOR_SOURCE, "istio-validate")


@functools.cache
def istio_envoy() -> Path:
    """tests/gateways/istio-envoy's `istio-envoy`, built once per go.mod + go.sum + main.go (go_program)."""
    return go_program(ISTIO_ENVOY_SOURCE, "istio-envoy")


def go_program(source: Path, name: str) -> Path:
    """The Go program in `source`, built once per go.mod + go.sum + main.go into .tools/gateways.

    A cold build compiles ~1,500 packages of Istio and Kubernetes (minutes); a later one reuses the binary
    or Go's build cache. It builds under a temporary name and is renamed when done, so an interrupted
    build is never taken for a finished one. `-mod=readonly`: the committed go.sum pins every module.
    """
    digest = hashlib.sha256()
    for part in ("go.mod", "go.sum", "main.go"):
        digest.update(f"{part}\0".encode() + (source / part).read_bytes() + b"\0")
    target = GATEWAY_TOOLS / f"{name}-{digest.hexdigest()[:16]}"
    if target.is_file():
        return target
    GATEWAY_TOOLS.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
    env = {
        **os.environ,
        "CGO_ENABLED": "0",
        "GOFLAGS": f"{os.environ.get('GOFLAGS', '')} -mod=readonly -buildvcs=false".strip(),
    }
    command = [go_binary(), "build", "-trimpath", "-o", str(partial), "."]
    started = time.monotonic()
    done = subprocess.run(
        command,
        cwd=source,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=3600,
    )
    if done.returncode:
        partial.unlink(missing_ok=True)
        raise RuntimeError(f"building {name} failed:\n{done.stderr[-4000:]}")
    os.replace(partial, target)
    print(f"built {target} in {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
    return target


if __name__ == "__main__":  # `make test-real` and `make test-envoy` fetch and build before the tests start
    if sys.argv[1:] == ["envoy"]:  # the Envoy tier: the gateway CRDs, Envoy Gateway's test data, istio-envoy
        for module in (ENVOY_GATEWAY, ISTIO_API, KONG_CONFIGURATION):
            print(module_dir(*module))
        print(istio_envoy())
    else:
        for module in (ENVOY_GATEWAY, PROMETHEUS_OPERATOR, ISTIO_API, KONG_CONFIGURATION, ISTIO):
            print(module_dir(*module))
        print(istio_validator())  # a cold build takes minutes: not inside a test's timeout
