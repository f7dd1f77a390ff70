"""What the real controllers and watch machinery do: the garbage collector (not the operator) deletes a
deleted JwtSecret's outputs, and a watch resumed after an API-server restart and etcd compaction gets
410 Gone, relists, and misses nothing."""

from __future__ import annotations

import json
import os
import signal
import urllib.error
from typing import Any

from tests.harness.backend import operator_requests
from tests.harness.client import ClusterClient, wait_for
from tests.harness.control_plane import RealCluster
from tests.harness.operator import OperatorProcess
from tests.material import static_spec as static

GC_USER = "system:kube-controller-manager"


def test_the_garbage_collector_deletes_outputs(kube: ClusterClient, ns: str, real: RealCluster) -> None:
    kube.create(ns, "owned", static("o"))
    kube.wait_condition(ns, "owned")
    kube.delete(ns, "owned")
    wait_for(lambda: not kube.core.list_namespaced_config_map(ns).items, 30, "ConfigMap collected")

    def deletes() -> list[tuple[str, str, int]]:  # audited once the response is written, after etcd's commit
        found = real.requests()
        return [
            (r.user, r.name, r.code)
            for r in found
            if r.verb == "delete" and r.resource == "configmaps" and r.namespace == ns
        ]

    assert wait_for(deletes, 10, "the audited delete") == [(GC_USER, "owned-jwks", 200)]


def watch_status(real: RealCluster, resource_version: str) -> int | None:
    """The code of the first event of a watch from `resource_version` (200 when it is still valid);
    None while the restarted server's watch cache is still initializing (429)."""
    query = f"watch=1&timeoutSeconds=1&resourceVersion={resource_version}"
    try:
        with real.open(f"/apis/jwks.dev/v1alpha1/jwtsecrets?{query}") as response:
            line = response.readline()
    except urllib.error.HTTPError as exc:
        if exc.code == 429:
            return None
        raise
    event: dict[str, Any] = json.loads(line) if line else {"type": "NONE"}
    return int(event["object"]["code"]) if event["type"] == "ERROR" else 200


def compacted(real: RealCluster, resource_version: str) -> bool:
    """Whether etcd has compacted `resource_version` away (an exact list at it is then 410 Gone)."""
    query = f"resourceVersion={resource_version}&resourceVersionMatch=Exact"
    try:
        with real.open(f"/apis/jwks.dev/v1alpha1/jwtsecrets?{query}"):
            return False
    except urllib.error.HTTPError as exc:
        return exc.code == 410


def test_watch_resumed_after_compaction_relists_and_misses_nothing(
    kube: ClusterClient, ns: str, real: RealCluster, operator: OperatorProcess
) -> None:
    """The operator is frozen while the API server restarts and changes are made and compacted: its
    watches resume from a resourceVersion that is gone (410), so it must relist to see them."""
    kube.create(ns, "before", static("b1"))
    kube.create(ns, "deleted", static("d"))
    for name in ("before", "deleted"):
        kube.wait_condition(ns, name)
    old_rv = kube.get(ns, "before")["metadata"]["resourceVersion"]
    lists_before = len(relists(real))
    assert operator.process is not None
    os.kill(operator.process.pid, signal.SIGSTOP)  # its watches stay open but read nothing
    try:
        kube.core.create_namespaced_config_map(ns, {"metadata": {"name": "noise"}})  # moves the revision on
        real.restart_apiserver()  # every watch breaks; the new watch cache starts after the operator's
        kube.patch_spec(ns, "before", {"audiences": ["api", "changed"]})
        kube.create(ns, "during", static("n"))
        kube.delete(ns, "deleted")
        wait_for(lambda: compacted(real, old_rv), 30, "etcd compaction (--etcd-compaction-interval=5s)")
        assert wait_for(lambda: watch_status(real, old_rv), 30, "the watch cache") == 410
    finally:
        os.kill(operator.process.pid, signal.SIGCONT)
    kube.wait_condition(ns, "during", timeout=60)
    changed = kube.wait_condition(ns, "before", timeout=60)
    assert changed["status"]["observedGeneration"] == changed["metadata"]["generation"] == 2
    policy = json.loads(kube.configmap(ns, "before-jwks").data["policy.json"])
    assert policy["audiences"] == ["api", "changed"]
    wait_for(lambda: sorted(c.metadata.name for c in kube.core.list_namespaced_config_map(ns).items)
             == ["before-jwks", "during-jwks", "noise"], 30, "only live outputs")  # fmt: skip
    assert len(relists(real)) > lists_before, "the operator did not relist after 410 Gone"


def relists(real: RealCluster) -> list[object]:
    return [c for c in operator_requests(real) if c.resource == "jwtsecrets" and c.verb == "list"]
