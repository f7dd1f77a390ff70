"""Istio output: jwtRules with the inline JWK Set, kept beside a user's own rules and fields."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from jwks_operator.keys.keyset import KeySet, build_key_set
from jwks_operator.model.errors import SpecError
from jwks_operator.model.names import SHARED_OWNER_ANNOTATION
from jwks_operator.publish.allow import ALLOW_ANNOTATION
from jwks_operator.publish.bodies import Owner
from jwks_operator.publish.gateways import parse_outputs
from jwks_operator.publish.gateways.base import MANAGED_ANNOTATION, Context, OutputError, Write
from jwks_operator.publish.gateways.istio import IstioOutput
from jwks_operator.publish.outputs import labels, owner_reference
from jwks_operator.publish.writes import DELETE
from tests.material import ec_key, public_jwk, rsa_key
from tests.unit.publish.gateways.helpers import ISSUER, OLD_ORDERS, ORDERS, apply, url_context

BILLING = Owner("apps", "billing", "uid-billing")
MINE, THEIRS = "orders/uid-orders", "billing/uid-billing"  # their mark keys
KEYS = build_key_set([public_jwk(ec_key(), kid="e1"), public_jwk(rsa_key(), kid="r1")])
ROTATED = build_key_set([public_jwk(ec_key(n=1), kid="e2")])
OUTPUT = IstioOutput("api-auth", (("app", "orders"),))
SHARING = IstioOutput("api-auth", (("app", "orders"),), ("billing", "orders"))  # its creator lets these join


def context(owner: Owner = ORDERS, key_set: KeySet = KEYS, **spec: Any) -> Context:
    return url_context(owner, key_set, **spec)


def write(ctx: Context, output: IstioOutput = OUTPUT) -> Write:
    plan = output.plan(ctx)
    assert len(plan.writes) == 1
    return plan.writes[0]


def compact(key_set: KeySet) -> str:
    return json.dumps(key_set.document(), sort_keys=True, separators=(",", ":"))


def mark(existing: dict[str, Any]) -> dict[str, list[str]]:
    """The issuers each mark lists (their fingerprints left out)."""
    marks = json.loads(existing["metadata"]["annotations"][MANAGED_ANNOTATION])
    return {key: sorted(ids) for key, ids in marks.items()}


def user_object(*rules: dict[str, Any], allow: str | None = "orders, billing") -> dict[str, Any]:
    """A user's RequestAuthentication, letting the JwtSecrets `allow` names manage rules in it."""
    return {
        "apiVersion": "security.istio.io/v1",
        "kind": "RequestAuthentication",
        "metadata": {
            "name": "api-auth",
            "namespace": "apps",
            "resourceVersion": "7",
            "labels": {"team": "a"},
            **({"annotations": {ALLOW_ANNOTATION: allow}} if allow is not None else {}),
        },
        "spec": {
            "targetRefs": [{"kind": "Gateway", "group": "gateway.networking.k8s.io", "name": "gw"}],
            "jwtRules": list(rules),
        },
    }


USER_RULE = {"issuer": "https://other.example.com", "jwksUri": "https://other.example.com/keys"}


def test_parse_and_registry() -> None:
    assert parse_outputs(
        [{"istio": {"name": "api-auth", "selector": {"matchLabels": {"app": "orders"}}}}]
    ) == (OUTPUT,)
    assert IstioOutput.parse({"name": "a"}, "p") == IstioOutput("a")
    assert (OUTPUT.id, OUTPUT.kind) == ("istio/api-auth", "RequestAuthentication")
    with pytest.raises(SpecError, match=r"p\.name"):
        IstioOutput.parse({}, "p")
    with pytest.raises(SpecError, match=r"matchLabels\.bad key"):
        IstioOutput.parse({"name": "a", "selector": {"matchLabels": {"bad key": "x"}}}, "p")
    with pytest.raises(SpecError, match="label value"):
        IstioOutput.parse({"name": "a", "selector": {"matchLabels": {"app": "*"}}}, "p")
    assert IstioOutput.parse({"name": "a", "allow": ["b", "*", "b"]}, "p") == IstioOutput(
        "a", allow=("b", "*")
    )
    for bad, field in (("b", r"p\.allow"), (["Team_A"], r"p\.allow\[0\]"), ([1], r"p\.allow\[0\]")):
        with pytest.raises(SpecError, match=field):
            IstioOutput.parse({"name": "a", "allow": bad}, "p")
    with pytest.raises(SpecError, match="at most 64"):
        IstioOutput.parse({"name": "a", "allow": [f"n{i}" for i in range(65)]}, "p")


def test_plan_names_the_object_and_counts_keys() -> None:
    plan = OUTPUT.plan(context())
    assert (plan.objects, plan.keys, plan.notes) == (("api-auth",), 2, ())
    ref = plan.writes[0].ref
    assert (ref.group, ref.version, ref.plural, ref.kind) == (
        "security.istio.io",
        "v1",
        "requestauthentications",
        "RequestAuthentication",
    )
    assert (ref.namespace, ref.name, ref.api_version) == ("apps", "api-auth", "security.istio.io/v1")


def test_creates_with_rules_selector_labels_and_a_non_controller_owner() -> None:
    body = apply(write(context()), None)
    assert body["apiVersion"] == "security.istio.io/v1"
    assert body["kind"] == "RequestAuthentication"
    meta = body["metadata"]
    assert (meta["name"], meta["namespace"]) == ("api-auth", "apps")
    assert meta["labels"] == labels("orders")
    assert meta["ownerReferences"] == [owner_reference("orders", "uid-orders", controller=False)]
    assert meta["annotations"][SHARED_OWNER_ANNOTATION] == "orders", "its creator"
    assert ALLOW_ANNOTATION not in meta["annotations"], "nobody else may join"
    assert mark(body) == {MINE: [ISSUER]}
    assert body["spec"] == {
        "selector": {"matchLabels": {"app": "orders"}},
        "jwtRules": [{"issuer": ISSUER, "audiences": ["orders"], "jwks": compact(KEYS)}],
    }
    jwks = body["spec"]["jwtRules"][0]["jwks"]
    assert isinstance(jwks, str)
    assert json.loads(jwks) == KEYS.document()
    assert " " not in jwks
    assert "jwksUri" not in body["spec"]["jwtRules"][0]


def test_one_rule_per_issuer_no_audiences_no_selector() -> None:
    issuers = ["https://a.example.com", "https://b.example.com"]
    body = apply(write(context(issuers=issuers, audiences=None), IstioOutput("api-auth")), None)
    assert "selector" not in body["spec"]
    assert body["spec"]["jwtRules"] == [{"issuer": i, "jwks": compact(KEYS)} for i in issuers]
    assert mark(body) == {MINE: issuers}


def test_refuses_without_issuer_and_for_hmac_keys() -> None:
    with pytest.raises(OutputError, match=r"spec\.issuers") as missing:
        OUTPUT.plan(context(issuers=None))
    assert missing.value.reason == "IssuerRequired"
    secret = base64.urlsafe_b64encode(b"s" * 32).rstrip(b"=").decode()
    hmac = build_key_set([{"kty": "oct", "k": secret}], allow_symmetric=True)
    ctx = context(key_set=hmac, jwkUrl=None, static={"secretRef": {"name": "hmac", "key": "k"}})
    with pytest.raises(OutputError) as refused:
        OUTPUT.plan(ctx)
    assert refused.value.reason == "SecretNotAllowed"
    assert secret not in str(refused.value)


def test_our_previous_output_unchanged_then_rotated() -> None:
    created = apply(write(context()), None)
    assert apply(write(context()), created) is None
    rotated = apply(write(context(key_set=ROTATED)), created)
    assert rotated["spec"]["jwtRules"] == [
        {"issuer": ISSUER, "audiences": ["orders"], "jwks": compact(ROTATED)}
    ]
    assert {**rotated["metadata"], "annotations": {}} == {**created["metadata"], "annotations": {}}
    assert mark(rotated) == mark(created)
    assert rotated["metadata"]["annotations"] != created["metadata"]["annotations"], "a new fingerprint"
    assert OUTPUT.plan(context(key_set=ROTATED)).keys == 1


def test_a_users_object_keeps_its_rules_and_fields_and_gets_no_owner() -> None:
    existing = user_object(USER_RULE)
    body = apply(write(context()), existing)
    assert body["spec"]["targetRefs"] == existing["spec"]["targetRefs"]
    assert "selector" not in body["spec"]  # the selector applies only to an object the operator creates
    assert body["spec"]["jwtRules"] == [
        USER_RULE,
        {"issuer": ISSUER, "audiences": ["orders"], "jwks": compact(KEYS)},
    ]
    assert "ownerReferences" not in body["metadata"]
    assert body["metadata"]["labels"] == {"team": "a"}
    assert body["metadata"]["annotations"][ALLOW_ANNOTATION] == "orders, billing"
    assert mark(body) == {MINE: [ISSUER]}
    assert apply(write(context()), body) is None


def test_a_users_rule_for_our_issuer_is_a_conflict() -> None:
    existing = user_object({"issuer": ISSUER, "jwksUri": "https://idp.example.com/keys"})
    with pytest.raises(OutputError, match="that jwks-operator did not write") as conflict:
        write(context()).mutate(existing)
    assert conflict.value.reason == "OutputConflict"
    assert ISSUER in str(conflict.value)


def test_another_jwtsecrets_issuer_is_a_conflict() -> None:
    theirs = apply(write(context(owner=BILLING), SHARING), None)
    with pytest.raises(OutputError, match="JwtSecret billing") as conflict:
        write(context()).mutate(theirs)
    assert conflict.value.reason == "OutputConflict"
    # both marks naming one issuer (edited by hand): still a conflict, never a silent pick
    theirs["metadata"]["annotations"][MANAGED_ANNOTATION] = json.dumps({THEIRS: [ISSUER], MINE: [ISSUER]})
    with pytest.raises(OutputError, match="JwtSecret billing"):
        write(context()).mutate(theirs)


def test_a_rule_both_mark_stays_when_we_drop_its_issuer() -> None:
    theirs = apply(write(context(owner=BILLING), SHARING), None)
    theirs["metadata"]["annotations"][MANAGED_ANNOTATION] = json.dumps({THEIRS: [ISSUER], MINE: [ISSUER]})
    body = write(context(issuers=["https://orders.example.com"])).mutate(theirs)
    assert isinstance(body, dict)
    assert [r["issuer"] for r in body["spec"]["jwtRules"]] == [ISSUER, "https://orders.example.com"]


def test_user_fields_on_our_rule_are_kept_and_jwks_uri_removed() -> None:
    created = apply(write(context()), None)
    rule = created["spec"]["jwtRules"][0]
    extra = {
        "forwardOriginalToken": True,
        "outputPayloadToHeader": "x-jwt",
        "fromHeaders": [{"name": "x-token", "prefix": "Bearer "}],
    }
    rule.update(extra, jwksUri="https://idp.example.com/keys", jwks_uri="https://idp.example.com/keys")
    body = apply(write(context()), created)
    assert body["spec"]["jwtRules"] == [
        {**extra, "issuer": ISSUER, "audiences": ["orders"], "jwks": compact(KEYS)}
    ]


@pytest.mark.parametrize("field", ["audiences", "jwks", "issuer"])
def test_a_rule_of_ours_changed_by_hand_is_no_longer_ours(field: str) -> None:
    """A rule whose issuer, audiences or jwks no longer hold what we wrote is not provably ours: our write
    does not go over it, and our release leaves it."""
    created = apply(write(context()), user_object(USER_RULE))
    changed = {**created["spec"]["jwtRules"][1], field: ["edited"] if field == "audiences" else "edited"}
    created["spec"]["jwtRules"][1] = changed
    if field != "issuer":
        with pytest.raises(
            OutputError, match="or its issuer, audiences or jwks were changed since"
        ) as conflict:
            write(context()).mutate(created)
        assert conflict.value.reason == "OutputConflict"
    else:  # our issuer's rule is gone: written again, beside the edited one
        assert apply(write(context()), created)["spec"]["jwtRules"][1] == changed
    released = apply(OUTPUT.release(ORDERS, ["api-auth"])[0], created)
    assert released["spec"]["jwtRules"] == [USER_RULE, changed]


def test_spec_changes_remove_what_is_no_longer_ours() -> None:
    issuers = ["https://a.example.com", "https://b.example.com"]
    existing = user_object(USER_RULE)
    both = apply(write(context(issuers=issuers)), existing)
    one = apply(write(context(issuers=issuers[:1], audiences=None)), both)
    assert one["spec"]["jwtRules"] == [USER_RULE, {"issuer": issuers[0], "jwks": compact(KEYS)}]
    assert mark(one) == {MINE: issuers[:1]}


def test_a_deleted_rule_of_ours_comes_back() -> None:
    created = apply(write(context()), None)
    created["spec"]["jwtRules"] = [USER_RULE]
    body = apply(write(context()), created)
    assert [r["issuer"] for r in body["spec"]["jwtRules"]] == [USER_RULE["issuer"], ISSUER]


def test_a_second_jwtsecret_joins_an_object_we_made_and_owns_it_too() -> None:
    ours = apply(write(context(), SHARING), None)
    joint = apply(write(context(owner=BILLING, issuers=["https://billing.example.com"])), ours)
    assert [r["issuer"] for r in joint["spec"]["jwtRules"]] == [ISSUER, "https://billing.example.com"]
    assert joint["metadata"]["ownerReferences"] == [
        owner_reference("orders", "uid-orders", controller=False),
        owner_reference("billing", "uid-billing", controller=False),
    ]
    assert mark(joint) == {THEIRS: ["https://billing.example.com"], MINE: [ISSUER]}
    assert joint["metadata"]["labels"] == labels("orders")  # labels stay the creator's

    left = apply(OUTPUT.release(ORDERS, ["api-auth"])[0], joint)
    assert [r["issuer"] for r in left["spec"]["jwtRules"]] == ["https://billing.example.com"]
    assert left["metadata"]["ownerReferences"] == [
        owner_reference("billing", "uid-billing", controller=False)
    ]
    assert mark(left) == {THEIRS: ["https://billing.example.com"]}
    assert OUTPUT.release(BILLING, ["api-auth"])[0].mutate(left) is DELETE


def test_release_deletes_an_object_only_we_made() -> None:
    (release,) = OUTPUT.release(ORDERS, ["api-auth"])
    assert release.ref == OUTPUT.plan(context()).writes[0].ref
    assert release.mutate(apply(write(context()), None)) is DELETE
    assert release.mutate(None) is None


def test_release_from_a_users_object_takes_only_ours() -> None:
    existing = user_object(USER_RULE)
    existing["spec"]["selector"] = {"matchLabels": {"app": "x"}}
    del existing["spec"]["targetRefs"]
    ours = apply(write(context()), existing)
    (release,) = OUTPUT.release(ORDERS, ["api-auth"])
    body = apply(release, ours)
    assert body == existing  # back to what the user wrote: rule, selector, labels, no mark
    only_ours = apply(write(context()), user_object())
    emptied = apply(release, only_ours)
    assert "jwtRules" not in emptied["spec"]
    assert emptied["spec"]["targetRefs"] == only_ours["spec"]["targetRefs"]
    assert MANAGED_ANNOTATION not in emptied["metadata"].get("annotations", {})


def test_release_leaves_others_alone() -> None:
    (release,) = OUTPUT.release(ORDERS, ["api-auth"])
    assert release.mutate(user_object(USER_RULE)) is None
    theirs = apply(write(context(owner=BILLING), SHARING), None)
    assert release.mutate(theirs) is None
    theirs["metadata"]["annotations"][MANAGED_ANNOTATION] = json.dumps({THEIRS: [ISSUER], MINE: [ISSUER]})
    kept = release.mutate(theirs)
    assert isinstance(kept, dict)
    assert kept["spec"]["jwtRules"] == theirs["spec"]["jwtRules"]  # billing's rule stays
    assert mark(kept) == {THEIRS: [ISSUER]}


def test_release_of_several_objects() -> None:
    writes = OUTPUT.release(ORDERS, ["old-auth", "api-auth"])
    assert [w.ref.name for w in writes] == ["old-auth", "api-auth"]
    assert {w.ref.namespace for w in writes} == {"apps"}


def test_a_jwtsecret_recreated_under_the_same_name_is_another_owner() -> None:
    old = apply(write(context(owner=OLD_ORDERS)), None)
    with pytest.raises(
        OutputError, match=r"for an earlier JwtSecret orders \(uid uid-old, not this one\)"
    ) as no:
        write(context()).mutate(old)
    assert no.value.reason == "NotAllowed", "the earlier one's rights are not this one's"
    old = apply(write(context(owner=OLD_ORDERS), SHARING), None)
    with pytest.raises(OutputError, match=r"JwtSecret orders \(uid uid-old, not this one\)") as conflict:
        write(context()).mutate(old)
    assert conflict.value.reason == "OutputConflict"
    joint = apply(write(context(issuers=["https://new.example.com"])), old)
    assert mark(joint) == {"orders/uid-old": [ISSUER], MINE: ["https://new.example.com"]}
    left = apply(OUTPUT.release(OLD_ORDERS, ["api-auth"])[0], joint)
    assert [r["issuer"] for r in left["spec"]["jwtRules"]] == ["https://new.example.com"]
    assert mark(left) == {MINE: ["https://new.example.com"]}
    assert left["metadata"]["ownerReferences"] == [owner_reference("orders", "uid-orders", controller=False)]


def test_a_users_object_must_allow_the_jwtsecret() -> None:
    for allow in (None, "billing", "orders-2, other"):
        with pytest.raises(OutputError) as refused:
            write(context()).mutate(user_object(USER_RULE, allow=allow))
        assert refused.value.reason == "NotAllowed"
        assert str(refused.value) == (
            "RequestAuthentication api-auth does not allow JwtSecret orders to manage its jwtRules: "
            'add the annotation jwks.dev/allow-jwtsecrets: orders (or "*")'
        )
    for allow in ("*", "billing,orders", " orders "):
        assert isinstance(write(context()).mutate(user_object(USER_RULE, allow=allow)), dict)
    ours = apply(write(context()), user_object(USER_RULE))
    del ours["metadata"]["annotations"][ALLOW_ANNOTATION]  # the owner takes it back: release still works
    released = apply(OUTPUT.release(ORDERS, ["api-auth"])[0], ours)
    assert released["spec"]["jwtRules"] == [USER_RULE]
    assert "annotations" not in released["metadata"]


def test_release_keeps_an_object_we_made_once_a_user_added_rules() -> None:
    created = apply(write(context()), None)
    created["spec"]["jwtRules"].append(USER_RULE)
    left = apply(OUTPUT.release(ORDERS, ["api-auth"])[0], created)
    assert left["spec"] == {"selector": {"matchLabels": {"app": "orders"}}, "jwtRules": [USER_RULE]}
    assert "ownerReferences" not in left["metadata"]
    assert "annotations" not in left["metadata"]


def test_a_release_removes_no_rule_it_did_not_write() -> None:
    """Issue 23, item 2: our rule for issuer X is in a user's RequestAuthentication and the user adds a
    second rule of their own for X; our writes and our release keep it byte for byte."""
    ours = apply(write(context()), user_object(USER_RULE))
    theirs = {"issuer": ISSUER, "jwksUri": "https://idp.example.com/their-keys", "forwardOriginalToken": True}
    ours["spec"]["jwtRules"].append(theirs)
    rotated = apply(write(context(key_set=ROTATED)), ours)
    assert [json.dumps(r) for r in rotated["spec"]["jwtRules"]] == [
        json.dumps(USER_RULE),
        json.dumps({"issuer": ISSUER, "audiences": ["orders"], "jwks": compact(ROTATED)}),
        json.dumps(theirs),
    ]
    released = apply(OUTPUT.release(ORDERS, ["api-auth"])[0], rotated)
    assert [json.dumps(r) for r in released["spec"]["jwtRules"]] == [
        json.dumps(USER_RULE),
        json.dumps(theirs),
    ]
    assert MANAGED_ANNOTATION not in released["metadata"]["annotations"]


TEAM_A, INTRUDER = Owner("apps", "team-a", "uid-a"), Owner("apps", "intruder", "uid-i")
PAYMENTS = IstioOutput("api-auth", (("app", "payments"),))


def test_joining_an_operator_made_request_authentication_needs_permission() -> None:
    """Issue 23, item 1: a RequestAuthentication the operator created for team-a takes no rule of another
    JwtSecret of the namespace unless team-a allows it; the refusal names what to set."""
    made = apply(write(context(owner=TEAM_A), PAYMENTS), None)
    evil = context(owner=INTRUDER, issuers=["https://evil.example/"])
    with pytest.raises(OutputError) as refused:
        write(evil, IstioOutput("api-auth")).mutate(made)
    assert refused.value.reason == "NotAllowed"
    assert str(refused.value) == (
        "RequestAuthentication api-auth was created by jwks-operator for JwtSecret team-a, which does not "
        "allow JwtSecret intruder to add jwtRules to it: team-a's spec.outputs[].istio.allow must list "
        "intruder (kept in the annotation jwks.dev/allow-jwtsecrets); left untouched"
    )


def test_the_creator_allows_others_in_and_takes_them_out() -> None:
    made = apply(write(context(owner=TEAM_A), IstioOutput("api-auth", allow=("intruder",))), None)
    assert made["metadata"]["annotations"][ALLOW_ANNOTATION] == "intruder"
    joined = apply(
        write(context(owner=INTRUDER, issuers=["https://b.example/"]), IstioOutput("api-auth")), made
    )
    assert [r["issuer"] for r in joined["spec"]["jwtRules"]] == [ISSUER, "https://b.example/"]
    assert [r["name"] for r in joined["metadata"]["ownerReferences"]] == ["team-a", "intruder"]
    joined["spec"]["jwtRules"].append(USER_RULE)
    revoked = apply(write(context(owner=TEAM_A), IstioOutput("api-auth")), joined)
    assert revoked["spec"]["jwtRules"] == [joined["spec"]["jwtRules"][0], USER_RULE], (
        "its rules out, a user's kept"
    )
    assert [r["name"] for r in revoked["metadata"]["ownerReferences"]] == ["team-a"]
    assert mark(revoked) == {"team-a/uid-a": [ISSUER]}
    assert ALLOW_ANNOTATION not in revoked["metadata"]["annotations"]
    with pytest.raises(OutputError) as refused:
        write(context(owner=INTRUDER, issuers=["https://b.example/"]), IstioOutput("api-auth")).mutate(
            revoked
        )
    assert refused.value.reason == "NotAllowed"
    for allow in (("*",), ("intruder", "other")):  # "*" admits any JwtSecret of the namespace
        opened = apply(write(context(owner=TEAM_A), IstioOutput("api-auth", allow=allow)), revoked)
        assert opened["metadata"]["annotations"][ALLOW_ANNOTATION] == ",".join(allow)
        joiner = context(owner=INTRUDER, issuers=["https://b.example/"])
        assert isinstance(write(joiner, IstioOutput("api-auth")).mutate(opened), dict)


NOTE = {"example.com/note": "kept by hand"}  # an annotation of a user's on an object the operator made


def test_the_creators_write_keeps_the_jwtsecrets_it_allows_and_the_objects_other_annotations() -> None:
    """Its creator writing again (keys rotated) changes nothing of a JwtSecret it allows (its rules, mark,
    ownerReference) nor of an annotation a user added; it takes out only the others."""
    sharing = IstioOutput("api-auth", allow=("billing", "intruder"))
    made = apply(write(context(owner=TEAM_A), sharing), None)
    made["metadata"]["annotations"].update(NOTE)
    joined = apply(
        write(context(owner=BILLING, issuers=["https://b.example/"]), IstioOutput("api-auth")), made
    )
    joined = apply(
        write(context(owner=INTRUDER, issuers=["https://i.example/"]), IstioOutput("api-auth")), joined
    )
    allowing = IstioOutput("api-auth", allow=("billing",))
    rotated = apply(write(context(owner=TEAM_A, key_set=ROTATED), allowing), joined)
    assert [r["issuer"] for r in rotated["spec"]["jwtRules"]] == [ISSUER, "https://b.example/"]
    assert rotated["spec"]["jwtRules"][1] == joined["spec"]["jwtRules"][1], "billing's rule as it was"
    assert rotated["spec"]["jwtRules"][0]["jwks"] == compact(ROTATED)
    assert mark(rotated) == {"team-a/uid-a": [ISSUER], THEIRS: ["https://b.example/"]}
    assert [r["name"] for r in rotated["metadata"]["ownerReferences"]] == ["team-a", "billing"]
    annotations = rotated["metadata"]["annotations"]
    assert {k: v for k, v in annotations.items() if k != MANAGED_ANNOTATION} == {
        **NOTE,
        SHARED_OWNER_ANNOTATION: "team-a",
        ALLOW_ANNOTATION: "billing",
    }
    star = apply(write(context(owner=TEAM_A), IstioOutput("api-auth", allow=("*",))), joined)
    assert mark(star) == mark(joined), '"*" keeps every joiner'


def test_the_last_one_out_hands_the_object_over_with_the_users_annotations() -> None:
    """The object its JwtSecrets made becomes the user's (it holds a user's rule): our annotations go, the
    user's stay as they were."""
    made = apply(write(context(owner=TEAM_A), IstioOutput("api-auth", allow=("billing",))), None)
    made["metadata"]["annotations"].update(NOTE)
    made["spec"]["jwtRules"].append(USER_RULE)
    handed = apply(OUTPUT.release(TEAM_A, ["api-auth"])[0], made)
    assert handed["spec"]["jwtRules"] == [USER_RULE]
    assert "ownerReferences" not in handed["metadata"]
    assert handed["metadata"]["annotations"] == NOTE


def test_once_its_creator_is_gone_the_allow_list_stays_as_it_was() -> None:
    made = apply(write(context(owner=TEAM_A), IstioOutput("api-auth", allow=("billing",))), None)
    joined = apply(
        write(context(owner=BILLING, issuers=["https://b.example/"]), IstioOutput("api-auth")), made
    )
    left = apply(OUTPUT.release(TEAM_A, ["api-auth"])[0], joined)
    assert [r["name"] for r in left["metadata"]["ownerReferences"]] == ["billing"]
    assert left["metadata"]["annotations"][ALLOW_ANNOTATION] == "billing"
    assert isinstance(write(context(owner=BILLING), IstioOutput("api-auth")).mutate(left), dict), (
        "still allowed"
    )
    recreated = Owner("apps", "team-a", "uid-a2")  # its name's rights do not pass to a new JwtSecret
    with pytest.raises(
        OutputError, match="for JwtSecret team-a, no longer among its owners, and its annotation"
    ):
        write(context(owner=recreated), IstioOutput("api-auth", allow=("*",))).mutate(left)
    left["spec"]["jwtRules"].append(USER_RULE)
    handed = apply(OUTPUT.release(BILLING, ["api-auth"])[0], left)
    assert handed["spec"]["jwtRules"] == [USER_RULE]
    assert "ownerReferences" not in handed["metadata"]
    assert "annotations" not in handed["metadata"], "the user's now: nobody allowed in by what we set"
