"""Published ConfigMaps edited, deleted or relabelled by hand are put back, and only ours are watched."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.e2e.conftest import Kube, wait_for
from tests.harness.operator import OperatorProcess
from tests.material import ec_key, public_jwk

LABEL = "app.kubernetes.io/managed-by"


def published(kube: Kube, ns: str) -> dict[str, str]:
    data: dict[str, str] = kube.configmap(ns, "d-jwks").data
    return data


def repaired_events(kube: Kube, ns: str) -> int:
    return sum(1 for e in kube.events(ns, "d") if e.reason == "Repaired")


def test_hand_edits_deletes_and_relabels_are_repaired(kube: Kube, ns: str) -> None:
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


def test_deleting_the_jwtsecret_does_not_resurrect_its_configmap(kube: Kube, ns: str) -> None:
    kube.create(ns, "d", {"static": {"jwks": {"keys": [public_jwk(ec_key(), kid="k")]}}, "audiences": ["a"]})
    kube.wait_condition(ns, "d")
    kube.delete(ns, "d")
    wait_for(lambda: not kube.core.list_namespaced_config_map(ns).items, 10, "ConfigMap gone")
    time.sleep(2)
    assert not kube.core.list_namespaced_config_map(ns).items


def test_only_labelled_configmaps_are_watched(operator: OperatorProcess) -> None:
    from tests.e2e import conftest

    if conftest.EMULATED is None:
        pytest.skip("the request log is only available from the emulator")
    emulated = conftest.EMULATED

    def configmap_watches() -> list[Any]:
        requests = emulated.call(lambda api: list(api._requests))
        return [
            r
            for r in requests
            if r.resource is not None
            and r.resource.plural == "configmaps"
            and r.params.get("watch") == "true"
        ]

    watches = wait_for(configmap_watches, 10, "the operator's ConfigMap watch")
    assert all(r.params.get("labelSelector") == f"{LABEL}=jwks-operator" for r in watches)
