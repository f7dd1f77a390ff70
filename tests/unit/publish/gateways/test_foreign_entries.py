"""Issue 23, "no entry we did not write is ever removed", for every gateway with entries in a shared object:
entries of others (before ours, after ours, bearing our entry's id with other content) come out of our write
and of our release identical, in order (compared as JSON text)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from jwks_operator.keys.keyset import build_key_set
from jwks_operator.publish.allow import ALLOW_ANNOTATION
from jwks_operator.publish.bodies import Owner
from jwks_operator.publish.gateways import Context, Output, OutputError, Write
from jwks_operator.publish.gateways.envoygateway import EnvoyGatewayOutput
from jwks_operator.publish.gateways.istio import IstioOutput
from jwks_operator.publish.gateways.kong import KongOutput, secret_name
from jwks_operator.publish.gateways.spacecloud import SpaceCloudOutput
from jwks_operator.resource.spec import parse_spec
from tests.material import public_jwk, public_pem, rsa_key
from tests.unit.publish.gateways.helpers import apply

ISSUER = "https://idp.example.com/"
SPEC = {"jwkUrl": "https://idp.example.com/jwks", "issuers": [ISSUER], "audiences": ["api"]}
KEYS = build_key_set([public_jwk(rsa_key(n=0), kid="r1")])
ROTATED = build_key_set([public_jwk(rsa_key(n=1), kid="r2")])


@dataclass(frozen=True)
class Case:
    """One gateway: its output, an object of its own, and where that object keeps its entries."""

    output: Output
    namespace: str
    obj: Callable[[list[Any]], dict[str, Any]]  # the object with these entries
    entries: Callable[[dict[str, Any]], list[Any]]
    before: list[Any]  # others' entries there before ours
    after: Callable[[list[Any]], list[Any]]  # others' entries added after ours, given ours as written
    # Whether an entry of others bearing our entry's id is in the way of ours: with the same keys, rotated.
    collides: tuple[bool, bool] = (False, False)


def istio_object(rules: list[Any]) -> dict[str, Any]:
    return {
        "apiVersion": "security.istio.io/v1",
        "kind": "RequestAuthentication",
        "metadata": {
            "name": "api",
            "namespace": "apps",
            "resourceVersion": "1",
            "annotations": {ALLOW_ANNOTATION: "*"},
        },
        "spec": {"jwtRules": rules},
    }


def policy_object(providers: list[Any]) -> dict[str, Any]:
    return {
        "apiVersion": "gateway.envoyproxy.io/v1alpha1",
        "kind": "SecurityPolicy",
        "metadata": {
            "name": "edge",
            "namespace": "apps",
            "resourceVersion": "1",
            "annotations": {ALLOW_ANNOTATION: "*"},
        },
        "spec": {"targetRefs": [{"kind": "HTTPRoute", "name": "r"}], "jwt": {"providers": providers}},
    }


def project_object(secrets: list[Any]) -> dict[str, Any]:
    name = "default--shop--project--shop"
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": "space-cloud",
            "resourceVersion": "1",
            "labels": {"kind": "project"},
            "annotations": {ALLOW_ANNOTATION: "*"},
        },
        "data": {"id": name, "data": json.dumps({"id": "shop", "secrets": secrets})},
    }


def consumer_object(credentials: list[Any]) -> dict[str, Any]:
    return {
        "apiVersion": "configuration.konghq.com/v1",
        "kind": "KongConsumer",
        "metadata": {
            "name": "user",
            "namespace": "apps",
            "resourceVersion": "1",
            "annotations": {ALLOW_ANNOTATION: "*"},
        },
        "username": "user",
        "credentials": credentials,
    }


def project_secrets(body: dict[str, Any]) -> list[Any]:
    secrets: list[Any] = json.loads(body["data"]["data"])["secrets"]
    return secrets


CASES = {
    "istio": Case(
        IstioOutput("api"),
        "apps",
        istio_object,
        lambda body: list(body["spec"]["jwtRules"]),
        [{"issuer": "https://corp.example.com/", "jwksUri": "https://corp.example.com/keys"}],
        lambda ours: [
            {"issuer": ISSUER, "jwksUri": "https://idp.example.com/keys"},
            {**ours[0], "audiences": ["someone-else"]},
            {"issuer": "https://other.example.com/", "jwks": ours[0]["jwks"]},
        ],
    ),
    "envoyGateway": Case(
        EnvoyGatewayOutput("edge"),
        "apps",
        policy_object,
        lambda body: list(body["spec"]["jwt"]["providers"]),
        [{"name": "corp", "issuer": ISSUER, "remoteJWKS": {"uri": "https://corp/keys"}}],
        lambda ours: [
            {**ours[0], "name": "orders-copy"},
            {**ours[0], "issuer": "https://other.example.com/"},
        ],
        collides=(True, True),  # provider names are unique, and new keys do not change ours
    ),
    "spaceCloud": Case(
        SpaceCloudOutput("shop"),
        "space-cloud",
        project_object,
        project_secrets,
        [{"isPrimary": True, "alg": "HS256", "kid": "admin", "secret": "theirs"}],
        lambda ours: [
            {**ours[0], "kid": "r1-copy"},
            {**ours[0], "publicKey": public_pem(rsa_key(n=2))},
            {"alg": "JWK_URL", "kid": "auth0", "jwkUrl": "https://auth0.example/jwks", "aud": None},
        ],
        collides=(True, False),  # Space Cloud indexes its secrets by kid (a rotated key's is another)
    ),
    "kong": Case(
        KongOutput("user"),
        "apps",
        consumer_object,
        lambda body: list(body.get("credentials") or []),
        ["basic-auth"],
        lambda ours: [
            "key-auth"
        ],  # the same name as ours again: test_kong_credentials_the_same_as_ours_count
    ),
}


def context(case: Case, keys: Any) -> Context:
    return Context(Owner(case.namespace, "orders", "uid-orders"), parse_spec(SPEC), keys, "orders-jwks")


def publish(case: Case, keys: Any = KEYS) -> Write:
    """The write that lists our entries (a Kong plan's last one: the KongConsumer's list)."""
    return case.output.plan(context(case, keys)).writes[-1]


def release(case: Case) -> Write:
    objects = case.output.plan(context(case, KEYS)).objects
    return case.output.release(context(case, KEYS).owner, objects)[0]


@pytest.mark.parametrize("gateway", list(CASES))
def test_others_entries_survive_our_writes_and_release_byte_for_byte(gateway: str) -> None:
    case = CASES[gateway]
    before = case.before
    written = apply(publish(case), case.obj(before))
    ours = [e for e in case.entries(written) if e not in before]
    assert ours, "our entry is written"
    after = case.after(ours)
    existing = case.obj([*before, *ours, *after])
    existing["metadata"] = written["metadata"]
    foreign = [json.dumps(e) for e in (*before, *after)]

    def kept(body: dict[str, Any]) -> list[str]:
        return [json.dumps(e) for e in case.entries(body) if json.dumps(e) in foreign]

    for keys, collides in zip((KEYS, ROTATED), case.collides, strict=True):
        try:
            rewritten = apply(publish(case, keys), existing) or existing
        except OutputError as conflict:  # refused rather than written over theirs
            outcome = conflict.reason
        else:
            outcome = "Written"
            assert kept(rewritten) == foreign
        assert outcome == ("OutputConflict" if collides else "Written")
    released = apply(release(case), existing)
    assert [json.dumps(e) for e in case.entries(released)] == foreign, "only ours went, theirs as they were"


def test_kong_credentials_the_same_as_ours_count() -> None:
    """A KongConsumer listing one of our credentials twice (once by us, once by its owner) keeps one."""
    case = CASES["kong"]
    written = apply(publish(case), consumer_object([]))
    (ours,) = written["credentials"]
    assert ours == secret_name("orders", "user", public_jwk(rsa_key(n=0), kid="r1"))
    existing = consumer_object([ours, ours])
    existing["metadata"] = written["metadata"]
    assert apply(release(case), existing)["credentials"] == [ours]
