"""NGINX output: a Secret of type nginx.org/jwk that is ours alone."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from jwks_operator.keys.keyset import KeySet, build_key_set
from jwks_operator.publish.bodies import Owner
from jwks_operator.publish.gateways import parse_outputs
from jwks_operator.publish.gateways.base import Context, OutputError, Write
from jwks_operator.publish.gateways.nginx import NginxOutput
from jwks_operator.publish.outputs import labels, owner_reference
from jwks_operator.publish.writes import DELETE
from jwks_operator.resource.spec import parse_spec
from tests.material import ec_key, public_jwk
from tests.unit.publish.gateways.helpers import ORDERS, apply

KEYS = build_key_set([public_jwk(ec_key(), kid="e1")])
ROTATED = build_key_set([public_jwk(ec_key(n=1), kid="e2")])


def context(owner: Owner = ORDERS, key_set: KeySet = KEYS) -> Context:
    spec = parse_spec({"jwkUrl": "https://idp.example.com/jwks", "issuers": ["https://idp.example.com/"]})
    return Context(owner, spec, key_set, configmap=f"{owner.name}-jwks")


def write(output: NginxOutput, ctx: Context) -> Write:
    plan = output.plan(ctx)
    assert len(plan.writes) == 1
    return plan.writes[0]


def jwk(body: dict[str, Any]) -> Any:
    return json.loads(base64.b64decode(body["data"]["jwk"]))


def test_parse_and_registry() -> None:
    assert parse_outputs([{"nginx": {}}, {"nginx": {"name": "jwk"}}]) == (NginxOutput(), NginxOutput("jwk"))
    assert (NginxOutput("jwk").id, NginxOutput("jwk").kind) == ("nginx/jwk", "Secret")


def test_plan_and_created_secret() -> None:
    plan = NginxOutput().plan(context())
    assert (plan.objects, plan.keys) == (("orders-jwk",), 1)
    ref = plan.writes[0].ref
    assert (ref.group, ref.version, ref.plural, ref.namespace, ref.name) == (
        "",
        "v1",
        "secrets",
        "apps",
        "orders-jwk",
    )
    body = apply(plan.writes[0], None)
    assert body["type"] == "nginx.org/jwk"
    assert (body["apiVersion"], body["kind"]) == ("v1", "Secret")
    assert body["metadata"]["ownerReferences"] == [owner_reference("orders", "uid-orders")]
    assert body["metadata"]["labels"] == labels("orders")
    assert jwk(body) == KEYS.document()
    assert NginxOutput("custom").plan(context()).objects == ("custom",)


def test_rotation_rewrites_only_data() -> None:
    body = apply(write(NginxOutput(), context()), None)
    body["metadata"]["resourceVersion"] = "5"
    rotated = apply(write(NginxOutput(), context(key_set=ROTATED)), body)
    assert jwk(rotated) == ROTATED.document()
    assert rotated["metadata"] == body["metadata"]


def test_lost_labels_are_restored_and_user_labels_kept() -> None:
    body = apply(write(NginxOutput(), context()), None)
    body["metadata"]["labels"] = {"team": "a"}
    fixed = apply(write(NginxOutput(), context()), body)
    assert fixed["metadata"]["labels"] == {"team": "a", **labels("orders")}


def test_a_secret_not_ours_is_left_untouched() -> None:
    existing = {"type": "nginx.org/jwk", "metadata": {"name": "orders-jwk"}, "data": {"jwk": "e30="}}
    with pytest.raises(OutputError, match="not ours") as conflict:
        write(NginxOutput(), context()).mutate(existing)
    assert conflict.value.reason == "OutputConflict"
    other = Owner("apps", "orders", "uid-of-an-earlier-orders")
    with pytest.raises(OutputError):
        write(NginxOutput(), context(owner=other)).mutate(apply(write(NginxOutput(), context()), None))


def test_our_secret_of_another_type_is_a_conflict() -> None:
    body = apply(write(NginxOutput(), context()), None)
    body["type"] = "Opaque"
    with pytest.raises(OutputError, match="type Opaque") as conflict:
        write(NginxOutput(), context()).mutate(body)
    assert conflict.value.reason == "OutputConflict"


def test_release_deletes_only_ours() -> None:
    (release,) = NginxOutput().release(ORDERS, ["orders-jwk"])
    assert (release.ref.kind, release.ref.name, release.ref.namespace) == ("Secret", "orders-jwk", "apps")
    assert release.mutate(apply(write(NginxOutput(), context()), None)) is DELETE
    assert release.mutate({"metadata": {"name": "orders-jwk"}}) is None
    assert release.mutate(None) is None
    assert [w.ref.name for w in NginxOutput().release(ORDERS, ["a", "b"])] == ["a", "b"]
