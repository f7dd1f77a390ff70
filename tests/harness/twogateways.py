"""A namespace whose JwtSecret feeds both gateways through the operator: an Istio sidecar that requires a
principal of the issuer, and an Envoy Gateway route whose SecurityPolicy lets JwtSecrets in; each gateway
an Envoy fed by its control plane (planes.py). Used by the Envoy tier and benchmarks/gateway.py."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.harness.client import ClusterClient, wait_for
from tests.harness.envoy import Envoy
from tests.harness.planes import ENVOY_GATEWAY, ISTIO, EnvoyGatewayPlane, IstioPlane, Pusher

ISSUER = "https://idp.test"
AUDIENCE = "shop-api"
LABELS = {"app": "shop"}
ALLOW = {"jwks.dev/allow-jwtsecrets": "*"}
PATIENCE = 30.0


def outputs() -> list[dict[str, Any]]:
    """The JwtSecret's gateway outputs: Istio (a RequestAuthentication it creates) and Envoy Gateway."""
    return [
        {"istio": {"name": "shop", "selector": {"matchLabels": dict(LABELS)}}},
        {"envoyGateway": {"securityPolicy": "shop"}},
    ]


def platform(kube: ClusterClient, ns: str) -> None:
    """What a platform team made before any JwtSecret: the SecurityPolicy of the route (allowing
    JwtSecrets in) and the AuthorizationPolicy that makes Istio require a token of the issuer."""
    kube.custom.create_namespaced_custom_object(
        *ENVOY_GATEWAY[:2],
        ns,
        ENVOY_GATEWAY[2],
        {
            "apiVersion": "gateway.envoyproxy.io/v1alpha1",
            "kind": "SecurityPolicy",
            "metadata": {"name": "shop", "annotations": ALLOW},
            "spec": {
                "targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": "shop"}]
            },
        },
    )
    kube.custom.create_namespaced_custom_object(
        *ISTIO,
        ns,
        "authorizationpolicies",
        {
            "apiVersion": "security.istio.io/v1",
            "kind": "AuthorizationPolicy",
            "metadata": {"name": "shop-require-jwt"},
            "spec": {
                "selector": {"matchLabels": dict(LABELS)},
                "action": "ALLOW",
                "rules": [{"from": [{"source": {"requestPrincipals": [f"{ISSUER}/*"]}}]}],
            },
        },
    )


def outputs_ready(kube: ClusterClient, ns: str, name: str) -> bool:
    status = kube.get(ns, name).get("status") or {}
    outputs = status.get("outputs") or []
    return len(outputs) == 2 and all(o["conditions"][0]["status"] == "True" for o in outputs)


@dataclass
class Gateways:
    """Both gateways of a namespace, each an Envoy fed by its control plane."""

    istio: Pusher
    envoy_gateway: Pusher

    def sync(self) -> None:
        self.istio.sync()
        self.envoy_gateway.sync()

    def __iter__(self) -> Iterator[tuple[str, Pusher]]:
        yield "istio", self.istio
        yield "envoy-gateway", self.envoy_gateway


@contextlib.contextmanager
def gateways(kube: ClusterClient, ns: str, workdir: Path) -> Iterator[Gateways]:
    """An Istio sidecar's Envoy and an Envoy Gateway route's Envoy, started from what the cluster holds."""
    with Envoy(workdir / "istio") as istio, Envoy(workdir / "envoy-gateway") as envoy_gateway:
        yield Gateways(
            Pusher(IstioPlane(kube, ns, LABELS), istio).start(),
            Pusher(EnvoyGatewayPlane(kube, ns, "shop"), envoy_gateway).start(),
        )


def published(kube: ClusterClient, ns: str, name: str) -> None:
    """Wait until the JwtSecret is Ready with both outputs written."""
    kube.wait_condition(ns, name, timeout=PATIENCE)
    wait_for(lambda: outputs_ready(kube, ns, name), PATIENCE, f"both outputs of {ns}/{name} ready")
