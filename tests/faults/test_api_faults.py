"""API-server faults, table driven: 409/429/5xx, timeouts, dropped and refused watch streams, hand edits.

Each case sets up a JwtSecret, injects its faults into the emulator, acts (create, spec change, target
move, key rotation, hand edit), and then requires convergence: Ready on the current generation, the
expected keys and policy in exactly one output object we own, every injected fault actually hit, and no
moment (polled every 0.1 s) where a key that was already published went missing.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import trustme

from jwks_operator.model.names import MANAGED_BY_LABEL
from jwks_operator.publish.allow import ALLOW_ANNOTATION
from tests.faults.summary import SUMMARY
from tests.harness.client import ClusterClient, wait_for
from tests.harness.idp import JwksProvider
from tests.harness.k8s import ApiServer, EmulatedCluster
from tests.material import ec_key, public_jwk

LABEL = MANAGED_BY_LABEL


@dataclass(frozen=True)
class F:
    """One fault: `times` requests of `action` on `plural` fail with `status` (after `delay` s)."""

    action: str
    plural: str
    status: int
    times: int = 1
    subresource: str | None = None
    named: bool = True  # only requests for this case's objects
    delay: float = 0.0


@dataclass(frozen=True)
class Case:
    name: str
    faults: tuple[F, ...]
    act: str = "create"  # create | update | move | rotate | edit | delete | relabel | reconnect
    source: str = "static"  # static | url | hmac
    drop_watches: bool = False
    repaired: bool = False


CM, STATUS, JS = "configmaps", "status", "jwtsecrets"
CASES = [
    Case("ConfigMap create 500 x3", (F("create", CM, 500, 3),)),
    Case("ConfigMap create 503 x2, status 500 x2", (F("create", CM, 503, 2), F("patch", JS, 500, 2, STATUS))),
    Case("ConfigMap read 500 x3", (F("get", CM, 500, 3),)),
    Case("ConfigMap create times out, then lands", (F("create", CM, 0, 1, delay=3.5),)),
    Case("status patch 429 x3 (Retry-After)", (F("patch", JS, 429, 3, STATUS),)),
    Case("status patch times out x2", (F("patch", JS, 504, 2, STATUS, delay=3.5),)),
    Case("event refused (best effort)", (F("create", "events", 500, 1, named=False),), act="update"),
    Case("ConfigMap update 409 x3", (F("update", CM, 409, 3),), act="update"),
    Case("ConfigMap update 409 x7 (beyond the write loop)", (F("update", CM, 409, 7),), act="update"),
    Case(
        "ConfigMap update 500 x2, status 503 x2",
        (F("update", CM, 500, 2), F("patch", JS, 503, 2, STATUS)),
        act="update",
    ),
    Case("old ConfigMap delete 500 x2 on a target move", (F("delete", CM, 500, 2),), act="move"),
    Case("new ConfigMap create 409 on a target move", (F("create", CM, 409, 1, named=False),), act="move"),
    Case("Secret read 500 x2 (HMAC source)", (F("get", "secrets", 500, 2),), source="hmac"),
    Case("Secret create 500 x2 (HMAC output)", (F("create", "secrets", 500, 2, named=False),), source="hmac"),
    Case("ConfigMap update 500 x2 on key rotation", (F("update", CM, 500, 2),), act="rotate", source="url"),
    Case("status 500 x3 on key rotation", (F("patch", JS, 500, 3, STATUS),), act="rotate", source="url"),
    Case(
        "watch streams dropped, re-watch refused x3",
        (F("watch", "jwtsecrets", 500, 3, named=False),),
        act="reconnect",
        drop_watches=True,
    ),
    Case(
        "watch streams dropped, re-list refused x2",
        (F("watch", "jwtsecrets", 410, 1, named=False), F("list", "jwtsecrets", 500, 2, named=False)),
        act="reconnect",
        drop_watches=True,
    ),
    Case("hand delete, re-create 500 x2", (F("create", CM, 500, 2),), act="delete", repaired=True),
    Case("hand edit, write-back 409 x2", (F("update", CM, 409, 2),), act="edit", repaired=True),
    Case("hand edit, write-back 500 x3", (F("update", CM, 500, 3),), act="edit", repaired=True),
    Case(
        "hand delete during a dropped ConfigMap watch",
        (F("watch", CM, 500, 2, named=False),),
        act="delete",
        drop_watches=True,
        repaired=True,
    ),
    Case("relabel by hand, write-back 500 x1", (F("update", CM, 500, 1),), act="relabel", repaired=True),
    Case(
        "hand delete during a watch gap that needs a re-list (resync)",
        (F("watch", CM, 410, 1, named=False),),
        act="delete",
        drop_watches=True,
        repaired=True,
    ),
    Case(
        "HMAC Secret edited by hand (not watched: resync), write-back 500 x1",
        (F("update", "secrets", 500, 1),),
        act="edit",
        source="hmac",
        repaired=True,
    ),
]  # fmt: skip


@dataclass
class Watchdog:
    """Polls the published keys in the background; counts moments where a published kid went missing."""

    read: Callable[[], set[str]]
    required: set[str] = field(default_factory=set)
    lost: int = 0
    seen: list[set[str]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self._stop.wait(0.1):
            try:
                kids = self.read()
            except Exception:
                kids = set()
            if self.required - kids:
                self.lost += 1
                self.seen.append(kids)

    def __enter__(self) -> Watchdog:
        self._thread = threading.Thread(target=self.run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def inject(cluster: EmulatedCluster, faults: tuple[F, ...], names: dict[str, str]) -> int:
    def add(api: ApiServer) -> None:
        for f in faults:
            name = names.get(f.plural) if f.named else None
            api.inject(
                f.action,
                f.plural,
                status=f.status,
                times=f.times,
                subresource=f.subresource,
                name=name,
                delay=f.delay,
            )

    cluster.call(add)
    return sum(f.times for f in faults)


def watching(cluster: EmulatedCluster) -> set[str]:
    return cluster.call(lambda api: {w.kind.key[2] for w in api.watchers})


def remaining(cluster: EmulatedCluster) -> list[tuple[str, str, int]]:
    return cluster.call(lambda api: [(f.action, f.plural, f.times) for f in api.faults if f.times])


@pytest.fixture
def clean_faults(fault_cluster: EmulatedCluster) -> Iterator[None]:
    yield
    fault_cluster.call(lambda api: api.faults.clear())


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_api_faults_converge(
    case: Case,
    fault_cluster: EmulatedCluster,
    fault_kube: ClusterClient,
    fault_ns: str,
    fault_ca: trustme.CA,
    clean_faults: None,
) -> None:
    kube, ns, obj = fault_kube, fault_ns, "f"
    provider: JwksProvider | None = None
    output = {"kind": "Secret" if case.source == "hmac" else "ConfigMap", "name": f"{obj}-jwks"}
    if case.source == "hmac":
        meta = {"name": "signing", "annotations": {ALLOW_ANNOTATION: "*"}}  # the owner opts in (#14)
        secret = {"metadata": meta, "data": {"k": base64.b64encode(b"s" * 32).decode()}}
        kube.core.create_namespaced_secret(ns, secret)
        spec: dict[str, Any] = {"static": {"secretRef": {"name": "signing", "key": "k", "kid": "h1"}}}
    elif case.source == "url":
        provider = JwksProvider(ca=fault_ca, max_age=1).start()
        spec = {"jwkUrl": provider.url}
    else:
        spec = {"static": {"jwks": {"keys": [public_jwk(ec_key(), kid="k1")]}}}
    spec["audiences"] = ["a"]

    def kids() -> set[str]:
        data = read_output(kube, ns, output["kind"], output["name"])
        return {key["kid"] for key in json.loads(data["jwks.json"])["keys"]}

    names = {CM: output["name"], "secrets": "signing", "jwtsecrets": obj}
    try:
        if case.act not in ("create", "reconnect"):
            kube.create(ns, obj, spec)
            kube.wait_condition(ns, obj)
        before = kids() if case.act not in ("create", "reconnect") else set()
        if case.source == "hmac" and case.act != "create":
            names["secrets"] = output["name"]
        if case.drop_watches:  # the operator's streams must be up, so that dropping them means something
            wait_for(lambda: watching(fault_cluster) >= {JS, CM}, 10, "the operator's watch streams")
        injected = inject(fault_cluster, case.faults, names)
        if case.drop_watches:
            fault_cluster.call(lambda api: api.shutdown_watches())
        # Keys published before the fault must stay published, except where we remove them by hand.
        required = set() if case.act in ("delete", "edit") else set(before)
        audience = "a"
        with Watchdog(kids, required=required) as watchdog:
            if case.act in ("create", "reconnect"):
                kube.create(ns, obj, spec)
            elif case.act == "update":
                audience = "b"
                kube.patch_spec(ns, obj, {"audiences": [audience]})
            elif case.act == "move":
                kube.patch_spec(ns, obj, {"target": {"name": "moved"}})
                output["name"] = "moved"
            elif case.act == "rotate":
                assert provider is not None
                before = before | {provider.rotate()}
            elif case.act == "delete":
                kube.core.delete_namespaced_config_map(output["name"], ns)
            elif case.act == "edit" and output["kind"] == "Secret":
                empty = base64.b64encode(b'{"keys": []}').decode()
                kube.core.patch_namespaced_secret(output["name"], ns, {"data": {"jwks.json": empty}})
            elif case.act == "edit":
                kube.core.patch_namespaced_config_map(
                    output["name"], ns, {"data": {"jwks.json": '{"keys": []}'}}
                )
            elif case.act == "relabel":
                kube.core.patch_namespaced_config_map(
                    output["name"],
                    ns,
                    {"metadata": {"labels": {LABEL: None}}},
                    _content_type="application/merge-patch+json",
                )
            if before:
                expected = before
            elif provider is not None:
                expected = set(provider.keys)
            else:
                expected = {"h1" if case.source == "hmac" else "k1"}

            def converged() -> bool:
                got = kube.get(ns, obj)
                status = got.get("status") or {}
                ready: dict[str, Any] = next(
                    (c for c in status.get("conditions") or [] if c["type"] == "Ready"), {}
                )
                return (
                    status.get("observedGeneration") == got["metadata"]["generation"]
                    and ready.get("status") == "True"
                    and status.get("target") == output
                    and "lastError" not in status
                    and expected <= kids()
                    and json.loads(read_output(kube, ns, output["kind"], output["name"])["policy.json"])[
                        "audiences"
                    ]
                    == [audience]
                    and labelled(kube, ns, output)
                    and not remaining(fault_cluster)
                )

            wait_for(converged, 45, f"convergence after {case.name}; faults left: {remaining(fault_cluster)}")
            if case.repaired:
                wait_for(
                    lambda: any(e.reason == "Repaired" for e in kube.events(ns, obj)), 10, "a Repaired event"
                )
        outputs = owned_outputs(kube, ns)
        assert outputs == [(output["kind"], output["name"])], outputs
        SUMMARY["faults injected"] += injected
        SUMMARY["keys lost"] += watchdog.lost
        SUMMARY["objects repaired"] += case.repaired
        assert watchdog.lost == 0, f"published keys went missing: {watchdog.seen[:3]}"
    finally:
        if provider is not None:
            provider.stop()


def read_output(kube: ClusterClient, ns: str, kind: str, name: str) -> dict[str, str]:
    if kind == "Secret":
        data = kube.core.read_namespaced_secret(name, ns).data or {}
        return {k: base64.b64decode(v).decode() for k, v in data.items()}
    return dict(kube.configmap(ns, name).data or {})


def labelled(kube: ClusterClient, ns: str, output: dict[str, str]) -> bool:
    read = (
        kube.core.read_namespaced_secret
        if output["kind"] == "Secret"
        else kube.core.read_namespaced_config_map
    )
    labels = read(output["name"], ns).metadata.labels or {}
    return bool(labels.get(LABEL) == "jwks-operator")


def owned_outputs(kube: ClusterClient, ns: str) -> list[tuple[str, str]]:
    found = [("ConfigMap", c.metadata.name) for c in kube.core.list_namespaced_config_map(ns).items]
    found += [("Secret", s.metadata.name) for s in kube.core.list_namespaced_secret(ns).items]
    return sorted((kind, name) for kind, name in found if name != "signing")
