"""Published ConfigMaps edited, deleted or relabelled by hand are put back, and only ours are watched."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from jwks_operator.model.names import MANAGED_BY_LABEL
from tests.harness.backend import operator_requests
from tests.harness.client import ClusterClient, wait_for
from tests.harness.control_plane import RealCluster
from tests.harness.k8s import EmulatedCluster
from tests.harness.operator import OperatorProcess
from tests.material import ec_key, public_jwk

LABEL = MANAGED_BY_LABEL


def published(kube: ClusterClient, ns: str) -> dict[str, str]:
    data: dict[str, str] = kube.configmap(ns, "d-jwks").data
    return data


def repaired_events(kube: ClusterClient, ns: str) -> int:
    return sum(1 for e in kube.events(ns, "d") if e.reason == "Repaired")


def test_hand_edits_deletes_and_relabels_are_repaired(kube: ClusterClient, ns: str) -> None:
    kube.create(ns, "d", {"static": {"jwks": {"keys": [public_jwk(ec_key(), kid="k")]}}, "audiences": ["a"]})
    kube.wait_condition(ns, "d")
    good = published(kube, ns)

    kube.core.patch_namespaced_config_map("d-jwks", ns, {"data": {"jwks.json": '{"keys": []}'}})
    wait_for(lambda: published(kube, ns) == good, 10, "edited data restored")
    wait_for(lambda: repaired_events(kube, ns) >= 1, 10, "a Repaired event")

    kube.core.delete_namespaced_config_map("d-jwks", ns)
    wait_for(lambda: published(kube, ns) == good, 10, "deleted ConfigMap recreated")

    kube.core.patch_namespaced_config_map(
        "d-jwks", ns, {"metadata": {"labels": {LABEL: None}}}, _content_type="application/merge-patch+json"
    )
    wait_for(
        lambda: kube.configmap(ns, "d-jwks").metadata.labels.get(LABEL) == "jwks-operator",
        10,
        "managed-by label restored",
    )
    assert repaired_events(kube, ns) >= 3


def test_deleting_the_jwtsecret_does_not_resurrect_its_configmap(kube: ClusterClient, ns: str) -> None:
    kube.create(ns, "d", {"static": {"jwks": {"keys": [public_jwk(ec_key(), kid="k")]}}, "audiences": ["a"]})
    kube.wait_condition(ns, "d")
    kube.delete(ns, "d")
    wait_for(lambda: not kube.core.list_namespaced_config_map(ns).items, 10, "ConfigMap gone")
    time.sleep(2)
    assert not kube.core.list_namespaced_config_map(ns).items


def test_only_labelled_configmaps_are_watched(
    operator: OperatorProcess, cluster: EmulatedCluster | RealCluster | None
) -> None:
    if cluster is None:
        pytest.skip("needs the request log of the emulator or the audit log of the test control plane")

    def configmap_watches() -> list[Any]:
        calls = operator_requests(cluster)
        return [c for c in calls if c.resource == "configmaps" and c.verb == "watch"]

    watches = wait_for(configmap_watches, 10, "the operator's ConfigMap watch")
    selectors = [parse_qs(urlsplit(c.uri).query).get("labelSelector") for c in watches]
    assert all(s == [f"{LABEL}=jwks-operator"] for s in selectors), watches
