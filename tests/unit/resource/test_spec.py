"""Spec validation mirrors the CRD schema and names the offending field."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from jwks_operator.model.errors import SpecError
from jwks_operator.resource.spec import SecretRef, parse_spec, target_name

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
    assert parse_spec({"jwkUrl": URL, "audiences": [" my api "]}).audiences == (" my api ",)  # not blank


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
        ({"jwkUrl": URL, "audiences": [1]}, "spec.audiences[0]", "non-empty string"),
        ({"jwkUrl": URL, "audiences": ["a", " "]}, "spec.audiences", "values must not be blank"),
        ({"jwkUrl": URL, "issuers": ["\t\n"]}, "spec.issuers", "values must not be blank"),
        (
            {"static": {"jwks": {"keys": [{"kty": "EC", "kid": "a"}, {"kty": "EC", "d": "x"}]}}},
            "spec.static.jwks.keys",
            r"private key members \(d, p, q, dp, dq, qi\) are not allowed",
        ),
        ({"jwkUrl": URL, "issuers": ["a", "a"]}, "spec.issuers[1]", "duplicate"),
        ({"jwkUrl": URL, "algorithms": ["none"]}, "spec.algorithms[0]", "unsupported algorithm 'none'"),
        ({"jwkUrl": URL, "target": "x"}, "spec.target", "must be an object"),
        (
            {"jwkUrl": URL, "algorithms": ["RS256", "HS256"]},
            "spec.algorithms",
            r"HS\* cannot be used with",
        ),
        (
            {"static": {"pem": "x"}, "refresh": {"minInterval": "1m"}},
            "spec.refresh",
            "only applies to spec.jwkUrl",
        ),
        ({"static": {"pem": "x"}, "rotation": {}}, "spec.rotation", "only applies to spec.jwkUrl"),
        ({"static": {"pem": "x"}, "caBundleRef": {"name": "ca"}}, "spec.caBundleRef", "only applies"),
        ({"static": {"secretRef": {"name": "s", "key": "k"}, "kid": "x"}}, "spec.static.kid", "only applies"),
        ({"jwkUrl": URL, "allowMissingAudience": "yes"}, "spec.allowMissingAudience", "boolean"),
        ({"jwkUrl": URL, "refresh": {"minInterval": "1 h"}}, "spec.refresh.minInterval", "is not a duration"),
        ({"jwkUrl": URL, "refresh": {"minInterval": "0s"}}, "spec.refresh.minInterval", "greater than zero"),
        ({"jwkUrl": URL, "refresh": {"staleAfter": "2562048h"}}, "spec.refresh.staleAfter", "out of range"),
        (
            {"jwkUrl": URL, "rotation": {"retainRemovedFor": "9999999999h"}},
            "spec.rotation.retainRemovedFor",
            "range",
        ),
        (
            {"jwkUrl": URL, "refresh": {"minInterval": "2h", "maxInterval": "1h"}},
            "spec.refresh.minInterval",
            "must not be greater than",
        ),
        (
            {"jwkUrl": URL, "rotation": {"retainRemovedFor": "soon"}},
            "spec.rotation.retainRemovedFor",
            "duration",
        ),
        ({"jwkUrl": URL, "caBundleRef": "ca"}, "spec.caBundleRef", "must be an object"),
        (
            {"jwkUrl": URL, "caBundleRef": {"kind": "Pod", "name": "x"}},
            "spec.caBundleRef.kind",
            "ConfigMap or Secret",
        ),
        ({"jwkUrl": URL, "caBundleRef": {"key": "x"}}, "spec.caBundleRef.name", "is required"),
        ({"jwkUrl": URL, "target": {"name": "Bad_Name"}}, "spec.target.name", "RFC 1123"),
        (
            {"jwkUrl": URL, "target": {"allow": ["b"]}},
            "spec.target.allow",
            "only applies with spec.target.shared",
        ),
        ({"jwkUrl": URL, "target": {"shared": True, "allow": "b"}}, "spec.target.allow", "list of strings"),
        (
            {"jwkUrl": URL, "target": {"shared": True, "allow": ["b", "b"]}},
            "spec.target.allow[1]",
            "duplicate",
        ),
        (
            {"jwkUrl": URL, "target": {"shared": True, "allow": ["a,b"]}},
            "spec.target.allow[0]",
            "JwtSecret name",
        ),
        ({"jwkUrl": URL, "target": {"shared": True, "allow": [""]}}, "spec.target.allow[0]", "non-empty"),
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


FIREBASE = "https://www.googleapis.com/service_accounts/v1/jwk/securetoken@system.gserviceaccount.com"
GOOGLE = "https://www.googleapis.com/oauth2/v3/certs"
ENTRA = "https://login.microsoftonline.com"
APPLE = "https://appleid.apple.com/auth/keys"
GITHUB = "https://token.actions.githubusercontent.com/.well-known/jwks"


@pytest.mark.parametrize(
    ("url", "provider"),
    [
        (FIREBASE, "Firebase Auth"),
        (GOOGLE, "Google Sign-In"),
        ("https://WWW.GOOGLEAPIS.COM/oauth2/v3/certs/", "Google Sign-In"),
        # spellings that escaped an exact string match (#14): each is the same resource to the server
        (GOOGLE + "#x", "Google Sign-In"),
        (GOOGLE + "?", "Google Sign-In"),
        (GOOGLE + "?alt=json", "Google Sign-In"),
        ("https://www.googleapis.com:443/oauth2/v3/certs", "Google Sign-In"),
        ("https://www.googleapis.com./oauth2/v3/certs", "Google Sign-In"),
        ("https://user@www.googleapis.com/oauth2/v3/certs", "Google Sign-In"),
        ("https://www.googleapis.com//oauth2/./v3/x/../certs", "Google Sign-In"),
        ("https://www.googleapis.com/oauth2/v3/cert%73", "Google Sign-In"),
        ("https://www.googleapis.com/OAuth2/v3/certs;x", "Google Sign-In"),
        ("https://\uff57\uff57\uff57\uff0egoogleapis.com/oauth2/v3/certs", "Google Sign-In"),  # fullwidth
        ("http://www.googleapis.com:80/oauth2/v3/certs", "Google Sign-In"),
        ("https://www.googleapis.com:8443/oauth2/v3/certs", None),  # another server
        ("https://www.googleapis.com/oauth2/v3/certs/more", None),
        ("https://googleapis.com.evil.example/oauth2/v3/certs", None),
        (
            "https://www.googleapis.com/robot/v1/metadata/jwk/securetoken@system.gserviceaccount.com",
            "Firebase Auth",
        ),
        (APPLE, "Sign in with Apple"),
        ("https://AppleID.Apple.com:443/auth/keys/", "Sign in with Apple"),
        (GITHUB, "GitHub Actions OIDC (every repository)"),
        (
            "https://token.actions.githubusercontent.com/my-enterprise/.well-known/jwks",
            "GitHub Actions OIDC (every repository)",
        ),
        ("https://gitlab.com/oauth/discovery/keys", "GitLab.com (CI/CD ID tokens of every project)"),
        ("https://gitlab.example.com/oauth/discovery/keys", None),  # a self-hosted GitLab is its own
        ("https://login.botframework.com/v1/.well-known/keys", "Microsoft Bot Framework"),
        (f"{ENTRA}/common/discovery/v2.0/keys", "Microsoft Entra ID (common)"),
        (f"{ENTRA}/common/discovery/keys", "Microsoft Entra ID (common)"),
        (f"{ENTRA}/Common/Discovery/Keys", "Microsoft Entra ID (common)"),
        (f"{ENTRA}/organizations/discovery/v2.0/keys", "Microsoft Entra ID (organizations)"),
        (f"{ENTRA}/consumers/discovery/v2.0/keys", "Microsoft accounts (consumers)"),
        ("https://login.windows.net/common/discovery/keys", "Microsoft Entra ID (common)"),
        # a tenant's own keys URL serves the keys every tenant shares (only aud and iss tell tenants apart)
        (f"{ENTRA}/my-tenant-id/discovery/v2.0/keys", "Microsoft Entra ID (keys shared by all tenants)"),
        (
            f"{ENTRA}/contoso.onmicrosoft.com/discovery/keys",
            "Microsoft Entra ID (keys shared by all tenants)",
        ),
        ("https://contoso.b2clogin.com/contoso.onmicrosoft.com/b2c_1_signin/discovery/v2.0/keys", None),
        ("https://example.auth0.com/.well-known/jwks.json", None),
        ("https://[::1/jwks", None),  # does not parse: no provider
    ],
)
def test_shared_providers_are_recognised(url: str, provider: str | None) -> None:
    assert (
        parse_spec({"jwkUrl": url, "audiences": ["a"], "allowInsecureHttp": True}).shared_provider()
        == provider
    )


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (URL, URL),
        ("https://user:pass@idp.example/jwks", "https://idp.example/jwks"),
        ("https://user:p@ss@idp.example:8443/jwks", "https://idp.example:8443/jwks"),
        (
            "https://idp.example/jwks?token=s3cret&tenant=acme",
            "https://idp.example/jwks?token=REDACTED&tenant=REDACTED",
        ),
        ("https://idp.example/jwks?s3cret", "https://idp.example/jwks?REDACTED"),
        ("https://idp.example/jwks?#access_token=s3cret", "https://idp.example/jwks"),
        ("https://u:s3cret@[::1/jwks?k=s3cret", "https://[::1/jwks"),  # does not parse: cut, not echoed
    ],
)
def test_credentials_in_the_url_are_redacted_in_status_and_policy(url: str, shown: str) -> None:
    """Before: userinfo and query tokens were published in policy.json and shown in status."""
    spec = parse_spec({"jwkUrl": url, "audiences": ["a"]})
    assert spec.jwk_url == url  # the request still uses them
    assert spec.describe_source() == shown
    assert spec.policy_source() == {"type": "jwkUrl", "url": shown}
    assert "s3cret" not in shown
    assert "pass" not in shown


def test_shared_target_allow_list() -> None:
    spec = parse_spec({"jwkUrl": URL, "target": {"name": "all", "shared": True, "allow": ["team-b", "*"]}})
    assert (spec.target_name, spec.target_shared, spec.target_allow) == ("all", True, ("team-b", "*"))
    assert parse_spec({"jwkUrl": URL, "target": {"shared": True}}).target_allow == ()


def test_warnings() -> None:
    assert parse_spec({"jwkUrl": URL, "audiences": ["a"]}).warnings() == []
    warned = parse_spec({"jwkUrl": "http://idp/jwks", "allowInsecureHttp": True})
    assert [reason for reason, _ in warned.warnings()] == ["InsecureHttp", "AudienceMissing"]
    assert parse_spec({"static": {"pem": "x"}}).warnings() == []


def test_refresh_overrides_and_defaults() -> None:
    from jwks_operator.model.freshness import RefreshPolicy

    default = RefreshPolicy(60, 86400, 3600, 86400)
    spec = parse_spec(
        {
            "jwkUrl": URL,
            "refresh": {"minInterval": "90s", "fallbackInterval": "Never", "staleAfter": "1h30m"},
            "rotation": {"retainRemovedFor": "10m"},
        }
    )
    assert spec.refresh.policy(default) == RefreshPolicy(90, 86400, None, 5400)
    assert spec.retain_removed_for == 600
    assert parse_spec({"jwkUrl": URL}).refresh.policy(default) == default


@pytest.mark.parametrize(
    "name", [".", "..", "a..b", ".a", "a.", "-a", "A", "a/b", "a%2fb", "a b", "a\n", "a" * 254]
)
@pytest.mark.parametrize(
    ("where", "field"),
    [
        (lambda n: {"static": {"secretRef": {"name": n, "key": "k"}}}, "spec.static.secretRef.name"),
        (lambda n: {"jwkUrl": URL, "caBundleRef": {"name": n}}, "spec.caBundleRef.name"),
    ],
    ids=["secretRef", "caBundleRef"],
)
def test_names_of_objects_read_must_be_dns_subdomains(
    name: str, where: Callable[[str], dict[str, Any]], field: str
) -> None:
    """`.` and `..` would reach the API as collection paths (GET .../secrets/..), and no object can have
    any other name that is not an RFC 1123 subdomain: refused like the CRD's pattern refuses them."""
    with pytest.raises(SpecError) as info:
        parse_spec(where(name))
    assert info.value.field == field
    problem = "must be a lowercase RFC 1123 subdomain name (at most 253 characters)"
    assert info.value.message == f"{field}: {problem}"


@pytest.mark.parametrize("name", ["s", "hmac-key", "a.b-c.d0", "0", "a" * 64 + "." + "b" * 188])
def test_names_that_are_dns_subdomains_are_accepted(name: str) -> None:
    assert parse_spec({"static": {"secretRef": {"name": name, "key": "k"}}}).secret_ref.name == name  # type: ignore[union-attr]
    assert parse_spec({"jwkUrl": URL, "caBundleRef": {"name": name}}).ca_bundle.name == name  # type: ignore[union-attr]


def test_ca_bundle_reference() -> None:
    from jwks_operator.resource.spec import CaBundleRef

    assert parse_spec({"jwkUrl": URL, "caBundleRef": {"name": "ca"}}).ca_bundle == CaBundleRef(
        "ConfigMap", "ca"
    )
    spec = parse_spec({"jwkUrl": URL, "caBundleRef": {"kind": "Secret", "name": "s", "key": "root.pem"}})
    assert spec.ca_bundle == CaBundleRef("Secret", "s", "root.pem")
