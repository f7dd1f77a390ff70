"""Per-gateway key compatibility: each output gives its gateway only the keys it can use and names the others
in its OutputReady message (publish.compat; Envoy's rule measured by tests/envoy)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ed448

from jwks_operator.keys.keyset import KeySet, build_key_set, thumbprint
from jwks_operator.model.names import ENVOY_GATEWAY_KEY, JWKS_KEY
from jwks_operator.publish.compat import envoy_fit, envoy_rendered, key_name, space_cloud_note
from jwks_operator.publish.gateways.base import OutputError
from jwks_operator.publish.gateways.envoygateway import EnvoyGatewayOutput
from jwks_operator.publish.gateways.istio import IstioOutput
from jwks_operator.publish.outputs import aggregate, render
from jwks_operator.resource.spec import parse_spec
from tests.material import ec_key, ed_key, public_jwk, rsa_key
from tests.unit.publish.gateways.helpers import ORDERS, apply, url_context

ED448 = public_jwk(ed448.Ed448PrivateKey.generate(), kid="x448")
ED25519 = public_jwk(ed_key(), kid="x25519")
EC = public_jwk(ec_key(), kid="e1")
MIXED = build_key_set([EC, ED25519, ED448])
NOTE = (
    "1 Ed448 key(s) left out (x448): Envoy verifies EdDSA with Ed25519 keys only, so their tokens are refused"
)


def kids(jwks: str) -> list[str]:
    return [k["kid"] for k in json.loads(jwks)["keys"]]


def test_envoy_takes_every_key_but_ed448() -> None:
    fit = envoy_fit(MIXED.keys)
    assert [k["kid"] for k in fit.keys] == ["e1", "x25519"]
    assert fit.note == NOTE
    assert envoy_fit(build_key_set([EC]).keys).note == ""


def test_envoy_rendered_is_the_published_text_when_nothing_is_left_out() -> None:
    plain = build_key_set([EC, ED25519])
    assert envoy_rendered(plain) is plain.rendered  # the same string: nothing rewritten
    assert kids(envoy_rendered(MIXED)) == ["e1", "x25519"]
    assert envoy_rendered(MIXED) == KeySet(MIXED.keys[:2]).rendered


def test_the_configmaps_jwks_for_envoy_gateway_holds_no_ed448_key() -> None:
    spec = parse_spec({"jwkUrl": "https://idp/jwks", "audiences": ["a"]})
    data = render(spec, MIXED)
    assert kids(data[JWKS_KEY]) == ["e1", "x25519", "x448"], "jwks.json: every key (verify reads it)"
    assert kids(data[ENVOY_GATEWAY_KEY]) == ["e1", "x25519"]
    part = {JWKS_KEY: data[JWKS_KEY], "policy.json": "{}"}
    merged = aggregate({}, "orders", part)
    assert (kids(merged[JWKS_KEY]), kids(merged[ENVOY_GATEWAY_KEY])) == (
        ["e1", "x25519", "x448"],
        ["e1", "x25519"],
    )


def test_istio_publishes_no_ed448_key_and_names_it() -> None:
    plan = IstioOutput("api-auth").plan(url_context(ORDERS, MIXED))
    assert (plan.keys, plan.notes) == (2, (NOTE,))
    body = apply(plan.writes[0], None)
    assert [kids(rule["jwks"]) for rule in body["spec"]["jwtRules"]] == [["e1", "x25519"]]


def test_envoy_gateway_counts_no_ed448_key_and_names_it() -> None:
    plan = EnvoyGatewayOutput("edge").plan(url_context(ORDERS, MIXED))
    assert (plan.keys, plan.notes) == (2, (NOTE,))


@pytest.mark.parametrize("output", [IstioOutput("api-auth"), EnvoyGatewayOutput("edge")], ids=["istio", "eg"])
def test_an_envoy_output_with_only_ed448_keys_has_no_usable_key(output: Any) -> None:
    with pytest.raises(OutputError, match="no key Envoy can verify: 1 Ed448 key") as none:
        output.plan(url_context(ORDERS, build_key_set([ED448])))
    assert none.value.reason == "NoUsableKeys"


def test_space_cloud_note_names_the_rsa_algorithms_it_will_refuse() -> None:
    bare = build_key_set([public_jwk(rsa_key(), kid="r1")]).keys
    assert space_cloud_note(bare, ()) == (
        "Space Cloud verifies RS256 only: tokens signed PS256, PS384, PS512, RS384, RS512 by key(s) r1 will "
        "be refused (set the keys' alg, or spec.algorithms, to RS256)"
    )
    assert space_cloud_note(bare, ("RS256",)) == ""
    assert space_cloud_note(build_key_set([public_jwk(rsa_key(), kid="r1", alg="RS256")]).keys, ()) == ""


def test_a_key_without_kid_gets_its_thumbprint_as_kid_everywhere() -> None:
    bare = public_jwk(rsa_key())
    key_set = build_key_set([bare, dict(bare)])
    assert [k["kid"] for k in key_set.keys] == [thumbprint(bare)], "one kid; the repeat dropped"
    assert key_name(key_set.keys[0]) == thumbprint(bare)
    spec = parse_spec({"jwkUrl": "https://idp/jwks", "audiences": ["a"]})
    assert kids(render(spec, key_set)[JWKS_KEY]) == [thumbprint(bare)]
    secret = build_key_set(
        [{"kty": "oct", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA"}], allow_symmetric=True
    )
    assert "kid" not in secret.keys[0], "an HMAC secret's thumbprint would be a hash of the secret"
