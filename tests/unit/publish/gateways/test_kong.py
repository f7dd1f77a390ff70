"""Kong output: one JWT credential Secret per key (ours alone), listed in a KongConsumer when one is named."""

from __future__ import annotations

import base64
import re
from typing import Any

import pytest

from jwks_operator.keys.keyset import build_key_set, thumbprint
from jwks_operator.keys.static import key_from_hmac
from jwks_operator.model.errors import SpecError
from jwks_operator.publish.allow import ALLOW_ANNOTATION
from jwks_operator.publish.gateways import parse_outputs, restore
from jwks_operator.publish.gateways.base import (
    MANAGED_ANNOTATION,
    Context,
    OutputError,
    Write,
    managed_entries,
)
from jwks_operator.publish.gateways.kong import KongOutput, secret_name
from jwks_operator.publish.outputs import labels, owner_reference
from jwks_operator.publish.writes import DELETE
from jwks_operator.resource.spec import parse_spec
from tests.material import ec_key, ed_key, public_jwk, public_pem, rsa_key
from tests.unit.publish.gateways.helpers import OLD_ORDERS, ORDERS, apply

MINE = "orders/uid-orders"  # our mark key
R1 = public_jwk(rsa_key(n=0), kid="r1")
R2 = public_jwk(rsa_key(n=1), kid="r2")
EC = public_jwk(ec_key(), kid="e1")
ED = public_jwk(ed_key(), kid="o1", alg="EdDSA")
SPEC = {"jwkUrl": "https://idp.example.com/jwks", "audiences": ["api"]}
API = KongOutput("api-user")


def context(*keys: dict[str, Any], spec: dict[str, Any] = SPEC, **kw: Any) -> Context:
    key_set = kw.pop("key_set", None) or build_key_set(keys or [R1, EC])
    return Context(ORDERS, parse_spec(spec), key_set, configmap="orders-jwks", **kw)


def name(key: dict[str, Any], consumer: str | None = "api-user") -> str:
    return secret_name("orders", consumer, key)


def data(body: dict[str, Any]) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in body["data"].items()}


def consumer(*credentials: str, **extra: Any) -> dict[str, Any]:
    return {
        "apiVersion": "configuration.konghq.com/v1",
        "kind": "KongConsumer",
        "metadata": {
            "name": "api-user",
            "namespace": "apps",
            "resourceVersion": "3",
            "annotations": {"a": "b", ALLOW_ANNOTATION: "orders"},
        },
        "username": "api",
        "credentials": list(credentials),
        **extra,
    }


def marked(body: dict[str, Any]) -> dict[str, list[str]]:
    """The credentials each mark lists (their fingerprints left out)."""
    return {key: sorted(names) for key, names in managed_entries(body).items()}


def by_kind(plan_writes: tuple[Write, ...]) -> list[tuple[str, str]]:
    return [(w.ref.kind, w.ref.name) for w in plan_writes]


def test_parse_and_registry() -> None:
    assert parse_outputs([{"kong": {}}]) == (KongOutput(),)
    assert (KongOutput().id, API.id, API.kind) == ("kong/", "kong/api-user", "Secret")
    assert restore(API.id) == API
    assert restore(KongOutput().id) == KongOutput()
    with pytest.raises(SpecError) as bad:
        KongOutput.parse({"consumer": "Not_A_Name"}, "spec.outputs[0].kong")
    assert bad.value.field == "spec.outputs[0].kong.consumer"


def test_secret_names() -> None:
    assert re.fullmatch(r"orders-kong-[0-9a-f]{10}", name(R1))
    assert len({name(R1), name(R2), name({**R1, "kid": "r1b"}), name(R1, None), name(R1, "other")}) == 5
    assert name(R1) == name(dict(R1)), "deterministic"
    long = secret_name("a" * 240 + "-b", None, R1)
    assert len(long) <= 253
    assert long.startswith("a" * 237 + "-kong-")


def test_one_owned_credential_secret_per_key() -> None:
    plan = KongOutput().plan(context(R1, EC, ED))
    assert (plan.objects, plan.keys) == ((name(R1, None), name(EC, None), name(ED, None)), 3)
    ref = plan.writes[0].ref
    assert (ref.group, ref.version, ref.plural, ref.kind, ref.namespace) == (
        "",
        "v1",
        "secrets",
        "Secret",
        "apps",
    )
    bodies = [apply(w, None) for w in plan.writes]
    expected = [(R1, "RS256", rsa_key(n=0)), (EC, "ES256", ec_key()), (ED, "EdDSA", ed_key())]
    for body, (key, alg, private) in zip(bodies, expected, strict=True):
        assert (body["apiVersion"], body["kind"], body["type"]) == ("v1", "Secret", "Opaque")
        assert body["metadata"]["labels"] == {**labels("orders"), "konghq.com/credential": "jwt"}
        assert body["metadata"]["ownerReferences"] == [owner_reference("orders", "uid-orders")]
        assert data(body) == {"key": key["kid"], "algorithm": alg, "rsa_public_key": public_pem(private)}
    assert plan.notes[-1].startswith(
        "no consumer set: Kong uses these Secrets once a KongConsumer lists them"
    )


def test_a_secret_not_ours_is_left_untouched_and_ours_is_kept_current() -> None:
    w = KongOutput().plan(context(R1)).writes[0]
    with pytest.raises(OutputError, match="not ours") as conflict:
        w.mutate({"metadata": {"name": w.ref.name}, "type": "Opaque", "data": {}})
    assert conflict.value.reason == "OutputConflict"
    body = apply(w, None)
    with pytest.raises(OutputError, match=r"type kubernetes\.io/tls, not Opaque"):
        w.mutate({**body, "type": "kubernetes.io/tls"})
    body["metadata"]["labels"] = {"team": "a"}
    body["data"]["algorithm"] = base64.b64encode(b"HS256").decode()
    fixed = apply(w, body)
    assert fixed["metadata"]["labels"] == {"team": "a", **labels("orders"), "konghq.com/credential": "jwt"}
    assert data(fixed)["algorithm"] == "RS256"


def test_one_algorithm_per_credential() -> None:
    pinned = {**SPEC, "algorithms": ["PS256", "RS512", "ES384"]}
    plan = KongOutput().plan(context(R1, EC, public_jwk(ec_key("P-384"), kid="e3"), spec=pinned))
    assert [data(apply(w, None))["algorithm"] for w in plan.writes] == ["RS512", "ES384"]
    assert plan.notes[:2] == (
        "key r1: Kong verifies it with RS512 only (one algorithm per credential)",
        "1 EC key(s) not written: no algorithm both Kong and spec.algorithms allow",
    )
    named = KongOutput().plan(context({**R1, "alg": "PS384"}))
    assert data(apply(named.writes[0], None))["algorithm"] == "PS384"
    assert not any("one algorithm" in note for note in named.notes)


def test_keys_kong_cannot_take() -> None:
    """A public key without kid has its thumbprint as kid (keyset), which Kong finds; an HMAC secret
    without kid has none, and is left out."""
    bare = public_jwk(rsa_key(n=1))
    plan = KongOutput().plan(context(R1, bare))
    assert plan.keys == 2
    written = [data(apply(w, None)) for w in plan.writes]
    assert sorted(d["key"] for d in written) == sorted(["r1", thumbprint(bare)])
    hmac = {"static": {"secretRef": {"name": "hmac", "key": "secret"}}}
    unnamed = context(spec=hmac, key_set=key_from_hmac(b"a-shared-secret-of-32-bytes-or-more"))
    with pytest.raises(OutputError, match=r"no key Kong can verify: 1 key\(s\) without kid") as none:
        KongOutput().plan(unnamed)
    assert none.value.reason == "NoUsableKeys"


def test_hmac_secret_goes_in_the_secret_as_text() -> None:
    secret = "a-shared-secret-of-32-bytes-or-more"
    hmac = {"static": {"secretRef": {"name": "hmac", "key": "secret"}}}
    plan = KongOutput().plan(context(spec=hmac, key_set=key_from_hmac(secret.encode(), kid="h1")))
    assert data(apply(plan.writes[0], None)) == {"key": "h1", "algorithm": "HS256", "secret": secret}
    with pytest.raises(OutputError, match="Kong keeps the secret as text and it is not UTF-8"):
        KongOutput().plan(context(spec=hmac, key_set=key_from_hmac(b"\xff" * 32, kid="h2")))


def test_stale_secrets_are_deleted_if_ours_after_the_consumer_is_updated() -> None:
    stale = name(R2)
    plan = API.plan(context(R1, previous=(name(R1), stale, "KongConsumer/api-user")))
    assert by_kind(plan.writes) == [
        ("KongConsumer", "api-user"), ("Secret", name(R1)), ("KongConsumer", "api-user"), ("Secret", stale),
    ]  # fmt: skip
    assert plan.objects == (name(R1), "KongConsumer/api-user")
    delete = plan.writes[-1].mutate
    assert delete(apply(API.plan(context(R2)).writes[1], None)) is DELETE
    assert delete({"metadata": {"name": stale}}) is None
    assert delete(None) is None
    listed = apply(API.plan(context(R2)).writes[-1], consumer("basic-x"))
    listed["credentials"].insert(1, name(R1))  # listed by the consumer's owner before we write it: theirs
    updated = apply(plan.writes[2], listed)
    assert updated["credentials"] == ["basic-x", name(R1)], "stale ours out (by our mark), theirs kept"
    assert marked(updated) == {}, "listed, but not by us: not ours to take out"
    unmarked = apply(plan.writes[2], consumer("basic-x", stale))
    assert unmarked["credentials"] == ["basic-x", stale, name(R1)], "not ours without our mark"


def test_the_consumer_lists_ours_and_keeps_the_others() -> None:
    w = API.plan(context(R1, EC)).writes[-1]
    assert (w.ref.group, w.ref.version, w.ref.plural, w.ref.kind, w.ref.namespace, w.ref.name) == (
        "configuration.konghq.com", "v1", "kongconsumers", "KongConsumer", "apps", "api-user",
    )  # fmt: skip
    body = apply(w, consumer("basic-x", "key-y"))
    assert body["credentials"] == ["basic-x", "key-y", name(R1), name(EC)]
    assert marked(body) == {MINE: sorted([name(R1), name(EC)])}
    assert (body["username"], body["metadata"]["annotations"]["a"]) == ("api", "b")
    assert body["metadata"]["annotations"][ALLOW_ANNOTATION] == "orders"
    fresh = consumer()
    del fresh["credentials"]
    assert apply(w, fresh)["credentials"] == [name(R1), name(EC)]
    rotated = apply(API.plan(context(R2)).writes[-1], body)
    assert rotated["credentials"] == ["basic-x", "key-y", name(R2)]
    with pytest.raises(OutputError, match="KongConsumer api-user not found in namespace apps") as gone:
        w.mutate(None)
    assert gone.value.reason == "NotFound"
    with pytest.raises(OutputError, match="credentials is not a list of names"):
        w.mutate(consumer(credentials="basic-x"))


def test_a_previous_consumer_is_emptied_of_ours() -> None:
    old = name(R1, "old-user")
    plan = API.plan(context(R1, previous=(old, "KongConsumer/old-user")))
    assert by_kind(plan.writes) == [
        ("KongConsumer", "api-user"),
        ("Secret", name(R1)),
        ("KongConsumer", "api-user"),
        ("KongConsumer", "old-user"),
        ("Secret", old),
    ]
    was = consumer("basic-x", old)
    was["metadata"]["annotations"][MANAGED_ANNOTATION] = f'{{"{MINE}": ["{old}"], "billing/u": ["b"]}}'
    del was["metadata"]["annotations"][ALLOW_ANNOTATION]  # not needed to take ours out
    emptied = apply(plan.writes[3], was)
    assert emptied["credentials"] == ["basic-x"]
    assert managed_entries(emptied) == {"billing/u": ["b"]}
    assert plan.writes[3].mutate(None) is None, "a consumer since deleted is fine"
    del was["credentials"]
    assert "credentials" not in apply(plan.writes[3], was), "no empty list added"


def test_release_takes_ours_out_of_the_consumer_then_deletes_our_secrets() -> None:
    objects = API.plan(context(R1, EC)).objects
    output = restore(API.id)
    assert output is not None
    writes = output.release(ORDERS, objects)
    assert by_kind(writes) == [("KongConsumer", "api-user"), ("Secret", name(R1)), ("Secret", name(EC))]
    listed = apply(API.plan(context(R1, EC)).writes[-1], consumer("basic-x"))
    released = apply(writes[0], listed)
    assert released["credentials"] == ["basic-x"]
    assert MANAGED_ANNOTATION not in released["metadata"]["annotations"]
    assert writes[0].mutate(None) is None
    assert writes[1].mutate(apply(API.plan(context(R1, EC)).writes[1], None)) is DELETE
    assert writes[1].mutate({"metadata": {"name": name(R1)}}) is None
    assert by_kind(KongOutput().release(ORDERS, [name(R1, None)])) == [("Secret", name(R1, None))]


def test_the_consumer_is_checked_before_any_secret_is_written() -> None:
    """A consumer missing, or not letting us in, fails the output before a Secret exists that
    status.outputs would not record (a failed write keeps the previous objects)."""
    plan = API.plan(context(R1, EC))
    assert by_kind(plan.writes)[:2] == [("KongConsumer", "api-user"), ("Secret", name(R1))]
    check = plan.writes[0].mutate
    forbidding = consumer()
    del forbidding["metadata"]["annotations"][ALLOW_ANNOTATION]
    for existing, reason in (
        (None, "NotFound"),
        (forbidding, "NotAllowed"),
        (consumer(credentials=1), "Invalid"),
    ):
        with pytest.raises(OutputError) as failed:
            check(existing)
        assert failed.value.reason.startswith(reason)
    assert check(consumer("basic-x")) is None, "the check writes nothing"


def test_the_consumers_owner_must_allow_the_jwtsecret() -> None:
    update = API.plan(context(R1)).writes[-1]
    for allow in (None, "billing", "orders-2"):
        existing = consumer()
        existing["metadata"]["annotations"].pop(ALLOW_ANNOTATION)
        if allow is not None:
            existing["metadata"]["annotations"][ALLOW_ANNOTATION] = allow
        with pytest.raises(OutputError) as refused:
            update.mutate(existing)
        assert refused.value.reason == "NotAllowed"
        assert str(refused.value) == (
            "KongConsumer api-user does not allow JwtSecret orders to manage its credentials: "
            'add the annotation jwks.dev/allow-jwtsecrets: orders (or "*")'
        )
    listed = apply(update, consumer("basic-x"))
    del listed["metadata"]["annotations"][ALLOW_ANNOTATION]
    released = apply(API.release(ORDERS, API.plan(context(R1)).objects)[0], listed)
    assert released["credentials"] == ["basic-x"]


def test_a_jwtsecret_recreated_under_the_same_name_is_another_owner() -> None:
    old_write = API.plan(Context(OLD_ORDERS, parse_spec(SPEC), build_key_set([R2]), "orders-jwks")).writes[-1]
    old = apply(old_write, consumer("basic-x"))
    with pytest.raises(OutputError, match=r"JwtSecret orders \(uid uid-old, not this one\)") as conflict:
        API.plan(context(R2)).writes[0].mutate(old)
    assert conflict.value.reason == "OutputConflict"
    joint = apply(API.plan(context(R1)).writes[-1], old)
    assert joint["credentials"] == ["basic-x", name(R2), name(R1)]
    assert marked(joint) == {"orders/uid-old": [name(R2)], MINE: [name(R1)]}
    release = API.release(OLD_ORDERS, (name(R2), name(R1), "KongConsumer/api-user"))[0]
    left = apply(release, joint)
    assert left["credentials"] == ["basic-x", name(R1)], "the old one's release leaves the new one's"
    assert marked(left) == {MINE: [name(R1)]}
