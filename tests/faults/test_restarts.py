"""The operator killed (SIGKILL) in the middle of a sync, table driven, then restarted: it converges.

A write is held failing so the kill lands at a known point (ConfigMap written but status not, status
written but ConfigMap not, new target written but old not removed, one part of a shared target merged,
a rotated key fetched but not published). After the restart: Ready on the current generation, one
output per target, the expected keys, and no published key ever missing in between.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import trustme

from tests.faults.summary import SUMMARY
from tests.faults.test_api_faults import Watchdog, owned_outputs
from tests.harness.client import ClusterClient, wait_for
from tests.harness.idp import JwksProvider
from tests.harness.k8s import EmulatedCluster
from tests.harness.operator import OperatorProcess
from tests.material import ec_key, public_jwk

HELD = 10_000  # a fault that keeps failing until cleared


@dataclass(frozen=True)
class Kill:
    name: str
    hold: tuple[str, str, str | None, str | None]  # action, plural, subresource, object name
    act: str  # create | move | share | rotate
    reached: str  # what must have happened before the kill


CM, JS = "configmaps", "jwtsecrets"
KILLS = [
    Kill("after the ConfigMap write, before the status patch", ("patch", JS, "status", "k"), "create", "cm"),
    Kill(
        "after the status patch, before the ConfigMap write",
        ("create", CM, None, "k-jwks"),
        "create",
        "error",
    ),
    Kill("after the new target, before removing the old", ("delete", CM, None, "k-jwks"), "move", "moved"),
    Kill("between two parts of a shared target", ("update", CM, None, "shared"), "share", "error2"),
    Kill(
        "after fetching a rotated key, before publishing it",
        ("update", CM, None, "k-jwks"),
        "rotate",
        "fetched",
    ),
]


def kids(kube: ClusterClient, ns: str, name: str) -> set[str]:
    return {k["kid"] for k in json.loads(kube.configmap(ns, name).data["jwks.json"])["keys"]}


def kids_of_any(kube: ClusterClient, ns: str, *names: str) -> set[str]:
    """The kids published in whichever of these ConfigMaps exist."""
    found: set[str] = set()
    for name in names:
        try:
            found |= kids(kube, ns, name)
        except Exception:
            continue
    return found


def shared_kids(kube: ClusterClient, ns: str) -> set[str]:
    data = kube.configmap(ns, "shared").data
    return {
        k["kid"]
        for key, value in data.items()
        if key.endswith(".json")
        for k in json.loads(value).get("keys", [])
    }


def ready(kube: ClusterClient, ns: str, name: str) -> bool:
    obj = kube.get(ns, name)
    status = obj.get("status") or {}
    cond: dict[str, Any] = next((c for c in status.get("conditions") or [] if c["type"] == "Ready"), {})
    current = status.get("observedGeneration") == obj["metadata"]["generation"]
    return bool(current and cond.get("status") == "True" and "lastError" not in status)


@pytest.fixture
def provider(fault_ca: trustme.CA) -> Iterator[JwksProvider]:
    with JwksProvider(ca=fault_ca, max_age=1) as idp:
        yield idp


@pytest.mark.parametrize("kill", KILLS, ids=[k.name for k in KILLS])
def test_killed_mid_sync_converges(
    kill: Kill,
    fault_cluster: EmulatedCluster,
    fault_kube: ClusterClient,
    fault_ns: str,
    fault_operator: OperatorProcess,
    provider: JwksProvider,
) -> None:
    kube, ns = fault_kube, fault_ns
    static: dict[str, Any] = {
        "static": {"jwks": {"keys": [public_jwk(ec_key(), kid="k1")]}},
        "audiences": ["a"],
    }
    names: list[str] = ["k"]
    required: set[str] = set()

    def read() -> set[str]:
        if kill.act == "share":
            return shared_kids(kube, ns)
        return kids_of_any(kube, ns, "k-jwks", "moved")

    if kill.act in ("move", "rotate"):
        spec = {"jwkUrl": provider.url, "audiences": ["a"]} if kill.act == "rotate" else static
        kube.create(ns, "k", spec)
        wait_for(lambda: ready(kube, ns, "k"), 20, "k Ready")
        required = read()
    if kill.act == "share":
        kube.create(ns, "k", {**static, "target": {"name": "shared", "shared": True, "allow": ["k2"]}})
        wait_for(lambda: ready(kube, ns, "k"), 20, "k Ready")
        names = ["k", "k2"]
        required = read()

    action, plural, sub, name = kill.hold
    fault_cluster.call(
        lambda api: api.inject(action, plural, status=500, times=HELD, subresource=sub, name=name)
    )
    rotated_at = 0.0
    with Watchdog(read, required=required) as watchdog:
        if kill.act == "create":
            kube.create(ns, "k", static)
        elif kill.act == "move":
            kube.patch_spec(ns, "k", {"target": {"name": "moved"}})
        elif kill.act == "share":
            second = {"static": {"jwks": {"keys": [public_jwk(ec_key(n=1), kid="k2")]}}, "audiences": ["b"]}
            kube.create(ns, "k2", {**second, "target": {"name": "shared", "shared": True}})
        elif kill.act == "rotate":
            rotated_at = time.time()
            provider.rotate()
        reached: dict[str, Callable[[], object]] = {
            "cm": lambda: kube.configmap(ns, "k-jwks"),
            "error": lambda: (kube.get(ns, "k").get("status") or {}).get("lastError"),
            "moved": lambda: kube.configmap(ns, "moved"),
            "error2": lambda: (kube.get(ns, "k2").get("status") or {}).get("lastError"),
            "fetched": lambda: (
                [r for r in provider.log if r.status == 200][-1:] and provider.log[-1].wall > rotated_at
            ),
        }
        wait_for(reached[kill.reached], 20, f"the sync to reach: {kill.name}")
        fault_operator.kill()
        fault_cluster.call(lambda api: api.faults.clear())
        fault_operator.start()
        for obj in names:
            wait_for(functools.partial(ready, kube, ns, obj), 30, f"{obj} Ready after the restart")
        expected = {"k1", "k2"} if kill.act == "share" else {"k1"}
        if kill.act == "rotate":
            expected = set(provider.keys)
        wait_for(lambda: expected <= read(), 20, f"keys {expected} published")
    wanted = {"move": [("ConfigMap", "moved")], "share": [("ConfigMap", "shared")]}
    assert owned_outputs(kube, ns) == wanted.get(kill.act, [("ConfigMap", "k-jwks")])
    SUMMARY["faults injected"] += 2  # the held write and the kill
    SUMMARY["keys lost"] += watchdog.lost
    assert watchdog.lost == 0, f"published keys went missing: {watchdog.seen[:3]}"
