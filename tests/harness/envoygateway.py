"""Envoy Gateway's translation of a SecurityPolicy's `jwt` into Envoy configuration, followed in Python.

Envoy Gateway (github.com/envoyproxy/gateway v1.9.1, the version tests/harness/gomod.py pins) translates in
two stages, each followed here field by field:

1. internal/gatewayapi/securitypolicy.go (buildJWT, validateJWTProvider, buildLocalJWKS): the SecurityPolicy
   and its ConfigMaps become the route's IR `security.jwt` (internal/ir/xds.go JWT, JWTProvider): each
   provider's name, issuer, audiences, claimToHeaders, recomputeRoute, extractFrom and JWKS text, plus
   allowMissing (`optional`) and allowMissingOrFailed (`failOpen`). A `localJWKS` ValueRef reads the
   ConfigMap's key `jwks`, else its one other entry. Any error makes the route answer 500 itself (the
   direct response of translateSecurityPolicyForRoute: fail closed); a SecurityPolicy without `jwt` leaves
   the route without authentication.
2. internal/xds/translator/jwt.go (buildJWTAuthn, buildJWTProvider, buildJWTRequirement, patchRoute): the
   IR becomes the listener's envoy.filters.http.jwt_authn filter (providers, requirement_map) and the
   route's PerRouteConfig naming its requirement.

Provider and requirement names are `<names>_<16 hex>`: Envoy Gateway hashes the deterministic protobuf
encoding of the generated message (protoHash), this module the canonical JSON of the same message; the
names are opaque to Envoy, and tests/envoy/test_translators.py compares the rest with Envoy Gateway's own
test data (internal/*/testdata) with the suffixes masked. The user-facing documentation of the same
translation: https://gateway.envoyproxy.io/docs/tasks/security/jwt-authentication/ and
https://gateway.envoyproxy.io/docs/api/extension_types/#localjwks.

Why not egctl (`egctl x translate` in the same module): a cold build took about 25 minutes and 1.1 GB of
modules on a 2-core machine, more than the whole `make test` budget allows for one tier.
"""

from __future__ import annotations

import hashlib
import json
import re
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Any

from tests.harness.envoy import GatewayConfig

JWT_FILTER = "envoy.filters.http.jwt_authn"
JWT_TYPE = "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication"
PER_ROUTE_TYPE = "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.PerRouteConfig"
JWKS_CONFIGMAP_KEY = "jwks"  # gatewayapi.JWKSConfigMapKey
REMOTE_TIMEOUT = "10s"  # xds/translator defaultExtServiceRequestTimeout
MAX_NAME = 256  # jwt.go maxJWTNameLength
_QUALIFIED_NAME = re.compile(  # k8s.io/apimachinery validation.IsQualifiedName
    r"^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)


class TranslationError(ValueError):
    """What Envoy Gateway reports on the SecurityPolicy (and answers 500 for on its routes)."""


# -- stage 1: SecurityPolicy -> IR ------------------------------------------------------------------


def _valid_issuer(issuer: str) -> bool:
    """validateJWTProvider: an issuer with ':' is a URI (url.ParseRequestURI), with '@' an e-mail address."""
    if ":" in issuer:
        parsed = urllib.parse.urlsplit(issuer)
        return bool(parsed.scheme) and " " not in issuer and not parsed.fragment
    if "@" in issuer:
        local, _, domain = issuer.partition("@")
        return bool(local) and bool(domain) and " " not in issuer
    return True


def _validate(providers: Sequence[Mapping[str, Any]]) -> list[str]:
    """validateJWTProvider's errors."""
    errors: list[str] = []
    names: list[str] = []
    for provider in providers:
        before = len(errors)
        name = str(provider.get("name") or "")
        if not name:
            errors.append("jwt provider cannot be an empty string")
        issuer = provider.get("issuer") or ""
        if issuer and not _valid_issuer(issuer):
            errors.append("invalid issuer")
        remote, local = provider.get("remoteJWKS"), provider.get("localJWKS")
        if (remote is None) == (local is None):
            errors.append(f"either remoteJWKS or localJWKS must be specified for jwt provider: {name}")
        if local is not None:
            kind = local.get("type") or "Inline"
            if kind == "Inline" and local.get("inline") is None:
                errors.append(f"inline JWKS must be set for local JWKS provider: {name} if type is Inline")
            elif kind == "ValueRef" and local.get("valueRef") is None:
                errors.append(f"valueRef must be set for local JWKS provider: {name} if type is ValueRef")
        if len(errors) == before:
            if not _QUALIFIED_NAME.match(name):
                errors.append(f"{name} is not a qualified name")
            if name in names:
                errors.append(f"provider name {name} must be unique")
            names.append(name)
    return errors


def _local_jwks(local: Mapping[str, Any], namespace: str, configmaps: Mapping[str, Mapping[str, str]]) -> str:
    """buildLocalJWKS: the inline text, or the ConfigMap's `jwks` (else its only other entry)."""
    if (local.get("type") or "Inline") != "ValueRef":
        return str(local["inline"])
    name = local["valueRef"]["name"]
    data = configmaps.get(name)
    if data is None:
        raise TranslationError(f"local JWKS ConfigMap {namespace}/{name} not found")
    if JWKS_CONFIGMAP_KEY in data:
        return data[JWKS_CONFIGMAP_KEY]
    if data:
        return next(iter(data.values()))  # Go ranges over the map: any entry; ours always has `jwks`
    raise TranslationError(
        f"JWKS data not found in ConfigMap {namespace}/{name}, no {JWKS_CONFIGMAP_KEY!r} key"
    )


def ir_jwt(policy: Mapping[str, Any], configmaps: Mapping[str, Mapping[str, str]]) -> dict[str, Any] | None:
    """The route's IR `security.jwt` for this SecurityPolicy (None: the policy has no jwt), from the data
    of the ConfigMaps of its namespace (by name); TranslationError for what buildJWT refuses."""
    spec = policy.get("spec") or {}
    jwt = spec.get("jwt")
    if jwt is None:
        return None
    namespace = (policy.get("metadata") or {}).get("namespace", "")
    providers = list(jwt.get("providers") or [])
    errors = _validate(providers)
    if errors:
        raise TranslationError("; ".join(errors))
    out: list[dict[str, Any]] = []
    for provider in providers:
        ir: dict[str, Any] = {"name": provider["name"]}
        for key in ("issuer", "audiences", "claimToHeaders", "recomputeRoute", "extractFrom"):
            if provider.get(key):
                ir[key] = provider[key]
        if provider.get("remoteJWKS") is not None:
            ir["remoteJWKS"] = dict(provider["remoteJWKS"])
        else:
            ir["localJWKS"] = _local_jwks(provider["localJWKS"], namespace, configmaps)
        out.append(ir)
    result: dict[str, Any] = {"providers": out}
    if jwt.get("optional"):
        result["allowMissing"] = True
    if jwt.get("failOpen"):
        result["allowMissingOrFailed"] = True
    return result


# -- stage 2: IR -> Envoy ---------------------------------------------------------------------------


def _hash(message: Mapping[str, Any]) -> str:
    """The 16-hex suffix of a generated name (see the module's doc: not protoHash's bytes, its role)."""
    text = json.dumps(message, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _bounded(prefix: str, digest: str) -> str:
    """boundedJWTName: the prefix cut so that `<prefix>_<hash>` has MAX_NAME characters at most."""
    suffix = "_" + digest
    return prefix[: MAX_NAME - len(suffix)] + suffix


def _cluster(uri: str) -> str:
    """url2Cluster's name: host with dots as underscores, and the port (80/443 by scheme)."""
    parsed = urllib.parse.urlsplit(uri)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    return f"{(parsed.hostname or '').replace('.', '_')}_{port}"


def provider_config(ir: Mapping[str, Any]) -> dict[str, Any]:
    """buildJWTProvider: one IR provider as an Envoy JwtProvider (protobuf JSON names, as EG's test data)."""
    provider: dict[str, Any] = {}
    if ir.get("audiences"):
        provider["audiences"] = list(ir["audiences"])
    claims = [{"claimName": c["claim"], "headerName": c["header"]} for c in ir.get("claimToHeaders") or []]
    if claims:
        provider["claimToHeaders"] = claims
    if ir.get("recomputeRoute"):
        provider["clearRouteCache"] = True
    provider["forward"] = True
    extract = ir.get("extractFrom") or {}
    if extract.get("headers"):
        provider["fromHeaders"] = [
            {"name": h["name"], **({"valuePrefix": h["valuePrefix"]} if h.get("valuePrefix") else {})}
            for h in extract["headers"]
        ]
    if extract.get("cookies"):
        provider["fromCookies"] = list(extract["cookies"])
    if extract.get("params"):
        provider["fromParams"] = list(extract["params"])
    if ir.get("issuer"):
        provider["issuer"] = ir["issuer"]
    if "localJWKS" in ir:
        provider["localJwks"] = {"inlineString": ir["localJWKS"]}
    provider["normalizePayloadInMetadata"] = {"spaceDelimitedClaims": ["scope", "scp"]}
    provider["payloadInMetadata"] = ir["name"]
    if "remoteJWKS" in ir:
        remote = ir["remoteJWKS"]
        fetch: dict[str, Any] = {}
        if remote.get("failedRefetchDuration"):
            fetch["failedRefetchDuration"] = remote["failedRefetchDuration"]
        provider["remoteJwks"] = {
            "asyncFetch": fetch,
            **({"cacheDuration": remote["cacheDuration"]} if remote.get("cacheDuration") else {}),
            "httpUri": {"cluster": _cluster(remote["uri"]), "timeout": REMOTE_TIMEOUT, "uri": remote["uri"]},
        }
    return provider


def requirement(jwt: Mapping[str, Any]) -> tuple[dict[str, dict[str, Any]], str, dict[str, Any]]:
    """buildJWTRequirements + buildJWTRequirement + jwtRequirementName: the providers by name, and the
    route's requirement with its name."""
    providers: dict[str, dict[str, Any]] = {}
    parts: list[dict[str, Any]] = []
    for ir in jwt["providers"]:
        config = provider_config(ir)
        name = _bounded(ir["name"], _hash(config))
        providers[name] = config
        parts.append({"providerName": name})
    names = [p["name"] for p in jwt["providers"]]
    if jwt.get("allowMissingOrFailed"):
        parts.append({"allowMissingOrFailed": {}})
        names.append("missing-or-failed")
    elif jwt.get("allowMissing"):
        parts.append({"allowMissing": {}})
        names.append("missing")
    required = parts[0] if len(parts) == 1 else {"requiresAny": {"requirements": parts}}
    return providers, _bounded("-or-".join(names), _hash(required)), required


def jwt_authn(routes: Mapping[str, Mapping[str, Any]]) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """buildJWTAuthn + patchRoute: the listener's jwt_authn filter for these routes (route name -> IR jwt),
    and each route's typed_per_filter_config."""
    providers: dict[str, Any] = {}
    requirements: dict[str, Any] = {}
    per_route: dict[str, dict[str, Any]] = {}
    for route, jwt in routes.items():
        found, name, required = requirement(jwt)
        providers.update(found)
        requirements[name] = required
        per_route[route] = {JWT_FILTER: {"@type": PER_ROUTE_TYPE, "requirementName": name}}
    config = {"@type": JWT_TYPE, "providers": providers, "requirementMap": requirements}
    return {"name": JWT_FILTER, "typedConfig": config}, per_route


def gateway_config(policy: Mapping[str, Any], configmaps: Mapping[str, Mapping[str, str]]) -> GatewayConfig:
    """What Envoy Gateway gives the gateway for one route this SecurityPolicy targets."""
    try:
        jwt = ir_jwt(policy, configmaps)
    except TranslationError as exc:
        return GatewayConfig(direct_status=500, errors=(str(exc),))
    if jwt is None:
        return GatewayConfig()
    jwt_filter, per_route = jwt_authn({"route": jwt})
    return GatewayConfig((jwt_filter,), per_route["route"])
