"""Several JwtSecrets publishing into one shared ConfigMap (aggregation for multi-provider gateways)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import jwt

from tests.e2e.test_verify import cli
from tests.harness.client import ClusterClient, wait_for
from tests.material import ec_key, private_pem, public_jwk, rsa_key

SHARED = {"name": "gateway-jwks", "shared": True}


def spec(*keys: dict[str, Any], audience: str, allow: list[str] | None = None) -> dict[str, Any]:
    """A contributor; `allow` (spec.target.allow) counts on the one that creates the target."""
    target = {**SHARED, "allow": allow} if allow else SHARED
    return {"static": {"jwks": {"keys": list(keys)}}, "audiences": [audience], "target": target}


def data(kube: ClusterClient, ns: str) -> dict[str, str]:
    result: dict[str, str] = kube.configmap(ns, "gateway-jwks").data
    return result


def merged_kids(kube: ClusterClient, ns: str) -> list[str]:
    return [k["kid"] for k in json.loads(data(kube, ns)["jwks.json"])["keys"]]


def test_contributions_merge_and_leave(kube: ClusterClient, ns: str) -> None:
    same = public_jwk(ec_key(n=0), kid="same")  # the same key under the same kid is no collision
    kube.create(
        ns, "auth0", spec(public_jwk(rsa_key(n=0), kid="a1"), same, audience="orders", allow=["firebase"])
    )
    kube.wait_condition(ns, "auth0")
    kube.create(ns, "firebase", spec(public_jwk(rsa_key(n=1), kid="f1"), same, audience="project"))
    obj = kube.wait_condition(ns, "firebase")
    assert obj["status"]["target"] == {"kind": "ConfigMap", "name": "gateway-jwks", "shared": True}
    wait_for(lambda: sorted(merged_kids(kube, ns)) == ["a1", "f1", "same"], what="merged keys")
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
    assert index["collisions"] == []
    assert json.loads(content["firebase.policy.json"])["audiences"] == ["project"]
    meta = kube.configmap(ns, "gateway-jwks").metadata
    assert {r.name for r in meta.owner_references} == {"auth0", "firebase"}
    assert meta.annotations["jwks.dev/shared-owner"] == "auth0"
    assert meta.annotations["jwks.dev/allow-jwtsecrets"] == "firebase"

    kube.delete(ns, "auth0")
    wait_for(lambda: "auth0.jwks.json" not in data(kube, ns), what="auth0's part removed")
    assert sorted(merged_kids(kube, ns)) == ["f1", "same"]
    kube.delete(ns, "firebase")
    wait_for(
        lambda: not kube.core.list_namespaced_config_map(ns).items, what="last one removes the ConfigMap"
    )


def test_concurrent_contributors_never_lose_each_other(kube: ClusterClient, ns: str) -> None:
    names = [f"p{i}" for i in range(8)]
    for i, name in enumerate(names):  # whichever comes first creates the target, and lets all in
        kube.create(ns, name, spec(public_jwk(ec_key(n=10 + i), kid=name), audience=name, allow=["*"]))
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
        "ConfigMap gateway-jwks already exists and is a shared target (to contribute, set "
        "spec.target.shared: true and be listed in the spec.target.allow of the JwtSecret that created it); "
        "it was left untouched"
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


def test_joining_takes_the_creators_allow_and_a_kid_collision_is_refused(
    kube: ClusterClient, ns: str
) -> None:
    """Before (#14): any JwtSecret of the namespace could join, and on a kid collision the name sorting first
    won: `aa-intruder` replaced team A's `prod` key in the merged jwks.json."""
    prod = public_jwk(ec_key(n=20), kid="prod")
    kube.create(ns, "team-a", spec(prod, audience="a", allow=["team-b"]))
    kube.wait_condition(ns, "team-a")
    kube.create(ns, "aa-intruder", spec(public_jwk(ec_key(n=21), kid="prod"), audience="x"))
    obj = kube.wait_condition(ns, "aa-intruder", "False", "TargetConflict")
    assert obj["status"]["lastError"] == (
        "ConfigMap gateway-jwks is a shared target of JwtSecret team-a, which does not allow JwtSecret "
        "aa-intruder to contribute (team-a's spec.target.allow must list it; it is kept in the annotation "
        "jwks.dev/allow-jwtsecrets); it was left untouched"
    )
    # an allowed contributor whose kid names other key material is refused too, never picked by name
    kube.create(ns, "team-b", spec(public_jwk(ec_key(n=22), kid="prod"), audience="b"))
    obj = kube.wait_condition(ns, "team-b", "False", "TargetConflict")
    assert obj["status"]["lastError"] == (
        "ConfigMap gateway-jwks is shared, and kid 'prod' (JwtSecret team-a) names other key material there: "
        "the keys of JwtSecret team-b were not merged (a kid must name one key: rename one of them)"
    )
    assert json.loads(data(kube, ns)["jwks.json"])["keys"] == [prod]
    assert set(data(kube, ns)) == {
        "jwks.json",
        "jwks",
        "index.json",
        "team-a.jwks.json",
        "team-a.policy.json",
    }
    kube.patch_spec(ns, "team-b", spec(public_jwk(ec_key(n=22), kid="b1"), audience="b"))
    kube.wait_condition(ns, "team-b")
    wait_for(lambda: sorted(merged_kids(kube, ns)) == ["b1", "prod"], what="team-b merged")
    # team-a takes team-b off its list: team-b's part goes, and team-b says why
    kube.patch_spec(ns, "team-a", {"target": {**SHARED, "allow": ["someone-else"]}})
    wait_for(lambda: merged_kids(kube, ns) == ["prod"], what="team-b's part taken out")
    obj = kube.wait_condition(ns, "team-b", "True", "TargetConflict", kind="Degraded", timeout=30)
    assert "does not allow JwtSecret team-b to contribute" in obj["status"]["lastError"]
    kube.delete(ns, "team-b")
    wait_for(
        lambda: {r.name for r in kube.configmap(ns, "gateway-jwks").metadata.owner_references} == {"team-a"},
        what="team-b's ownerReference gone with it",
    )


def test_verify_for_one_contributor_uses_its_own_part(kube: ClusterClient, ns: str, kubeconfig: Path) -> None:
    """Two teams' JwtSecrets with the same provider's keys (one JWK Set, two audiences) in one shared
    target. `verify --jwtsecret` for one of them accepted a token issued to the other's audience: it
    checked the whole shared target, where any contributor's policy could accept it."""
    key = ec_key(n=3)
    shared_key = public_jwk(key, kid="idp-1")
    kube.create(ns, "orders", spec(shared_key, audience="orders-api", allow=["billing"]))
    kube.wait_condition(ns, "orders")
    kube.create(ns, "billing", spec(shared_key, audience="billing-api"))
    kube.wait_condition(ns, "billing")
    wait_for(lambda: "billing.jwks.json" in data(kube, ns), what="billing's part")
    claims = {"sub": "u", "aud": "orders-api", "exp": int(time.time()) + 300}
    token = jwt.encode(claims, private_pem(key), "ES256", headers={"kid": "idp-1"})
    assert cli(kubeconfig, f"{ns}/orders", token)[0] == 0
    code, out = cli(kubeconfig, f"{ns}/billing", token)
    assert code == 1, out
    assert "audience" in out, out
    assert cli(kubeconfig, f"{ns}/gateway-jwks", token, where="--configmap")[0] == 0  # the merged set
