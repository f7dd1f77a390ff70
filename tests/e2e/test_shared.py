"""Several JwtSecrets publishing into one shared ConfigMap (aggregation for multi-provider gateways)."""

from __future__ import annotations

import json
from typing import Any

from tests.harness.client import ClusterClient, wait_for
from tests.material import ec_key, public_jwk, rsa_key

SHARED = {"name": "gateway-jwks", "shared": True}


def spec(*keys: dict[str, Any], audience: str) -> dict[str, Any]:
    return {"static": {"jwks": {"keys": list(keys)}}, "audiences": [audience], "target": SHARED}


def data(kube: ClusterClient, ns: str) -> dict[str, str]:
    result: dict[str, str] = kube.configmap(ns, "gateway-jwks").data
    return result


def merged_kids(kube: ClusterClient, ns: str) -> list[str]:
    return [k["kid"] for k in json.loads(data(kube, ns)["jwks.json"])["keys"]]


def test_contributions_merge_collide_and_leave(kube: ClusterClient, ns: str) -> None:
    kube.create(
        ns,
        "auth0",
        spec(public_jwk(rsa_key(n=0), kid="a1"), public_jwk(ec_key(n=0), kid="dup"), audience="orders"),
    )
    kube.create(
        ns,
        "firebase",
        spec(public_jwk(rsa_key(n=1), kid="f1"), public_jwk(ec_key(n=1), kid="dup"), audience="project"),
    )
    kube.wait_condition(ns, "auth0")
    obj = kube.wait_condition(ns, "firebase")
    assert obj["status"]["target"] == {"kind": "ConfigMap", "name": "gateway-jwks", "shared": True}
    wait_for(lambda: sorted(merged_kids(kube, ns)) == ["a1", "dup", "f1"], what="merged keys")
    content = data(kube, ns)
    assert set(content) == {
        "jwks.json",
        "index.json",
        "jwks",
        "auth0.jwks.json",
        "auth0.policy.json",
        "firebase.jwks.json",
        "firebase.policy.json",
    }
    index = json.loads(content["index.json"])
    assert index["collisions"] == [{"kid": "dup", "kept": "auth0", "dropped": ["firebase"]}]
    assert json.loads(content["firebase.policy.json"])["audiences"] == ["project"]
    owners = {r.name for r in kube.configmap(ns, "gateway-jwks").metadata.owner_references}
    assert owners == {"auth0", "firebase"}

    kube.delete(ns, "auth0")
    wait_for(lambda: "auth0.jwks.json" not in data(kube, ns), what="auth0's part removed")
    assert sorted(merged_kids(kube, ns)) == ["dup", "f1"]
    kube.delete(ns, "firebase")
    wait_for(
        lambda: not kube.core.list_namespaced_config_map(ns).items, what="last one removes the ConfigMap"
    )


def test_concurrent_contributors_never_lose_each_other(kube: ClusterClient, ns: str) -> None:
    names = [f"p{i}" for i in range(8)]
    for i, name in enumerate(names):
        kube.create(ns, name, spec(public_jwk(ec_key(n=10 + i), kid=name), audience=name))
    for name in names:
        kube.wait_condition(ns, name)
    wait_for(lambda: sorted(merged_kids(kube, ns)) == names, what="all eight parts")
    assert {f"{n}.jwks.json" for n in names} <= set(data(kube, ns))


def test_unshared_writers_cannot_take_a_shared_target(kube: ClusterClient, ns: str) -> None:
    kube.create(ns, "one", spec(public_jwk(ec_key(), kid="k"), audience="a"))
    kube.wait_condition(ns, "one")
    kube.create(
        ns,
        "intruder",
        {"static": {"jwks": {"keys": [public_jwk(ec_key(n=3))]}}, "target": {"name": "gateway-jwks"}},
    )
    obj = kube.wait_condition(ns, "intruder", "False", "TargetConflict")
    assert obj["status"]["lastError"] == (
        "ConfigMap gateway-jwks already exists and is a shared target "
        "(set spec.target.shared: true to contribute to it); it was left untouched"
    )
    assert merged_kids(kube, ns) == ["k"]
    kube.core.create_namespaced_config_map(ns, {"metadata": {"name": "plain"}})
    kube.create(
        ns,
        "joiner",
        {**spec(public_jwk(ec_key(n=4), kid="j"), audience="b"), "target": {"name": "plain", "shared": True}},
    )
    obj = kube.wait_condition(ns, "joiner", "False", "TargetConflict")
    assert "is not a shared jwks-operator target" in obj["status"]["lastError"]
