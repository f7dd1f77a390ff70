"""Envoy Gateway output: our jwt providers (localJWKS from our ConfigMap) in a user's SecurityPolicy."""

from __future__ import annotations

import base64
import json
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from jwks_operator.keys.keyset import KeySet, build_key_set
from jwks_operator.model.errors import SpecError
from jwks_operator.publish.allow import ALLOW_ANNOTATION
from jwks_operator.publish.bodies import Owner
from jwks_operator.publish.gateways import parse_outputs
from jwks_operator.publish.gateways.base import MANAGED_ANNOTATION, Context, OutputError, Write
from jwks_operator.publish.gateways.envoygateway import (
    MAX_PROVIDERS,
    EnvoyGatewayOutput,
    closed_jwks,
    closed_provider,
)
from tests.material import ec_key, public_jwk, rsa_key
from tests.unit.publish.gateways.helpers import ISSUER, OLD_ORDERS, ORDERS, apply, url_context

BILLING = Owner("apps", "billing", "uid-billing")
MINE, THEIRS = "orders/uid-orders", "billing/uid-billing"  # their mark keys
KEYS = build_key_set([public_jwk(ec_key(), kid="e1"), public_jwk(rsa_key(), kid="r1")])
OUTPUT = EnvoyGatewayOutput("orders-jwt")
LOCAL = {"type": "ValueRef", "valueRef": {"group": "", "kind": "ConfigMap", "name": "orders-jwks"}}
USER_PROVIDER = {
    "name": "corp",
    "issuer": "https://corp.example.com",
    "remoteJWKS": {"uri": "https://corp/keys"},
}


def context(owner: Owner = ORDERS, key_set: KeySet = KEYS, **spec: Any) -> Context:
    return url_context(owner, key_set, **spec)


def write(ctx: Context, output: EnvoyGatewayOutput = OUTPUT) -> Write:
    plan = output.plan(ctx)
    assert len(plan.writes) == 1
    return plan.writes[0]


def policy(*providers: dict[str, Any], allow: str | None = "*", **spec: Any) -> dict[str, Any]:
    """A user's SecurityPolicy (jwt only when providers are given), letting `allow` in."""
    meta = {"name": "orders-jwt", "namespace": "apps", "resourceVersion": "3"}
    body: dict[str, Any] = {
        "apiVersion": "gateway.envoyproxy.io/v1alpha1",
        "kind": "SecurityPolicy",
        "metadata": {**meta, **({"annotations": {ALLOW_ANNOTATION: allow}} if allow is not None else {})},
        "spec": {
            "targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": "orders"}]
        },
    }
    if providers:
        body["spec"]["jwt"] = {"providers": list(providers)}
    body["spec"].update(spec)
    return body


def mark(existing: dict[str, Any]) -> dict[str, list[str]]:
    """The provider names each mark lists (their fingerprints left out)."""
    marks = json.loads(existing["metadata"]["annotations"][MANAGED_ANNOTATION])
    return {key: sorted(names) for key, names in marks.items()}


def ours(
    name: str = "orders", issuer: str | None = ISSUER, audiences: list[str] | None = None
) -> dict[str, Any]:
    provider: dict[str, Any] = {"name": name}
    if issuer is not None:
        provider["issuer"] = issuer
    provider["audiences"] = ["orders"] if audiences is None else audiences
    if not provider["audiences"]:
        del provider["audiences"]
    return {**provider, "localJWKS": LOCAL}


def test_parse_and_registry() -> None:
    parsed = parse_outputs([{"envoyGateway": {"securityPolicy": "orders-jwt", "provider": "auth0"}}])
    assert parsed == (EnvoyGatewayOutput("orders-jwt", "auth0"),)
    assert (OUTPUT.id, OUTPUT.kind) == ("envoyGateway/orders-jwt", "SecurityPolicy")
    with pytest.raises(SpecError, match=r"p\.securityPolicy"):
        EnvoyGatewayOutput.parse({"provider": "x"}, "p")
    with pytest.raises(SpecError, match=r"p\.provider"):
        EnvoyGatewayOutput.parse({"securityPolicy": "a", "provider": "no space"}, "p")
    with pytest.raises(SpecError, match=r"p\.provider"):
        EnvoyGatewayOutput.parse({"securityPolicy": "a", "provider": "Upper.Prefix/name"}, "p")
    assert EnvoyGatewayOutput.parse({"securityPolicy": "a", "provider": "example.com/auth_0"}, "p").provider
    with pytest.raises(SpecError, match=r"p\.provider"):
        EnvoyGatewayOutput.parse({"securityPolicy": "a", "provider": "x" * 64}, "p")


def test_plan_names_the_policy_and_counts_keys() -> None:
    plan = OUTPUT.plan(context())
    assert (plan.objects, plan.keys, plan.notes) == (("orders-jwt",), 2, ())
    ref = plan.writes[0].ref
    assert (ref.group, ref.version, ref.plural, ref.kind, ref.namespace, ref.name) == (
        "gateway.envoyproxy.io",
        "v1alpha1",
        "securitypolicies",
        "SecurityPolicy",
        "apps",
        "orders-jwt",
    )


def test_an_absent_policy_is_not_created() -> None:
    with pytest.raises(OutputError, match="targetRefs") as absent:
        write(context()).mutate(None)
    assert absent.value.reason == "NotFound"
    assert "SecurityPolicy orders-jwt not found" in str(absent.value)
    assert "jwt provider orders" in str(absent.value)


def test_adds_our_provider_reading_our_configmap() -> None:
    existing = policy()
    body = apply(write(context()), existing)
    assert body["spec"] == {**existing["spec"], "jwt": {"providers": [ours()]}}
    assert body["metadata"] == {
        **existing["metadata"],
        "annotations": {
            ALLOW_ANNOTATION: "*",
            MANAGED_ANNOTATION: body["metadata"]["annotations"][MANAGED_ANNOTATION],
        },
    }
    assert mark(body) == {MINE: ["orders"]}
    assert "ownerReferences" not in body["metadata"]
    assert "labels" not in body["metadata"]


def test_key_rotation_writes_nothing() -> None:
    """The provider names our ConfigMap: new keys reach Envoy Gateway through it, not through the policy."""
    body = apply(write(context()), policy())
    rotated = build_key_set([public_jwk(ec_key(n=1), kid="e2")])
    assert write(context(key_set=rotated)).mutate(body) is None


def test_one_provider_per_issuer_named_after_the_provider() -> None:
    issuers = ["https://a.example.com", "https://b.example.com", "https://c.example.com"]
    output = EnvoyGatewayOutput("orders-jwt", "auth0")
    body = apply(write(context(issuers=issuers, audiences=None), output), policy())
    assert body["spec"]["jwt"]["providers"] == [
        ours("auth0", issuers[0], []),
        ours("auth0-2", issuers[1], []),
        ours("auth0-3", issuers[2], []),
    ]
    assert mark(body) == {MINE: ["auth0", "auth0-2", "auth0-3"]}
    fewer = apply(write(context(issuers=issuers[:1], audiences=None), output), body)
    assert fewer["spec"]["jwt"]["providers"] == [ours("auth0", issuers[0], [])]
    assert mark(fewer) == {MINE: ["auth0"]}


def test_no_issuer_one_provider_without_issuer_and_a_note() -> None:
    plan = OUTPUT.plan(context(issuers=None))
    assert plan.notes == ("spec.issuers is empty: Envoy Gateway does not check the issuer",)
    body = apply(plan.writes[0], policy())
    assert body["spec"]["jwt"]["providers"] == [ours(issuer=None)]


def test_shared_target_note() -> None:
    plan = OUTPUT.plan(context(target={"name": "gateway-jwks", "shared": True}))
    assert any("shared" in note and "every contributor" in note for note in plan.notes)


def test_keeps_other_providers_jwt_settings_and_user_fields_on_ours() -> None:
    existing = policy(USER_PROVIDER)
    existing["spec"]["jwt"]["optional"] = True
    body = apply(write(context()), existing)
    assert body["spec"]["jwt"] == {"optional": True, "providers": [USER_PROVIDER, ours()]}
    provider = body["spec"]["jwt"]["providers"][1]
    extra = {"claimToHeaders": [{"header": "x-sub", "claim": "sub"}], "extractFrom": {"cookies": ["tok"]}}
    provider.update(extra, remoteJWKS={"uri": "https://evil.example.com/keys"})
    fixed = apply(write(context()), body)
    assert fixed["spec"]["jwt"]["providers"] == [USER_PROVIDER, {**extra, **ours()}]
    provider.update(issuer="edited")  # no longer what we wrote: not provably ours
    with pytest.raises(
        OutputError, match="or its issuer, audiences or localJWKS were changed since"
    ) as changed:
        write(context()).mutate(body)
    assert changed.value.reason == "OutputConflict"
    assert apply(OUTPUT.release(ORDERS, ["orders-jwt"])[0], body)["spec"]["jwt"]["providers"] == [
        USER_PROVIDER,
        provider,
    ]


def test_a_users_provider_of_our_name_is_a_conflict() -> None:
    existing = policy({**USER_PROVIDER, "name": "orders"})
    with pytest.raises(OutputError, match="that jwks-operator did not write") as conflict:
        write(context()).mutate(existing)
    assert conflict.value.reason == "OutputConflict"


def test_another_jwtsecrets_provider_of_our_name_is_a_conflict() -> None:
    theirs = apply(write(context(owner=BILLING), EnvoyGatewayOutput("orders-jwt", "orders")), policy())
    with pytest.raises(OutputError, match="JwtSecret billing") as conflict:
        write(context()).mutate(theirs)
    assert conflict.value.reason == "OutputConflict"


def test_two_jwtsecrets_share_a_policy() -> None:
    first = apply(write(context()), policy(USER_PROVIDER))
    both = apply(write(context(owner=BILLING, issuers=["https://billing.example.com"])), first)
    names = [p["name"] for p in both["spec"]["jwt"]["providers"]]
    assert names == ["corp", "orders", "billing"]
    assert both["spec"]["jwt"]["providers"][2]["localJWKS"]["valueRef"]["name"] == "billing-jwks"
    assert mark(both) == {THEIRS: ["billing"], MINE: ["orders"]}
    (release,) = OUTPUT.release(ORDERS, ["orders-jwt"])
    left = apply(release, both)
    assert [p["name"] for p in left["spec"]["jwt"]["providers"]] == ["corp", "billing"]
    assert mark(left) == {THEIRS: ["billing"]}


def test_release_keeps_a_provider_another_jwtsecret_marks_too() -> None:
    theirs = apply(write(context(owner=BILLING), EnvoyGatewayOutput("orders-jwt", "orders")), policy())
    theirs["metadata"]["annotations"][MANAGED_ANNOTATION] = json.dumps({THEIRS: ["orders"], MINE: ["orders"]})
    released = OUTPUT.release(ORDERS, ["orders-jwt"])[0].mutate(theirs)
    assert isinstance(released, dict)
    assert released["spec"]["jwt"] == theirs["spec"]["jwt"]
    assert mark(released) == {THEIRS: ["orders"]}


def test_provider_limits() -> None:
    crowded = policy(*({"name": f"user-{i}", "remoteJWKS": {"uri": "https://u/keys"}} for i in range(15)))
    two = context(issuers=["https://a.example.com", "https://b.example.com"])
    with pytest.raises(OutputError, match=f"{MAX_PROVIDERS} at most") as full:
        write(two).mutate(crowded)
    assert full.value.reason == "TooManyProviders"
    assert isinstance(write(context()).mutate(crowded), dict)  # 16 fit
    many = [f"https://{i}.example.com" for i in range(MAX_PROVIDERS + 1)]
    with pytest.raises(OutputError) as too_many:
        OUTPUT.plan(context(issuers=many))
    assert too_many.value.reason == "TooManyProviders"


def test_refusals_at_plan() -> None:
    secret = base64.urlsafe_b64encode(b"s" * 32).rstrip(b"=").decode()
    hmac = build_key_set([{"kty": "oct", "k": secret}], allow_symmetric=True)
    with pytest.raises(OutputError, match="ConfigMap") as refused:
        OUTPUT.plan(context(key_set=hmac, jwkUrl=None, static={"secretRef": {"name": "hmac", "key": "k"}}))
    assert refused.value.reason == "SecretNotAllowed"
    with pytest.raises(OutputError, match="audiences"):
        OUTPUT.plan(context(audiences=[f"a{i}" for i in range(9)]))
    OUTPUT.plan(context(audiences=[f"a{i}" for i in range(8)]))
    with pytest.raises(OutputError, match="issuer"):
        OUTPUT.plan(context(issuers=["https://idp.example.com/" + "x" * 240]))
    with pytest.raises(OutputError, match=r"envoyGateway\.provider"):
        OUTPUT.plan(context(owner=Owner("apps", "x" * 63, "u"), issuers=["https://a", "https://b"]))


def test_release_takes_ours_and_keeps_the_rest() -> None:
    existing = policy(USER_PROVIDER)
    (release,) = OUTPUT.release(ORDERS, ["orders-jwt"])
    assert release.ref == OUTPUT.plan(context()).writes[0].ref
    assert apply(release, apply(write(context()), existing)) == existing
    assert release.mutate(existing) is None  # nothing of ours
    assert release.mutate(None) is None


def test_release_of_the_last_provider_keeps_the_users_jwt_fields_around_a_closed_provider() -> None:
    with_ours = apply(write(context()), policy())
    with_ours["spec"]["jwt"]["optional"] = True
    released = apply(OUTPUT.release(ORDERS, ["orders-jwt"])[0], with_ours)
    assert released["spec"]["jwt"] == {"providers": [closed_provider("orders")], "optional": True}


def test_release_refuses_to_leave_jwt_authorization_without_provider() -> None:
    rules = {
        "defaultAction": "Deny",
        "rules": [{"action": "Allow", "principal": {"jwt": {"provider": "orders"}}}],
    }
    with_ours = apply(write(context()), policy(authorization=rules))
    with pytest.raises(OutputError, match=r"principal\.jwt") as blocked:
        OUTPUT.release(ORDERS, ["orders-jwt"])[0].mutate(with_ours)
    assert blocked.value.reason == "OutputConflict"
    cidr = {"rules": [{"action": "Allow", "principal": {"clientCIDRs": ["10.0.0.0/8"]}}]}
    released = apply(
        OUTPUT.release(ORDERS, ["orders-jwt"])[0], apply(write(context()), policy(authorization=cidr))
    )
    assert released["spec"]["jwt"] == {"providers": [closed_provider("orders")]}


def test_a_release_leaves_the_routes_closed_when_ours_were_the_only_providers() -> None:
    """Removing `jwt` (the CRD requires a provider) would open the policy's routes to requests without a
    token: the release leaves one provider that verifies nothing, no longer marked as ours."""
    released = apply(OUTPUT.release(ORDERS, ["orders-jwt"])[0], apply(write(context()), policy()))
    (closed,) = released["spec"]["jwt"]["providers"]
    assert closed == {"name": "orders", "localJWKS": {"type": "Inline", "inline": closed_jwks()}}
    (key,) = json.loads(closed["localJWKS"]["inline"])["keys"]
    assert {k: key[k] for k in ("kty", "crv", "alg", "kid")} == {
        "kty": "EC",
        "crv": "P-256",
        "alg": "ES256",
        "kid": "jwks-operator-verifies-nothing",
    }
    point = jwt.algorithms.ECAlgorithm.from_jwk(key)  # a point of the curve: Envoy takes the set
    assert isinstance(point, ec.EllipticCurvePublicKey)
    assert MANAGED_ANNOTATION not in released["metadata"].get("annotations", {})
    assert OUTPUT.release(ORDERS, ["orders-jwt"])[0].mutate(released) is None, "no longer ours"
    again = apply(write(context()), released)
    assert again == apply(write(context()), policy()), "publishing again replaces the closed provider"


def test_the_policys_owner_must_allow_the_jwtsecret() -> None:
    for allow in (None, "billing", "*x"):
        with pytest.raises(OutputError) as refused:
            write(context()).mutate(policy(allow=allow))
        assert refused.value.reason == "NotAllowed"
        assert str(refused.value) == (
            "SecurityPolicy orders-jwt does not allow JwtSecret orders to manage its jwt providers: "
            'add the annotation jwks.dev/allow-jwtsecrets: orders (or "*")'
        )
    assert isinstance(write(context()).mutate(policy(allow="billing,orders")), dict)
    ours = apply(write(context()), policy(USER_PROVIDER))
    del ours["metadata"]["annotations"][ALLOW_ANNOTATION]  # the owner takes it back: release still works
    assert apply(OUTPUT.release(ORDERS, ["orders-jwt"])[0], ours) == policy(USER_PROVIDER, allow=None)


def test_a_jwtsecret_recreated_under_the_same_name_is_another_owner() -> None:
    old = apply(write(context(owner=OLD_ORDERS)), policy())
    with pytest.raises(OutputError, match=r"JwtSecret orders \(uid uid-old, not this one\)") as conflict:
        write(context()).mutate(old)
    assert conflict.value.reason == "OutputConflict"
    joint = apply(write(context(), EnvoyGatewayOutput("orders-jwt", "orders-v2")), old)
    assert mark(joint) == {"orders/uid-old": ["orders"], MINE: ["orders-v2"]}
    left = apply(OUTPUT.release(OLD_ORDERS, ["orders-jwt"])[0], joint)
    assert [p["name"] for p in left["spec"]["jwt"]["providers"]] == ["orders-v2"]
    assert mark(left) == {MINE: ["orders-v2"]}
