"""Published data: deterministic, public only, with the policy gateways need."""

from __future__ import annotations

import json

import pytest

from jwks_operator.keys.keyset import KeySet
from jwks_operator.model.names import TARGET_ALLOW_PART
from jwks_operator.publish.outputs import (
    aggregate,
    digest,
    effective_algorithms,
    labels,
    new_collisions,
    owner_reference,
    render,
)
from jwks_operator.resource.spec import parse_spec

RSA = {"kty": "RSA", "kid": "r", "n": "x", "e": "AQAB"}
EC = {"kty": "EC", "kid": "e", "crv": "P-384", "x": "a", "y": "b"}
ED = {"kty": "OKP", "kid": "o", "crv": "Ed25519", "x": "a", "alg": "EdDSA"}


def test_render_is_deterministic_and_complete() -> None:
    spec = parse_spec({"jwkUrl": "https://idp/jwks", "audiences": ["b", "a"], "issuers": ["https://idp"]})
    data = render(spec, KeySet((RSA, EC)))
    assert data == render(spec, KeySet((dict(RSA), dict(EC))))
    assert json.loads(data["jwks.json"]) == {"keys": [RSA, EC]}
    assert json.loads(data["policy.json"]) == {
        "issuers": ["https://idp"],
        "audiences": ["b", "a"],
        "algorithms": ["ES384", "PS256", "PS384", "PS512", "RS256", "RS384", "RS512"],
        "source": {"type": "jwkUrl", "url": "https://idp/jwks"},
    }
    assert digest(data) == digest(dict(reversed(list(data.items()))))
    assert digest(data) != digest(render(spec, KeySet((RSA,))))


def test_effective_algorithms() -> None:
    spec = parse_spec({"static": {"pem": "x"}})
    assert effective_algorithms(spec, KeySet((ED,))) == ["EdDSA"]
    pinned = parse_spec({"static": {"pem": "x"}, "algorithms": ["RS512", "RS256"]})
    assert effective_algorithms(pinned, KeySet((RSA, EC))) == ["RS256", "RS512"]


def test_metadata() -> None:
    assert labels("x") == {"app.kubernetes.io/managed-by": "jwks-operator", "jwks.dev/jwtsecret": "x"}
    assert labels("x" * 64) == {"app.kubernetes.io/managed-by": "jwks-operator"}
    assert owner_reference("x", "u-1") == {
        "apiVersion": "jwks.dev/v1alpha1",
        "kind": "JwtSecret",
        "name": "x",
        "uid": "u-1",
        "controller": True,
    }


def test_aggregate_merges_dedupes_reports_collisions_and_removes() -> None:
    other = {"kty": "RSA", "kid": "r", "n": "different", "e": "AQAB"}
    a = render(parse_spec({"static": {"pem": "x"}, "audiences": ["a"]}), KeySet((RSA, EC)))
    b = render(parse_spec({"static": {"pem": "x"}, "audiences": ["b"]}), KeySet((dict(EC), other, ED)))
    data = aggregate(aggregate({}, "beta", b), "alpha", a)
    assert set(data) == {
        "jwks.json",
        "index.json",
        "jwks",
        "alpha.jwks.json",
        "alpha.policy.json",
        "beta.jwks.json",
        "beta.policy.json",
    }
    # r names two keys: neither is published (before: alpha's, first by name, was); e once
    assert [k["kid"] for k in json.loads(data["jwks.json"])["keys"]] == ["e", "o"]
    index = json.loads(data["index.json"])
    assert index["collisions"] == [{"kid": "r", "jwtsecrets": ["alpha", "beta"]}]
    assert [c["jwtsecret"] for c in index["contributors"]] == ["alpha", "beta"]
    assert index["contributors"][1] == {
        "jwtsecret": "beta",
        "jwks": "beta.jwks.json",
        "policy": "beta.policy.json",
        "kids": ["e", "r", "o"],
    }
    assert aggregate(data, "beta", b) == data  # idempotent
    without_alpha = aggregate(data, "alpha", None)
    assert [k["kid"] for k in json.loads(without_alpha["jwks.json"])["keys"]] == ["e", "r", "o"]
    assert json.loads(without_alpha["index.json"])["collisions"] == []
    assert "alpha.jwks.json" not in without_alpha
    assert set(aggregate(data, "beta", b, live={"beta"})) == {
        "jwks.json",
        "index.json",
        "jwks",
        "beta.jwks.json",
        "beta.policy.json",
    }


def test_new_collisions_are_those_a_part_brings() -> None:
    other = {"kty": "RSA", "kid": "r", "n": "different", "e": "AQAB"}
    a = render(parse_spec({"static": {"pem": "x"}}), KeySet((RSA, EC)))
    b = render(parse_spec({"static": {"pem": "x"}}), KeySet((other,)))
    data = aggregate({}, "alpha", a)
    assert new_collisions(data, "beta", b) == {"r": ["alpha"]}
    assert new_collisions(data, "beta", a) == {}  # the same keys: no collision
    assert new_collisions(data, "beta", b, live={"beta"}) == {}  # alpha no longer an owner
    both = aggregate(data, "beta", b)  # a target written before collisions were refused
    assert new_collisions(both, "alpha", render(parse_spec({"static": {"pem": "x"}}), KeySet((RSA,)))) == {}


@pytest.mark.parametrize(
    "junk",
    [
        "not json",
        "[]",
        '{"keys": "abc"}',
        '{"keys": [1]}',
        '{"keys": [{"kty": "RSA", "kid": "x"}]}',  # no key material
        '{"keys": [{"kty": "EC", "kid": ["x"], "crv": "P-256", "x": "a", "y": "b"}]}',
        '{"keys": [{"kty": "RSA", "kid": "x", "n": NaN, "e": "AQAB"}]}',
    ],
)
def test_a_part_edited_by_hand_brings_no_key_and_breaks_no_merge(junk: str) -> None:
    """Before: JSONDecodeError, KeyError (and NaN in the merged jwks.json)."""
    data = aggregate({}, "alpha", render(parse_spec({"static": {"pem": "x"}}), KeySet((RSA,))))
    data["beta.jwks.json"] = junk
    merged = aggregate(data, "alpha", render(parse_spec({"static": {"pem": "x"}}), KeySet((EC,))))
    assert json.loads(merged["jwks.json"]) == {"keys": [EC]}
    index = json.loads(merged["index.json"])
    assert index["contributors"][1] == {
        "jwtsecret": "beta",
        "jwks": "beta.jwks.json",
        "policy": "beta.policy.json",
        "kids": [],
        "invalid": True,
    }
    assert new_collisions(data, "alpha", {"jwks.json": junk, "policy.json": "{}"}) == {}


def test_a_shared_spec_carries_its_allow_list_unpublished() -> None:
    shared = {"static": {"pem": "x"}, "target": {"name": "all", "shared": True, "allow": ["b", "c"]}}
    data = render(parse_spec(shared), KeySet((RSA,)))
    assert data[TARGET_ALLOW_PART] == "b,c"
    assert "/" in TARGET_ALLOW_PART  # never a data key: bodies.shared takes it out
    assert TARGET_ALLOW_PART not in aggregate({}, "a", data)
    assert TARGET_ALLOW_PART not in render(parse_spec({**shared, "target": {"shared": True}}), KeySet((RSA,)))
