"""Least privilege, measured: the RBAC in deploy/ grants exactly what the operator requested during
the whole e2e session (marked `last`: runs after every other test; requests told apart by the
operator's and Kopf's User-Agents). On the real control plane the operator runs as deploy/'s
ServiceAccount: nothing may have been refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.harness import ROOT
from tests.harness.backend import OPERATOR_USER, operator_requests
from tests.harness.control_plane import RealCluster
from tests.harness.k8s import EmulatedCluster
from tests.harness.operator import OperatorProcess
from tests.harness.tools import kubectl

OUTPUT_ROLE = "jwks-operator-outputs"  # tests/e2e/real/test_gateways.py

pytestmark = pytest.mark.last
# Exercised by the operator, but only on paths the emulator tier does not take (documented why); the real
# tier takes them with the gateway outputs (an NGINX Secret rewritten, Kong credentials of rotated keys).
NOT_EXERCISED = {
    ("", "secrets", "delete"),  # removing an HMAC Secret output after its target moved
    ("", "secrets", "update"),  # rewriting an HMAC Secret output whose data changed
    ("jwks.dev", "jwtsecrets", "patch"),  # the release finalizer of a JwtSecret with gateway outputs
}


# The garbage collector may delete a RequestAuthentication we made before our own release does.
RACING_GC = {("security.istio.io", "requestauthentications", "delete")}


def granted(kubeconfig: Path | None) -> set[tuple[str, str, str]]:
    """deploy/'s ClusterRole, plus the chart's gateway-output rules when tests/e2e/real/test_gateways.py
    granted them (its ClusterRole OUTPUT_ROLE, read from the cluster)."""
    docs = list(yaml.safe_load_all((ROOT / "deploy" / "rbac.yaml").read_text()))
    rules = list(next(d for d in docs if d["kind"] == "ClusterRole")["rules"])
    if kubeconfig is not None:
        extra = kubectl(kubeconfig, "get", "clusterrole", OUTPUT_ROLE, "-o", "json", "--ignore-not-found")
        rules += json.loads(extra)["rules"] if extra.strip() else []
    return {
        (g, r, v)
        for rule in rules
        for g in rule["apiGroups"]
        for r in rule["resources"]
        for v in rule["verbs"]
    }


def used(cluster: EmulatedCluster | RealCluster) -> set[tuple[str, str, str]]:
    return {(c.group, c.resource, c.verb) for c in operator_requests(cluster, OPERATOR_USER)}


def test_rbac_is_exactly_what_the_operator_uses(
    cluster: EmulatedCluster | RealCluster | None, operator: OperatorProcess, kubeconfig: Path
) -> None:
    if cluster is None:
        pytest.skip("needs the request log of the emulator or the audit log of the test control plane")
    used_now: Any = used(cluster)
    allowed = granted(kubeconfig if isinstance(cluster, RealCluster) else None)
    assert used_now, "the operator made no requests?"
    assert used_now <= allowed, f"requests the RBAC would forbid: {sorted(used_now - allowed)}"
    unused = allowed - used_now
    assert unused <= NOT_EXERCISED | RACING_GC, f"granted but never used: {sorted(unused)}"
    assert not any(r == "secrets" and v in ("list", "watch") for _, r, v in allowed)
    denied = [c for c in operator_requests(cluster, OPERATOR_USER) if c.forbidden]
    assert not denied, f"the API server refused: {denied[:5]}"
