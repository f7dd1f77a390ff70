"""HA: two real operators with Kopf peering on one cluster of the selected backend; exactly one
reconciles, and the one that took over repairs a published ConfigMap edited by hand.

Runs on its own cluster (the session's standalone operator would otherwise answer too), with the
chart's Kopf peering CRDs and a ClusterKopfPeering as the chart creates it. Failover times are measured
and printed (`pytest -s`; documented in README.md), never bounded: what is asserted is that the standby
took over, and after a crash not before the leader's last keep-alive plus --peering-lifetime (a lower
bound, which slowness cannot break). The timing of the peering decision itself is asserted exactly on a
fake clock in tests/unit/engine/test_engine_leadership.py.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import trustme
from kubernetes import config

from tests.harness import ROOT
from tests.harness.backend import new_cluster
from tests.harness.client import ClusterClient, wait_for
from tests.harness.idp import JwksProvider
from tests.harness.k8s import load_crds
from tests.harness.operator import OperatorProcess

PEERING = "jwks-operator"
LIFETIME = 6  # --peering-lifetime: how long a crashed leader is presumed alive
PATIENCE = 120.0  # seconds to wait for what must happen: generous for a slow machine, never a measurement

pytestmark = pytest.mark.skipif(
    bool(os.environ.get("JWKS_E2E_KUBECONFIG")), reason="needs a cluster without another operator"
)


@pytest.fixture(scope="module")
def ha_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ClusterClient, Path]]:
    crds = load_crds(ROOT / "crds") + load_crds(ROOT / "helm" / "jwks-operator" / "crds")
    with new_cluster(tmp_path_factory.mktemp("ha-cluster"), crds) as cluster:
        path = cluster.write_kubeconfig(tmp_path_factory.mktemp("ha") / "kubeconfig")
        kube = ClusterClient(config.new_client_from_config(str(path)))  # type: ignore[no-untyped-call]
        body = {"apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering", "metadata": {"name": PEERING}}
        kube.custom.create_cluster_custom_object("kopf.dev", "v1", "clusterkopfpeerings", body)
        kube.core.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ha"}})
        yield kube, path


def replica(kubeconfig: Path, tmp: Path, name: str, priority: int, ca_bundle: Path) -> OperatorProcess:
    args = ["--peering", PEERING, "--priority", str(priority), "--peering-lifetime", str(LIFETIME)]
    args += ["--min-interval", "1", "--allow-private-networks", "--retry-base", "1", "--retry-max", "2"]
    env = {"POD_ID": name, "REQUESTS_CA_BUNDLE": str(ca_bundle)}
    return OperatorProcess(kubeconfig, tmp / f"{name}.log", args=args, env=env)


def lines(proc: OperatorProcess, text: str) -> int:
    return sum(text in line for line in proc.log().splitlines())


def peers(kube: ClusterClient) -> dict[str, Any]:
    obj = kube.custom.get_cluster_custom_object("kopf.dev", "v1", "clusterkopfpeerings", PEERING)
    return dict(obj.get("status") or {})


def reconciled(kube: ClusterClient, audience: str) -> bool:
    obj = kube.get("ha", "keys")
    policy = json.loads(kube.configmap("ha", "keys-jwks").data["policy.json"])
    current = obj["status"].get("observedGeneration") == obj["metadata"]["generation"]
    return bool(current and policy["audiences"] == [audience])


def failover(kube: ClusterClient, audience: str) -> tuple[float, float]:
    """Change the spec; seconds until the published policy was seen to show it, and the wall-clock
    time it was seen."""
    started = time.monotonic()
    kube.patch_spec("ha", "keys", {"audiences": [audience]})
    wait_for(lambda: reconciled(kube, audience), PATIENCE, f"audience {audience} published")
    return time.monotonic() - started, time.time()


def test_one_replica_reconciles_and_another_takes_over(
    ha_cluster: tuple[ClusterClient, Path], tmp_path: Path, ca: trustme.CA, ca_bundle: Path
) -> None:
    kube, kubeconfig = ha_cluster
    a = replica(kubeconfig, tmp_path, "replica-a", 200, ca_bundle).start()
    b = replica(kubeconfig, tmp_path, "replica-b", 100, ca_bundle).start()
    try:
        with JwksProvider(ca=ca, profile="google", max_age=1) as idp:
            kube.create("ha", "keys", {"jwkUrl": idp.url, "audiences": ["one"]})
            kube.wait_condition("ha", "keys", timeout=PATIENCE)
            wait_for(lambda: set(peers(kube)) == {"replica-a", "replica-b"}, PATIENCE, "both peers")
            wait_for(lambda: lines(b, "stands by"), PATIENCE, "b stands by")
            wait_for(lambda: len(idp.log) >= 3, PATIENCE, "the leader refreshes")  # max-age 1 s
            assert lines(b, "stands by") == 1
            for quiet in ("fetched", "key(s) created", "key(s) updated", "Traceback"):
                assert lines(b, quiet) == 0, b.log()

            a.stop()  # graceful: the leader leaves the peering object at once
            graceful, _ = failover(kube, "two")
            assert "replica-a" not in peers(kube)
            assert lines(b, "now leads") == 1

            a.start()  # the higher priority takes the lead back
            wait_for(lambda: lines(b, "stands by") == 2, PATIENCE, "b stands by again")
            wait_for(lambda: lines(a, "now leads") == 2, PATIENCE, "a leads again")
            # a's keep-alive as last read: any later one only moves a's expiry later
            last_seen = datetime.fromisoformat(peers(kube)["replica-a"]["lastseen"]).timestamp()
            a.kill()  # a crash: b waits until a's keep-alive expires
            crashed, seen_at = failover(kube, "three")
            assert lines(b, "now leads") == 2
            requests_before = len(idp.log)
            wait_for(lambda: len(idp.log) > requests_before, PATIENCE, "b refreshes as leader")
            # b watches the published ConfigMaps since it leads: a hand edit is put back.
            good = kube.configmap("ha", "keys-jwks").data
            edit = {"data": {"jwks.json": '{"keys": []}'}}
            kube.core.patch_namespaced_config_map("keys-jwks", "ha", edit)
            wait_for(lambda: kube.configmap("ha", "keys-jwks").data == good, PATIENCE, "b repairs an edit")
        print(
            f"\nfailover: graceful {graceful:.1f}s, crash {crashed:.1f}s (--peering-lifetime {LIFETIME}; "
            f"seen {seen_at - last_seen:.1f}s after a's last keep-alive)"
        )
        assert seen_at >= last_seen + LIFETIME  # a crashed leader is presumed alive for its lifetime
    finally:
        a.stop()
        b.stop()
