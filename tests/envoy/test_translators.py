"""The tier's two translations are the gateways' own: Envoy Gateway's (followed in Python) reproduces Envoy
Gateway's test data, and istio-envoy (istiod's code) gives the filters istiod's rules say; Envoy runs both.

No operator here: Envoy Gateway's test data (internal/gatewayapi/testdata: SecurityPolicy -> IR;
internal/xds/translator/testdata: IR -> Envoy) comes from its Go module, pinned by tests/harness/gomod.py.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jwt
import pytest
import yaml

from tests.harness.envoy import GatewayConfig, running
from tests.harness.envoygateway import JWT_FILTER, TranslationError, gateway_config, ir_jwt, jwt_authn
from tests.harness.gomod import ENVOY_GATEWAY, istio_envoy, module_dir
from tests.harness.istio import istio_config
from tests.material import ec_key, private_pem, public_jwk

TESTDATA = Path("internal/gatewayapi/testdata")
XDS_TESTDATA = Path("internal/xds/translator/testdata")
# SecurityPolicy -> IR cases with a jwt (securitypolicy-with-jwt*.in.yaml), less the remote JWKS reached
# through a backend (backendRefs, backendSettings, ServiceImport), which this module does not follow.
STAGE_ONE = [
    "securitypolicy-with-jwt",
    "securitypolicy-with-jwt-local-jwks",
    "securitypolicy-with-jwt-optional",
    "securitypolicy-with-jwt-fail-open",
    "securitypolicy-with-jwt-with-custom-extractor",
    "securitypolicy-with-jwt-and-invalid-oidc",
]
# IR -> Envoy cases with a jwt (every in/xds-ir file with security.jwt), less jwt-from-multiple-listeners
# (Envoy Gateway merges listeners sharing a port into one Envoy listener) and jwt-with-backend-tls-retry
# (a remote JWKS through a backend): neither is a shape the operator's SecurityPolicy takes.
STAGE_TWO = [
    "authorization-jwt-claim",
    "authorization-jwt-scope",
    "custom-filter-order",
    "jwt-allow-missing-or-failed",
    "jwt-custom-extractor",
    "jwt-multi-route-multi-provider",
    "jwt-multi-route-single-provider",
    "jwt-optional",
    "jwt-ratelimit",
    "jwt-single-route-single-match",
    "mixed-tls-jwt-authn",
    "oidc-and-jwt-with-passthrough",
    "securitypolicy-with-oidc-jwt-authz",
]


def eg_data(path: Path) -> Any:
    return yaml.safe_load((module_dir(*ENVOY_GATEWAY) / path).read_text()) or {}


@pytest.mark.parametrize("case", STAGE_ONE)
def test_security_policies_become_envoy_gateways_ir(case: str) -> None:
    """Each SecurityPolicy's jwt, translated here, is the IR of every route it targets in Envoy Gateway's
    expected output (or its 500 direct response when Envoy Gateway refuses the policy)."""
    given = eg_data(TESTDATA / f"{case}.in.yaml")
    expected = eg_data(TESTDATA / f"{case}.out.yaml")
    configmaps: dict[str, dict[str, dict[str, str]]] = {}
    for cm in given.get("configMaps") or []:
        where = configmaps.setdefault(cm["metadata"].get("namespace", "default"), {})
        where[cm["metadata"]["name"]] = cm.get("data") or {}
    routes = [
        r
        for gateway in expected["xdsIR"].values()
        for listener in gateway.get("http") or []
        for r in listener.get("routes") or []
    ]
    compared = 0
    for policy in given["securityPolicies"]:
        namespace = policy["metadata"].get("namespace", "default")
        try:
            mine, refused = ir_jwt(policy, configmaps.get(namespace, {})), False
        except TranslationError:
            mine, refused = None, True
        spec = policy["spec"]
        refs = spec.get("targetRefs") or [spec["targetRef"]]
        for ref in (r for r in refs if r["kind"] == "HTTPRoute"):
            for route in routes:
                meta = route.get("metadata") or {}
                if (meta.get("name"), meta.get("namespace")) != (ref["name"], namespace):
                    continue
                compared += 1
                if refused:
                    assert route["directResponse"]["statusCode"] == 500, route["name"]
                else:
                    assert (route.get("security") or {}).get("jwt") == mine, route["name"]
    assert compared, f"{case}: no route of Envoy Gateway's output compared"


def _prefix(name: str) -> str:
    return name.rsplit("_", 1)[0]


def _resolved(requirement: Any, ids: Mapping[str, str]) -> Any:
    if isinstance(requirement, dict):
        return {k: ids[v] if k == "providerName" else _resolved(v, ids) for k, v in requirement.items()}
    if isinstance(requirement, list):
        return [_resolved(v, ids) for v in requirement]
    return requirement


def canonical(jwt_filter: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A jwt_authn filter with its generated names' hash suffixes replaced by what they name (providers by
    their configuration, requirements by their resolved content), and its requirements by name."""
    config = jwt_filter["typedConfig"]
    ids = {
        name: f"{_prefix(name)}#{json.dumps(p, sort_keys=True)}" for name, p in config["providers"].items()
    }
    requirements = {name: _resolved(r, ids) for name, r in config["requirementMap"].items()}
    shape = {
        "providers": sorted(ids.values()),
        "requirements": sorted((_prefix(n), json.dumps(r, sort_keys=True)) for n, r in requirements.items()),
        "other": {k: v for k, v in config.items() if k not in ("providers", "requirementMap")},
    }
    return shape, requirements


@pytest.mark.parametrize("case", STAGE_TWO)
def test_envoy_gateways_ir_becomes_its_jwt_filter(case: str) -> None:
    """The jwt_authn filter and each route's requirement, translated here from Envoy Gateway's input IR, are
    those of its expected listeners and routes (generated names compared by what they name)."""
    given = eg_data(XDS_TESTDATA / "in" / "xds-ir" / f"{case}.yaml")
    listeners = eg_data(XDS_TESTDATA / "out" / "xds-ir" / f"{case}.listeners.yaml")
    route_configs = eg_data(XDS_TESTDATA / "out" / "xds-ir" / f"{case}.routes.yaml")
    expected_routes = {
        r["name"]: r for config in route_configs for host in config["virtualHosts"] for r in host["routes"]
    }
    compared = 0
    for listener in given["http"]:
        routes = {
            r["name"]: r["security"]["jwt"]
            for r in listener["routes"]
            if (r.get("security") or {}).get("jwt")
        }
        if not routes:
            continue
        mine, per_route = jwt_authn(routes)
        out = next(item for item in listeners if item["name"] == listener["name"])
        chain = out["defaultFilterChain"] if "defaultFilterChain" in out else out["filterChains"][0]
        manager = next(
            f["typedConfig"] for f in chain["filters"] if f["name"].endswith("http_connection_manager")
        )
        theirs = next(f for f in manager["httpFilters"] if f["name"] == JWT_FILTER)
        (their_shape, their_requirements), (my_shape, my_requirements) = canonical(theirs), canonical(mine)
        assert my_shape == their_shape
        for name in routes:
            their_name = expected_routes[name]["typedPerFilterConfig"][JWT_FILTER]["requirementName"]
            my_name = per_route[name][JWT_FILTER]["requirementName"]
            assert _prefix(my_name) == _prefix(their_name)
            assert my_requirements[my_name] == their_requirements[their_name]
            compared += 1
    assert compared, f"{case}: no route compared"


def test_a_policy_envoy_gateway_refuses_makes_its_route_answer_500(tmp_path: Path) -> None:
    """A localJWKS ValueRef to a missing ConfigMap: Envoy Gateway's 500 direct response, served by Envoy."""
    policy = {
        "metadata": {"name": "p", "namespace": "apps"},
        "spec": {
            "jwt": {
                "providers": [
                    {
                        "name": "idp",
                        "localJWKS": {
                            "type": "ValueRef",
                            "valueRef": {"group": "", "kind": "ConfigMap", "name": "gone"},
                        },
                    }
                ]
            }
        },
    }
    config = gateway_config(policy, {})
    assert (config.direct_status, config.errors) == (500, ("local JWKS ConfigMap apps/gone not found",))
    with running(tmp_path, config) as envoy:
        assert envoy.request(None).status == 500


def request_authentication(jwks: str, selector: Mapping[str, str] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "jwtRules": [{"issuer": "https://idp.test", "audiences": ["shop-api"], "jwks": jwks}]
    }
    if selector is not None:
        spec["selector"] = {"matchLabels": dict(selector)}
    return {
        "apiVersion": "security.istio.io/v1",
        "kind": "RequestAuthentication",
        "metadata": {"name": "shop", "namespace": "shop", "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": spec,
    }


def authorization_policy() -> dict[str, Any]:
    return {
        "apiVersion": "security.istio.io/v1",
        "kind": "AuthorizationPolicy",
        "metadata": {"name": "require", "namespace": "shop", "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {
            "selector": {"matchLabels": {"app": "shop"}},
            "action": "ALLOW",
            "rules": [{"from": [{"source": {"requestPrincipals": ["https://idp.test/*"]}}]}],
        },
    }


JWKS = json.dumps({"keys": [public_jwk(ec_key(), kid="k1", alg="ES256")]})


def test_istiod_gives_a_selected_sidecar_jwt_authn_with_the_inline_jwks_and_rbac() -> None:
    config = istio_config(
        [request_authentication(JWKS, {"app": "shop"}), authorization_policy()], "shop", {"app": "shop"}
    )
    assert [f["name"] for f in config.http_filters] == [
        "envoy.filters.http.jwt_authn",
        "envoy.filters.http.rbac",
    ]
    authn = config.http_filters[0]["typed_config"]
    assert authn["providers"] == {
        "origins-0": {
            "issuer": "https://idp.test",
            "audiences": ["shop-api"],
            "local_jwks": {"inline_string": JWKS},  # BuildLocalJwks: the jwks verbatim
            "payload_in_metadata": "payload",
            "normalize_payload_in_metadata": {"space_delimited_claims": ["permission", "scope"]},
        }
    }
    assert authn["rules"] == [  # a token is not required (allow_missing), but one given must verify
        {
            "match": {"prefix": "/"},
            "requires": {
                "requires_any": {"requirements": [{"provider_name": "origins-0"}, {"allow_missing": {}}]}
            },
        }
    ]
    rbac = json.dumps(config.http_filters[1])
    assert '"key": "iss"' in rbac
    assert '"key": "sub"' in rbac  # requestPrincipals "<iss>/*": the iss and any non-empty sub


def test_istiod_gives_no_filter_to_a_sidecar_its_selector_does_not_pick() -> None:
    config = istio_config([request_authentication(JWKS, {"app": "shop"})], "shop", {"app": "other"})
    assert config == GatewayConfig()


def test_an_invalid_request_authentication_is_refused_as_istiod_would() -> None:
    invalid = request_authentication(JWKS)
    del invalid["spec"]["jwtRules"][0]["issuer"]
    with pytest.raises(AssertionError, match="issuer or jwksUri must be non-empty string"):
        istio_config([invalid], "shop", {})


def test_istio_envoy_without_objects_is_a_usage_error() -> None:
    done = subprocess.run([str(istio_envoy())], capture_output=True, text=True, check=False, timeout=60)
    assert (done.returncode, done.stdout) == (2, "")
    assert "usage: istio-envoy -namespace NS" in done.stderr


def test_a_value_ref_reads_the_configmaps_jwks_key_first() -> None:
    """buildLocalJWKS reads the key `jwks` (the operator's ConfigMap also holds jwks.json and policy.json)."""
    local = {"type": "ValueRef", "valueRef": {"group": "", "kind": "ConfigMap", "name": "idp-jwks"}}
    policy = {
        "metadata": {"namespace": "apps"},
        "spec": {"jwt": {"providers": [{"name": "idp", "localJWKS": local}]}},
    }
    data = {"jwks.json": "other", "policy.json": "{}", "jwks": JWKS}
    jwt = ir_jwt(policy, {"idp-jwks": data})
    assert jwt == {"providers": [{"name": "idp", "localJWKS": JWKS}]}
    assert ir_jwt(policy, {"idp-jwks": {"only": "this"}}) == {
        "providers": [{"name": "idp", "localJWKS": "this"}]
    }


@pytest.mark.parametrize(("principal", "status"), [("https://idp.test/*", 403), ("https://idp.test//*", 200)])
def test_an_issuer_ending_in_a_slash_needs_its_slash_in_request_principals(
    tmp_path: Path, principal: str, status: int
) -> None:
    """istiod splits a request principal at its last "/": for the issuer https://idp.test/ (Auth0's
    kind), "https://idp.test/*" names the issuer https://idp.test and refuses every token."""
    key = ec_key("P-256", 3)
    jwks = json.dumps({"keys": [public_jwk(key, kid="k1", alg="ES256")]})
    authn = request_authentication(jwks, {"app": "shop"})
    authn["spec"]["jwtRules"][0]["issuer"] = "https://idp.test/"
    authz = authorization_policy()
    authz["spec"]["rules"][0]["from"][0]["source"]["requestPrincipals"] = [principal]
    claims = {"iss": "https://idp.test/", "aud": "shop-api", "sub": "alice", "exp": 2**31}
    token = jwt.encode(claims, private_pem(key), "ES256", headers={"kid": "k1"})
    with running(tmp_path, istio_config([authn, authz], "shop", {"app": "shop"})) as envoy:
        assert envoy.request(token).status == status
