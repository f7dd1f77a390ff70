"""The chart's values scenarios: rendered and checked offline by tests/deploy/test_chart.py, and installed
with the real `helm` on the real control plane by tests/e2e/real/test_helm.py."""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]
SCENARIOS: dict[str, Obj] = {
    "default": {},
    "namespaced": {"watchNamespaces": ["team-a", "team-b"]},
    "ha": {"replicaCount": 2},
    "ha-namespaced": {"replicaCount": 3, "watchNamespaces": ["team-a"], "peeringLifetime": 20},
    # Every gateway output's RBAC. The API server accepts rules for kinds it does not serve (no gateway
    # CRD is installed where tests/e2e/real/test_helm.py runs), and the operator runs with them.
    "outputs": {
        "outputs": {
            gateway: {"enabled": True} for gateway in ("istio", "envoyGateway", "kong", "spaceCloud", "nginx")
        }
    },
    "observability": {
        "replicaCount": 2,
        "metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}}},
        "podDisruptionBudget": {"enabled": True},
        "grafanaDashboard": {"enabled": True},
        "networkPolicy": {
            "enabled": True,
            "metricsFrom": [
                {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
            ],
            "apiServer": {"cidrs": ["10.0.0.1/32"]},
        },
    },
    "proxy-ca": {
        "proxy": {"httpsProxy": "http://proxy.corp.example:3128", "noProxy": ".corp.example,10.0.0.0/8"},
        "caBundle": {"kind": "Secret", "name": "corp-ca", "key": "bundle.pem"},
        "extraEnv": [{"name": "TZ", "value": "UTC"}],
        "extraArgs": ["--allow-private-networks"],
        "logLevel": "debug",
        "logFormat": "text",
        "metrics": {"enabled": False},
        "image": {"digest": "sha256:" + "a" * 64},
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}],
        "affinity": {
            "podAntiAffinity": {
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {
                        "weight": 100,
                        "podAffinityTerm": {
                            "topologyKey": "kubernetes.io/hostname",
                            "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "jwks-operator"}},
                        },
                    }
                ]
            }
        },
        "podAnnotations": {"example.com/team": "identity"},
    },
}
