"""Spec validation mirrors the CRD schema and names the offending field."""

from __future__ import annotations

from typing import Any

import pytest

from jwks_operator.errors import SpecError
from jwks_operator.spec import SecretRef, parse_spec, target_name

URL = "https://idp.example/.well-known/jwks.json"


def test_url_spec() -> None:
    spec = parse_spec({"jwkUrl": URL, "audiences": ["a", "b"], "issuers": ["i"], "algorithms": ["RS256"]})
    assert spec.kind == "jwkUrl"
    assert (spec.jwk_url, spec.audiences, spec.issuers, spec.algorithms) == (
        URL,
        ("a", "b"),
        ("i",),
        ("RS256",),
    )
    assert spec.describe_source() == URL
    assert spec.policy_source() == {"type": "jwkUrl", "url": URL}
    assert not spec.symmetric
    assert target_name("x", spec) == "x-jwks"


def test_static_specs() -> None:
    jwks = parse_spec({"static": {"jwks": {"keys": [{"kty": "RSA"}]}}})
    assert (jwks.kind, jwks.describe_source()) == ("jwks", "static:jwks")
    pem = parse_spec({"static": {"pem": "-----BEGIN", "kid": "k"}, "target": {"name": "gw-keys"}})
    assert (pem.kind, pem.kid, target_name("x", pem)) == ("pem", "k", "gw-keys")
    hmac = parse_spec({"static": {"secretRef": {"name": "s", "key": "k", "kid": "h"}}})
    assert hmac.symmetric
    assert hmac.secret_ref == SecretRef("s", "k", "h")
    assert hmac.describe_source() == "static:secret/s"
    assert hmac.policy_source() == {"type": "secretRef", "secret": "s"}


@pytest.mark.parametrize(
    ("raw", "field", "message"),
    [
        (None, "spec", "must be an object"),
        ({}, "spec", "exactly one of spec.jwkUrl or spec.static"),
        ({"jwkUrl": URL, "static": {"pem": "x"}}, "spec", "exactly one of spec.jwkUrl or spec.static"),
        ({"jwkUrl": 5}, "spec.jwkUrl", "must be a string"),
        ({"jwkUrl": ""}, "spec.jwkUrl", "must not be empty"),
        ({"jwkUrl": "ftp://x/y"}, "spec.jwkUrl", "absolute http"),
        ({"jwkUrl": "https://"}, "spec.jwkUrl", "absolute http"),
        ({"jwkUrl": "https://" + "a" * 2048}, "spec.jwkUrl", "absolute http"),
        ({"jwkUrl": "http://idp/jwks"}, "spec.jwkUrl", "must use https://"),
        ({"jwkUrl": URL, "allowInsecureHttp": "yes"}, "spec.allowInsecureHttp", "boolean"),
        ({"static": "pem"}, "spec.static", "must be an object"),
        ({"static": {}}, "spec.static", "exactly one of spec.static.jwks"),
        ({"static": {"pem": "a", "jwks": {"keys": []}}}, "spec.static", "exactly one"),
        ({"static": {"jwks": {"keys": []}}}, "spec.static.jwks.keys", "at least one key"),
        ({"static": {"jwks": {"kys": []}}}, "spec.static.jwks.keys", "list of JWKs"),
        ({"static": {"secretRef": "s"}}, "spec.static.secretRef", "name and key"),
        ({"static": {"secretRef": {"key": "k"}}}, "spec.static.secretRef.name", "is required"),
        ({"static": {"secretRef": {"name": "n"}}}, "spec.static.secretRef.key", "is required"),
        ({"jwkUrl": URL, "audiences": "a"}, "spec.audiences", "list of strings"),
        ({"jwkUrl": URL, "audiences": [""]}, "spec.audiences[0]", "non-empty string"),
        ({"jwkUrl": URL, "audiences": ["a", " "]}, "spec.audiences[1]", "non-empty string"),
        ({"jwkUrl": URL, "issuers": ["a", "a"]}, "spec.issuers[1]", "duplicate"),
        ({"jwkUrl": URL, "algorithms": ["none"]}, "spec.algorithms[0]", "unsupported algorithm 'none'"),
        ({"jwkUrl": URL, "target": "x"}, "spec.target", "must be an object"),
        ({"jwkUrl": URL, "target": {"name": "Bad_Name"}}, "spec.target.name", "RFC 1123"),
    ],
)
def test_invalid_specs_name_the_field(raw: Any, field: str, message: str) -> None:
    with pytest.raises(SpecError, match=message) as info:
        parse_spec(raw)
    assert info.value.field == field
    assert info.value.message.startswith(field + ": ")


def test_http_allowed_with_the_flag() -> None:
    spec = parse_spec({"jwkUrl": "http://idp.local/jwks", "allowInsecureHttp": True})
    assert spec.allow_insecure_http
