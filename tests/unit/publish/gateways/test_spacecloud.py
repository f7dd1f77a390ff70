"""Space Cloud output: our RS256_PUBLIC (or HS256) entries in a project's ConfigMap, all the rest kept."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from jwks_operator.keys.keyset import build_key_set, thumbprint
from jwks_operator.keys.static import key_from_hmac
from jwks_operator.model.errors import SpecError
from jwks_operator.publish.allow import ALLOW_ANNOTATION
from jwks_operator.publish.bodies import Owner
from jwks_operator.publish.gateways import parse_outputs, restore
from jwks_operator.publish.gateways.base import MANAGED_ANNOTATION, Context, OutputError, Write
from jwks_operator.publish.gateways.spacecloud import SpaceCloudOutput
from jwks_operator.resource.spec import parse_spec
from tests.material import ec_key, ed_key, public_jwk, public_pem, rsa_key
from tests.unit.publish.gateways.helpers import apply

ORDERS = Owner("space-cloud", "orders", "uid-orders")
OLD_ORDERS = Owner(
    "space-cloud", "orders", "uid-old"
)  # a JwtSecret orders deleted since, recreated as ORDERS
MINE = "orders/uid-orders"  # our mark key
SHOP = SpaceCloudOutput("shop")
NAME = "default--shop--project--shop"
R1, R2, R3 = (public_jwk(rsa_key(n=i), kid=f"r{i + 1}") for i in range(3))
PEMS = {f"r{i + 1}": public_pem(rsa_key(n=i)) for i in range(3)}
EC = public_jwk(ec_key(), kid="e1")
ED = public_jwk(ed_key(), kid="o1")
SPEC = {
    "jwkUrl": "https://idp.example.com/jwks",
    "audiences": ["api"],
    "issuers": ["https://idp.example.com/"],
}
HMAC_SPEC = {"static": {"secretRef": {"name": "hmac", "key": "secret"}}, "audiences": ["api"]}
ADMIN = {"isPrimary": True, "alg": "HS256", "kid": "admin", "secret": "their-secret", "aud": None}
AUTH0 = {"isPrimary": False, "alg": "JWK_URL", "kid": "auth0", "jwkUrl": "https://auth0.example/jwks"}
PROJECT = {
    "id": "shop",
    "name": "Shop ✓",
    "aesKey": "a2V5",
    "contextTimeGraphQL": 10,
    "future": {"x": [1.5, None]},
}


def context(*keys: dict[str, Any], spec: dict[str, Any] = SPEC, owner: Owner = ORDERS, **kw: Any) -> Context:
    key_set = kw.pop("key_set", None) or build_key_set(keys or [R1, R2])
    return Context(owner, parse_spec(spec), key_set, configmap=f"{owner.name}-jwks", **kw)


def project(
    *secrets: dict[str, Any],
    marks: dict[str, list[str]] | None = None,
    allow: str | None = "*",
    **config: Any,
) -> dict[str, Any]:
    """A project ConfigMap as Space Cloud's kube store writes it (store_kube.go SetResource), its owner
    letting the JwtSecrets `allow` names in."""
    meta: dict[str, Any] = {
        "name": NAME,
        "namespace": "space-cloud",
        "resourceVersion": "7",
        "labels": {"kind": "project", "projectId": "shop", "clusterId": "default"},
        "annotations": {} if allow is None else {ALLOW_ANNOTATION: allow},
    }
    if marks is not None:
        meta["annotations"].update({MANAGED_ANNOTATION: json.dumps(marks), "team": "a"})
    if not meta["annotations"]:
        del meta["annotations"]
    body = {**PROJECT, "secrets": list(secrets), **config}
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": meta,
        "data": {"id": NAME, "data": json.dumps(body)},
    }


def the_write(ctx: Context, output: SpaceCloudOutput = SHOP) -> Write:
    plan = output.plan(ctx)
    assert len(plan.writes) == 1
    return plan.writes[0]


def config(body: dict[str, Any]) -> dict[str, Any]:
    return dict(json.loads(body["data"]["data"]))


def marks(body: dict[str, Any]) -> Any:
    """The kids each mark lists (their fingerprints left out)."""
    return {
        k: sorted(ids) for k, ids in json.loads(body["metadata"]["annotations"][MANAGED_ANNOTATION]).items()
    }


def entry(key: dict[str, Any], **over: Any) -> dict[str, Any]:
    """The entry we write for an RSA key of SPEC, every field Space Cloud serialises."""
    return {
        "isPrimary": False,
        "alg": "RS256_PUBLIC",
        "kid": key.get("kid") or thumbprint(key),
        "jwkUrl": "",
        "aud": ["api"],
        "iss": ["https://idp.example.com/"],
        "secret": "",
        "publicKey": PEMS.get(key.get("kid", ""), ""),
        "privateKey": "",
        **over,
    }


def test_parse_and_registry() -> None:
    assert parse_outputs([{"spaceCloud": {"projectId": "shop"}}]) == (SHOP,)
    assert (SHOP.id, SHOP.kind, SHOP.configmap) == ("spaceCloud/shop/default", "ConfigMap", NAME)
    assert restore(SHOP.id) == SHOP
    parsed = SpaceCloudOutput.parse({"projectId": "My_Shop", "clusterId": "prod_1", "allowHmac": True}, "p")
    assert parsed == SpaceCloudOutput("My_Shop", "prod_1", allow_hmac=True)
    assert parsed.configmap == "prod-1--my-shop--project--my-shop"
    assert restore(parsed.id) == SpaceCloudOutput("My_Shop", "prod_1"), "allowHmac is not part of the id"
    two = [{"spaceCloud": {"projectId": "shop"}}, {"spaceCloud": {"projectId": "shop", "clusterId": "eu"}}]
    assert [o.id for o in parse_outputs(two)] == ["spaceCloud/shop/default", "spaceCloud/shop/eu"]
    bad_specs: list[tuple[dict[str, Any], str]] = [
        ({}, "p.projectId"),
        ({"projectId": "a b"}, "p.projectId"),
        ({"projectId": "shop-"}, "p.projectId"),
        ({"projectId": "shop", "clusterId": "a b"}, "p.clusterId"),
        ({"projectId": "shop", "clusterId": "-eu"}, "p.clusterId"),
        ({"projectId": "shop", "clusterId": "c" * 240}, "p.clusterId"),
        ({"projectId": "p" * 120}, "p.projectId"),
        ({"projectId": "s", "allowHmac": 1}, "p.allowHmac"),
    ]
    for raw, field in bad_specs:
        with pytest.raises(SpecError) as bad:
            SpaceCloudOutput.parse(raw, "p")
        assert bad.value.field == field


def test_plan_writes_the_project_configmap_of_our_namespace() -> None:
    plan = SHOP.plan(context(R1, EC, R2, ED))
    assert (plan.objects, plan.keys) == ((NAME,), 2)
    assert plan.notes == (
        "1 EC key(s) not written: Space Cloud verifies RSA only",
        "1 OKP key(s) not written: Space Cloud verifies RSA only",
        "Space Cloud verifies RS256 only: tokens signed PS256, PS384, PS512, RS384, RS512 by key(s) r1, r2 "
        "will be refused (set the keys' alg, or spec.algorithms, to RS256)",
    )
    ref = plan.writes[0].ref
    assert (ref.group, ref.version, ref.plural, ref.kind, ref.namespace, ref.name) == (
        "", "v1", "configmaps", "ConfigMap", "space-cloud", NAME,
    )  # fmt: skip


def test_a_jwtsecret_outside_namespace_space_cloud_is_an_error() -> None:
    with pytest.raises(OutputError) as wrong:
        SHOP.plan(context(owner=Owner("apps", "orders", "u")))
    assert wrong.value.reason == "WrongNamespace"
    assert str(wrong.value) == (
        "Space Cloud reads project ConfigMaps in namespace space-cloud only, and this JwtSecret is in apps: "
        "create it in space-cloud"
    )


def test_entries_are_added_and_everything_else_kept_exactly() -> None:
    existing = project(ADMIN, AUTH0, marks={"billing": ["b1"]})
    body = apply(the_write(context()), existing)
    assert config(body) == {**PROJECT, "secrets": [ADMIN, AUTH0, entry(R1), entry(R2)]}
    assert list(config(body)) == list(json.loads(existing["data"]["data"])), "key order kept"
    assert '"name":"Shop ✓"' in body["data"]["data"], "compact, text kept as is"
    assert body["data"]["id"] == NAME
    assert body["metadata"]["labels"] == existing["metadata"]["labels"]
    assert body["metadata"]["annotations"]["team"] == "a"
    assert marks(body) == {"billing": ["b1"], MINE: ["r1", "r2"]}
    assert "ownerReferences" not in body["metadata"], "Space Cloud's ConfigMap is never ours"
    pem = config(body)["secrets"][2]["publicKey"]
    loaded = serialization.load_pem_public_key(pem.encode())
    assert isinstance(loaded, rsa.RSAPublicKey)
    assert loaded.public_numbers() == rsa_key(n=0).public_key().public_numbers()


def test_space_clouds_own_rewrite_of_our_entries_is_not_a_change() -> None:
    body = apply(the_write(context(spec={"jwkUrl": "https://idp.example.com/jwks"})), project(ADMIN))
    ours = config(body)["secrets"][1:]
    assert [(e["aud"], e["iss"]) for e in ours] == [([], [])] * 2
    # Go marshals a nil slice as null; an older Space Cloud may not have had jwkUrl
    rewritten = [{k: None if v == [] else v for k, v in e.items() if k != "jwkUrl"} for e in ours]
    body["data"]["data"] = json.dumps({**config(body), "secrets": [ADMIN, *rewritten]})
    assert the_write(context(spec={"jwkUrl": "https://idp.example.com/jwks"})).mutate(body) is None


def test_rotation_replaces_ours_in_place_and_keeps_the_others() -> None:
    previous = apply(the_write(context(R1, R2)), project(ADMIN, AUTH0))
    previous["data"]["data"] = json.dumps(
        {**config(previous), "secrets": [entry(R1), ADMIN, entry(R2), AUTH0]}
    )
    body = apply(the_write(context(R2, R3)), previous)
    assert config(body)["secrets"] == [ADMIN, entry(R2), AUTH0, entry(R3)]
    assert marks(body) == {MINE: ["r2", "r3"]}
    changed = apply(the_write(context(R1, spec={**SPEC, "audiences": ["api", "web"]})), previous)
    assert config(changed)["secrets"] == [entry(R1, aud=["api", "web"]), ADMIN, AUTH0]


@pytest.mark.parametrize(
    ("holder", "marked", "message"),
    [
        (
            {**entry(R1), "publicKey": "another key"},
            {},
            "kid r1 in ConfigMap default--shop--project--shop is an entry we did not write",
        ),
        (entry(R1), {"billing/u": ["r1"]}, "is an entry of JwtSecret billing"),
        (
            entry(R1),
            {"orders/uid-old": ["r1"]},
            r"is an entry of JwtSecret orders \(uid uid-old, not this one\)",
        ),
        (entry(R1), {}, "is an entry we did not write"),
        ({**entry(R1), "extra": 1}, {"orders/uid-old": ["r2"]}, "is an entry we did not write"),
        ({**ADMIN, "kid": "r1"}, {}, "is the primary secret"),
        ({**entry(R1), "isPrimary": True}, {MINE: ["r1"]}, "is the primary secret"),
        (entry(R1), {MINE: {"r1": "0" * 32}}, "is an entry we did not write"),  # not the fingerprint we wrote
    ],
)
def test_a_kid_held_by_an_entry_not_ours_is_a_conflict(
    holder: dict[str, Any], marked: Any, message: str
) -> None:
    with pytest.raises(OutputError, match=message) as conflict:
        the_write(context()).mutate(project(AUTH0, holder, marks=marked))
    assert conflict.value.reason == "OutputConflict"


def test_our_marked_entry_is_kept_as_is_when_it_says_what_ours_says() -> None:
    body = apply(the_write(context()), project(ADMIN, {**entry(R1), "extra": 1}, marks={MINE: ["r1"]}))
    assert config(body)["secrets"] == [ADMIN, {**entry(R1), "extra": 1}, entry(R2)]
    assert marks(body) == {MINE: ["r1", "r2"]}


def test_a_jwtsecret_recreated_under_the_same_name_is_another_owner() -> None:
    old = apply(the_write(context(R1, owner=OLD_ORDERS)), project(ADMIN))
    joint = apply(the_write(context(R2)), old)
    assert marks(joint) == {"orders/uid-old": ["r1"], MINE: ["r2"]}
    (release,) = SHOP.release(OLD_ORDERS, [NAME])
    left = apply(release, joint)
    assert config(left)["secrets"] == [ADMIN, entry(R2)], "the old one's release leaves the new one's"
    assert marks(left) == {MINE: ["r2"]}


def test_the_projects_owner_must_allow_the_jwtsecret() -> None:
    for allow in (None, "billing"):
        with pytest.raises(OutputError) as refused:
            the_write(context()).mutate(project(ADMIN, allow=allow))
        assert refused.value.reason == "NotAllowed"
        assert str(refused.value) == (
            f"ConfigMap {NAME} does not allow JwtSecret orders to manage its secrets: "
            'add the annotation jwks.dev/allow-jwtsecrets: orders (or "*")'
        )
    ours = apply(the_write(context()), project(ADMIN, allow="billing, orders"))
    del ours["metadata"]["annotations"][ALLOW_ANNOTATION]  # the owner takes it back: release still works
    released = apply(SHOP.release(ORDERS, [NAME])[0], ours)
    assert config(released)["secrets"] == [ADMIN]
    assert released["metadata"] == project(allow=None)["metadata"]


def test_the_project_configmap_must_exist_and_be_a_project() -> None:
    with pytest.raises(
        OutputError, match=f"project shop has no ConfigMap {NAME} in namespace space-cloud"
    ) as gone:
        the_write(context()).mutate(None)
    assert gone.value.reason == "NotFound"
    plain = project()
    del plain["metadata"]["labels"]["kind"]
    with pytest.raises(OutputError, match="is not a Space Cloud project") as conflict:
        the_write(context()).mutate(plain)
    assert conflict.value.reason == "OutputConflict"


@pytest.mark.parametrize("data", ["{not json", "[]", '{"secrets": {}}', '{"secrets": [1]}', '"x"', None])
def test_malformed_project_json_is_an_error_naming_it(data: str | None) -> None:
    existing = project()
    existing["data"] = {"id": NAME} if data is None else {"id": NAME, "data": data}
    for w in (the_write(context()), *SHOP.release(ORDERS, [NAME])):
        with pytest.raises(
            OutputError, match=f"ConfigMap {NAME}: data.data is not a Space Cloud project"
        ) as bad:
            w.mutate(existing)
        assert bad.value.reason == "InvalidProjectConfig"


def test_keys_space_cloud_cannot_verify() -> None:
    with pytest.raises(OutputError, match="no key Space Cloud can verify: 1 EC key") as none:
        SHOP.plan(context(EC))
    assert none.value.reason == "NoUsableKeys"
    with pytest.raises(OutputError, match=r"1 RSA key\(s\) not written: Space Cloud verifies RS256 only"):
        SHOP.plan(context(R1, spec={**SPEC, "algorithms": ["PS256"]}))
    plan = SHOP.plan(context(R1, {**R2, "alg": "PS256"}))
    assert (plan.keys, plan.notes[0]) == (1, "1 RSA key(s) not written: Space Cloud verifies RS256 only")
    assert plan.notes[1].startswith(
        "Space Cloud verifies RS256 only: tokens signed PS256, PS384, PS512, RS384, "
    )
    assert "by key(s) r1 will be refused" in plan.notes[1]


def test_rs256_only_is_said_only_when_other_rsa_algorithms_are_allowed() -> None:
    """RS256_PUBLIC verifies RS256 only: said for a key without alg, unless spec.algorithms allows no other
    RSA algorithm, and never for a key whose alg is RS256."""
    assert SHOP.plan(context({**R1, "alg": "RS256"})).notes == ()
    assert SHOP.plan(context(R1, spec={**SPEC, "algorithms": ["RS256", "ES256"]})).notes == ()
    (note,) = SHOP.plan(context(R1, spec={**SPEC, "algorithms": ["RS256", "PS256"]})).notes
    assert note == (
        "Space Cloud verifies RS256 only: tokens signed PS256 by key(s) r1 will be refused "
        "(set the keys' alg, or spec.algorithms, to RS256)"
    )


def test_a_key_without_kid_gets_its_thumbprint() -> None:
    bare = public_jwk(rsa_key())
    body = apply(the_write(context(bare)), project())
    assert config(body)["secrets"] == [entry(bare, publicKey=public_pem(rsa_key()))]
    assert marks(body) == {MINE: [thumbprint(bare)]}


def test_hmac_needs_allow_hmac_and_the_secrets_consent_and_then_writes_hs256() -> None:
    secret = "a-shared-secret-of-32-bytes-or-more"
    ctx = context(spec=HMAC_SPEC, key_set=key_from_hmac(secret.encode(), kid="h1", exportable=True))
    with pytest.raises(OutputError, match="stored in the Space Cloud project's ConfigMap") as refused:
        SHOP.plan(ctx)
    assert refused.value.reason == "SecretNotAllowed"
    unconsented = context(spec=HMAC_SPEC, key_set=key_from_hmac(secret.encode(), kid="h1"))
    with pytest.raises(OutputError) as refused:
        SpaceCloudOutput("shop", allow_hmac=True).plan(unconsented)
    assert refused.value.reason == "HmacExportNotAllowed"
    assert str(refused.value) == (
        f"the HMAC secret of Secret hmac would be stored in ConfigMap {NAME}, and the Secret's owner has not "
        "allowed it to leave Secrets: add the annotation jwks.dev/allow-hmac-export: orders (or "
        'orders/uid-orders, or "*") to Secret hmac; nothing was written'
    )
    body = apply(the_write(ctx, SpaceCloudOutput("shop", allow_hmac=True)), project(ADMIN))
    hs = {**entry(R1, alg="HS256", kid="h1", iss=[], secret=secret), "publicKey": ""}
    assert config(body)["secrets"] == [ADMIN, hs]
    binary = context(spec=HMAC_SPEC, key_set=key_from_hmac(b"\xff" * 32, kid="h2", exportable=True))
    with pytest.raises(OutputError, match="keeps the secret as text and this one is not UTF-8"):
        SpaceCloudOutput("shop", allow_hmac=True).plan(binary)
    hs512 = context(
        spec=HMAC_SPEC, key_set=key_from_hmac(b"x" * 64, kid="h3", algorithms=["HS512"], exportable=True)
    )
    with pytest.raises(OutputError, match=r"1 HMAC key\(s\) not written: Space Cloud verifies HS256 only"):
        SpaceCloudOutput("shop", allow_hmac=True).plan(hs512)


def test_secret_source_admin_is_refused_and_nothing_is_written() -> None:
    w = the_write(context())
    with pytest.raises(OutputError, match="secretSource: admin, so it ignores its secrets") as caught:
        w.mutate(project(ADMIN, secretSource="admin"))
    assert caught.value.reason == "SecretsIgnored"
    assert apply(w, project(ADMIN)) is not None, "the same write goes through once secretSource is cleared"


def test_release_removes_only_ours() -> None:
    ours = apply(the_write(context()), project(ADMIN, AUTH0, marks={"billing/u": ["auth0"]}))
    output = restore("spaceCloud/shop/default")
    assert output is not None
    (release,) = output.release(ORDERS, [NAME])
    assert (release.ref.namespace, release.ref.name) == ("space-cloud", NAME)
    body = apply(release, ours)
    assert config(body) == {**PROJECT, "secrets": [ADMIN, AUTH0]}
    assert marks(body) == {"billing/u": ["auth0"]}
    assert release.mutate(None) is None
    assert release.mutate(project(ADMIN)) is None
    alone = apply(release, apply(the_write(context()), project()))
    assert config(alone) == PROJECT
    assert alone["metadata"]["annotations"] == {ALLOW_ANNOTATION: "*"}, "our mark gone, the rest kept"


def test_a_previous_project_configmap_is_released() -> None:
    moved = SpaceCloudOutput("shop", "prod")
    plan = moved.plan(context(previous=(NAME,)))
    assert [w.ref.name for w in plan.writes] == ["prod--shop--project--shop", NAME]
    assert config(apply(plan.writes[1], apply(the_write(context()), project(ADMIN))))["secrets"] == [ADMIN]
    assert len(SHOP.plan(context(previous=(NAME,))).writes) == 1


def test_an_owner_may_pin_the_jwtsecret_it_allows_to_its_uid() -> None:
    """`orders/uid-orders` in the allow annotation admits that JwtSecret, not another one created later
    under its name (a bare name admits whichever bears it)."""
    pinned = project(allow="billing, orders/uid-orders")
    assert isinstance(apply(the_write(context(R1)), pinned), dict)
    with pytest.raises(OutputError) as refused:
        the_write(context(R1, owner=OLD_ORDERS)).mutate(pinned)
    assert refused.value.reason == "NotAllowed"
    assert isinstance(apply(the_write(context(R1, owner=OLD_ORDERS)), project(allow="orders")), dict)


@pytest.mark.parametrize(
    ("output", "exportable", "reason"),
    [
        (SpaceCloudOutput("shop", allow_hmac=True), False, "HmacExportNotAllowed"),
        (SHOP, True, "SecretNotAllowed"),
    ],
    ids=["consent-withdrawn", "allowHmac-dropped"],
)
def test_an_hmac_secret_no_longer_allowed_in_the_configmap_is_taken_out(
    output: SpaceCloudOutput, exportable: bool, reason: str
) -> None:
    """What was written while both allowed it comes out before the refusal is reported (the entries of
    others stay), and the message says so."""
    secret = "a-shared-secret-of-32-bytes-or-more"
    allowed = context(spec=HMAC_SPEC, key_set=key_from_hmac(secret.encode(), kid="h1", exportable=True))
    written = apply(the_write(allowed, SpaceCloudOutput("shop", allow_hmac=True)), project(ADMIN))
    keys = key_from_hmac(secret.encode(), kid="h1", exportable=exportable)
    plan = output.plan(context(spec=HMAC_SPEC, key_set=keys, previous=(NAME,)))
    (release, refusal) = plan.writes
    assert (plan.objects, plan.keys) == ((), 0)
    released = apply(release, written)
    assert config(released)["secrets"] == [ADMIN]
    assert MANAGED_ANNOTATION not in released["metadata"].get("annotations", {})
    with pytest.raises(OutputError) as refused:
        refusal.mutate(released)
    assert refused.value.reason == reason
    assert str(refused.value).endswith(f"; the entries this JwtSecret had written in {NAME} were removed")


def test_an_entry_the_project_admin_adds_later_with_a_kid_we_use_is_kept() -> None:
    """Issue 23, item 3: entries are ours by what we wrote, not by kid. The admin's entry of our kid r1 (other
    key material) is neither replaced by our next write (a conflict: Space Cloud indexes secrets by kid)
    nor deleted by our release."""
    ours = apply(the_write(context()), project(ADMIN))
    theirs = {**entry(R1), "publicKey": PEMS["r3"], "aud": ["admin-api"]}
    ours["data"]["data"] = json.dumps({**config(ours), "secrets": [*config(ours)["secrets"], theirs]})
    with pytest.raises(OutputError, match=f"kid r1 in ConfigMap {NAME} is also held by an entry") as conflict:
        the_write(context()).mutate(ours)
    assert conflict.value.reason == "OutputConflict"
    released = apply(SHOP.release(ORDERS, [NAME])[0], ours)
    assert [json.dumps(e) for e in config(released)["secrets"]] == [json.dumps(ADMIN), json.dumps(theirs)]
    assert MANAGED_ANNOTATION not in released["metadata"]["annotations"]
