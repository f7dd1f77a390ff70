"""The control planes of the Envoy tier: read what the operator wrote, translate it as Istio or Envoy Gateway
does, and push it to an Envoy when it changed (an LDS push of a changed listener, as istiod and Envoy
Gateway push over xDS)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from kubernetes.client.exceptions import ApiException

from tests.harness.client import ClusterClient
from tests.harness.envoy import Envoy, GatewayConfig
from tests.harness.envoygateway import gateway_config
from tests.harness.istio import istio_config

ISTIO = ("security.istio.io", "v1")
ENVOY_GATEWAY = ("gateway.envoyproxy.io", "v1alpha1", "securitypolicies")


class Plane(Protocol):
    """A control plane's view of one route of one workload."""

    def config(self) -> GatewayConfig:
        """What it pushes to the gateway now."""
        ...


@dataclass(frozen=True)
class IstioPlane:
    """istiod for a sidecar of `namespace` with `labels`: every RequestAuthentication and
    AuthorizationPolicy of the namespace, through istiod's own translation (tests/harness/istio.py)."""

    kube: ClusterClient
    namespace: str
    labels: Mapping[str, str]

    def objects(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for plural in ("requestauthentications", "authorizationpolicies"):
            listed = self.kube.custom.list_namespaced_custom_object(*ISTIO, self.namespace, plural)
            found += sorted(listed["items"], key=lambda o: o["metadata"]["name"])
        return found

    def config(self) -> GatewayConfig:
        objects = self.objects()
        return istio_config(objects, self.namespace, self.labels) if objects else GatewayConfig()


@dataclass(frozen=True)
class EnvoyGatewayPlane:
    """Envoy Gateway for a route that SecurityPolicy `policy` targets: the policy and the ConfigMaps of its
    namespace, through Envoy Gateway's translation (tests/harness/envoygateway.py)."""

    kube: ClusterClient
    namespace: str
    policy: str

    def config(self) -> GatewayConfig:
        try:
            policy = self.kube.custom.get_namespaced_custom_object(
                *ENVOY_GATEWAY[:2], self.namespace, ENVOY_GATEWAY[2], self.policy
            )
        except ApiException as exc:
            if exc.status == 404:
                return GatewayConfig()  # no policy: the route has no authentication
            raise
        items = self.kube.core.list_namespaced_config_map(self.namespace).items
        configmaps = {cm.metadata.name: dict(cm.data or {}) for cm in items}
        return gateway_config(policy, configmaps)


def trusted_kids(config: GatewayConfig) -> frozenset[str]:
    """The kids of every inline JWKS in a configuration's jwt_authn providers (either JSON spelling)."""
    kids: set[str] = set()
    for http_filter in config.http_filters:
        typed = http_filter.get("typed_config") or http_filter.get("typedConfig") or {}
        for provider in (typed.get("providers") or {}).values():
            local = provider.get("local_jwks") or provider.get("localJwks") or {}
            inline = local.get("inline_string") or local.get("inlineString")
            if inline:
                kids.update(str(k.get("kid")) for k in json.loads(inline).get("keys") or [])
    return frozenset(kids)


@dataclass
class Pusher:
    """One control plane feeding one Envoy: `sync()` translates and pushes when the result changed."""

    plane: Plane
    envoy: Envoy
    last: GatewayConfig | None = None
    pushes: list[tuple[frozenset[str], bool]] = field(default_factory=list)  # per push: its kids, and
    # whether Envoy replaced the listener

    def start(self) -> Pusher:
        self.last = self.plane.config()
        self.envoy.start(self.last)
        return self

    def sync(self) -> GatewayConfig:
        """Push the current translation if it changed since the last push; return it."""
        config = self.plane.config()
        if config != self.last:
            self.pushes.append((trusted_kids(config), self.envoy.push(config)))
            self.last = config
        return config
