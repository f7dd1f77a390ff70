"""Malformed JwtSecret specs, each with the text its rejection must contain (naming the field).

One table for three tests: the CRD's schema and CEL rules (tests/faults/test_bad_specs.py, no HTTP),
the API server's answer to a create (tests/e2e/test_hostile.py), and the operator's own check of a
spec that an API server without CEL let through (test_bad_specs.py, against such a server).
Unknown fields are pruned, not rejected, as by a real API server (unless the client asks for strict
field validation): a misspelt field is reported as the field it leaves missing.
"""

from __future__ import annotations

from typing import Any

URL = "https://idp.example/jwks"
JWK = {"kty": "EC", "crv": "P-256", "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "kid": "k"}
JWKS = {"keys": [JWK]}

BAD_SPECS: list[tuple[str, dict[str, Any], str]] = [
    ("no source", {}, "exactly one of spec.jwkUrl or spec.static must be set"),
    ("both sources", {"jwkUrl": URL, "static": {"pem": "x"}}, "exactly one of spec.jwkUrl or spec.static"),
    ("misspelt jwkUrl (pruned)", {"jwkURL": URL}, "exactly one of spec.jwkUrl or spec.static must be set"),
    ("http url", {"jwkUrl": "http://idp/jwks"}, "spec.jwkUrl: must use https://"),
    ("http url, flag false", {"jwkUrl": "http://idp/jwks", "allowInsecureHttp": False}, "spec.jwkUrl: must use https://"),
    ("not a url", {"jwkUrl": "file:///etc/passwd"}, "spec.jwkUrl in body should match"),
    ("empty url", {"jwkUrl": ""}, "spec.jwkUrl in body should be at least 1 chars long"),
    ("url too long", {"jwkUrl": URL + "x" * 2048}, "spec.jwkUrl: Too long: may not be more than 2048 bytes"),
    ("insecure flag not a boolean", {"jwkUrl": URL, "allowInsecureHttp": "yes"}, "spec.allowInsecureHttp"),
    ("empty audience", {"jwkUrl": URL, "audiences": [""]}, "spec.audiences[0]"),
    ("blank audience", {"jwkUrl": URL, "audiences": ["api", " "]}, "spec.audiences: values must not be blank"),
    ("audience a number", {"jwkUrl": URL, "audiences": [42]}, "spec.audiences[0] in body must be of type string"),
    ("audiences not a list", {"jwkUrl": URL, "audiences": "api"}, "spec.audiences in body must be of type"),
    ("duplicate audiences", {"jwkUrl": URL, "audiences": ["a", "a"]}, "spec.audiences[1]: Duplicate value"),
    ("too many audiences", {"jwkUrl": URL, "audiences": [f"a{i}" for i in range(65)]}, "spec.audiences"),
    ("empty issuer", {"jwkUrl": URL, "issuers": [""]}, "spec.issuers[0]"),
    ("blank issuer", {"jwkUrl": URL, "issuers": ["\t"]}, "spec.issuers: values must not be blank"),
    ("duplicate issuers", {"jwkUrl": URL, "issuers": ["i", "i"]}, "spec.issuers[1]: Duplicate value"),
    ("too many issuers", {"jwkUrl": URL, "issuers": [f"i{i}" for i in range(65)]}, "spec.issuers"),
    ("alg none", {"jwkUrl": URL, "algorithms": ["none"]}, "spec.algorithms[0]: Unsupported value"),
    ("duplicate algorithms", {"jwkUrl": URL, "algorithms": ["RS256", "RS256"]}, "spec.algorithms[1]: Duplicate value"),
    ("HS with a URL", {"jwkUrl": URL, "algorithms": ["RS256", "HS256"]}, "spec.algorithms: HS* cannot be used"),
    (
        "inline HMAC",
        {"static": {"jwks": {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}}},
        "spec.static.jwks.keys[0].kty: Unsupported value",
    ),
    ("private JWK", {"static": {"jwks": {"keys": [JWK, {**JWK, "kid": "p", "d": "x"}]}}}, "spec.static.jwks.keys: private key members"),
    ("private RSA primes", {"static": {"jwks": {"keys": [{"kty": "RSA", "p": "x", "q": "y"}]}}}, "spec.static.jwks.keys: private key members"),
    ("too many JWKs", {"static": {"jwks": {"keys": [JWK] * 101}}}, "spec.static.jwks.keys"),
    ("JWK without kty", {"static": {"jwks": {"keys": [{"kid": "k"}]}}}, "spec.static.jwks.keys[0].kty: Required"),
    ("JWK Set without keys", {"static": {"jwks": {}}}, "spec.static.jwks.keys: Required value"),
    ("empty JWK Set", {"static": {"jwks": {"keys": []}}}, "spec.static.jwks.keys in body should have at least 1"),
    ("two static kinds", {"static": {"pem": "x", "jwks": JWKS}}, "exactly one of spec.static.jwks, spec.static.pem"),
    ("static a string", {"static": "-----BEGIN PUBLIC KEY-----"}, "spec.static in body must be of type object"),
    ("empty static", {"static": {}}, "exactly one of spec.static.jwks, spec.static.pem or spec.static.secretRef"),
    ("empty PEM", {"static": {"pem": ""}}, "spec.static.pem in body should be at least 1 chars long"),
    ("secretRef without key", {"static": {"secretRef": {"name": "s"}}}, "spec.static.secretRef.key: Required"),
    ("secretRef without name", {"static": {"secretRef": {"key": "k"}}}, "spec.static.secretRef.name: Required"),
    ("secretRef name ..", {"static": {"secretRef": {"name": "..", "key": "k"}}}, "spec.static.secretRef.name in body should match"),
    ("secretRef name a path", {"static": {"secretRef": {"name": "a/b", "key": "k"}}}, "spec.static.secretRef.name in body should match"),
    ("kid beside a JWK Set", {"static": {"jwks": JWKS, "kid": "x"}}, "spec.static.kid: only applies to"),
    ("CA bundle of a Pod", {"jwkUrl": URL, "caBundleRef": {"kind": "Pod", "name": "ca"}}, "spec.caBundleRef.kind"),
    ("CA bundle without name", {"jwkUrl": URL, "caBundleRef": {"key": "ca.crt"}}, "spec.caBundleRef.name: Required"),
    ("CA bundle with empty name", {"jwkUrl": URL, "caBundleRef": {"name": ""}}, "spec.caBundleRef.name in body should be at least 1"),
    ("CA bundle named .", {"jwkUrl": URL, "caBundleRef": {"name": "."}}, "spec.caBundleRef.name in body should match"),
    ("CA bundle for static keys", {"static": {"jwks": JWKS}, "caBundleRef": {"name": "ca"}}, "spec.caBundleRef: only"),
    ("bad duration", {"jwkUrl": URL, "refresh": {"minInterval": "soon"}}, "spec.refresh.minInterval"),
    (
        "min above max",
        {"jwkUrl": URL, "refresh": {"minInterval": "2h", "maxInterval": "1h"}},
        "spec.refresh.minInterval: must not be greater than spec.refresh.maxInterval",
    ),
    ("maxInterval in days", {"jwkUrl": URL, "refresh": {"maxInterval": "1d"}}, "spec.refresh.maxInterval in body should match"),
    ("negative staleAfter", {"jwkUrl": URL, "refresh": {"staleAfter": "-1h"}}, "spec.refresh.staleAfter in body should match"),
    ("duration too long", {"jwkUrl": URL, "refresh": {"minInterval": "1s" * 33}}, "spec.refresh.minInterval: Too long: may not be more than 64 bytes"),
    ("zero interval", {"jwkUrl": URL, "refresh": {"minInterval": "0s"}}, "spec.refresh.minInterval: must be greater"),
    ("zero maxInterval", {"jwkUrl": URL, "refresh": {"maxInterval": "0ms"}}, "spec.refresh.maxInterval: must be greater"),
    ("zero staleAfter", {"jwkUrl": URL, "refresh": {"staleAfter": "0m"}}, "spec.refresh.staleAfter: must be greater"),
    ("zero fallback", {"jwkUrl": URL, "refresh": {"fallbackInterval": "0h"}}, "spec.refresh.fallbackInterval: must"),
    ("fallback sometimes", {"jwkUrl": URL, "refresh": {"fallbackInterval": "sometimes"}}, "spec.refresh.fallback"),
    ("refresh a number", {"jwkUrl": URL, "refresh": 60}, "spec.refresh in body must be of type object"),
    ("refresh for static keys", {"static": {"jwks": JWKS}, "refresh": {"maxInterval": "1h"}}, "spec.refresh: only"),
    ("retain in days", {"jwkUrl": URL, "rotation": {"retainRemovedFor": "1 day"}}, "spec.rotation.retainRemovedFor"),
    ("rotation for static keys", {"static": {"pem": "x"}, "rotation": {"retainRemovedFor": "1h"}}, "spec.rotation: only"),
    ("bad target name", {"jwkUrl": URL, "target": {"name": "Not_Valid"}}, "spec.target.name in body should match"),
    ("target name too long", {"jwkUrl": URL, "target": {"name": "a" * 254}}, "spec.target.name: Too long: may not be more than 253 bytes"),
    ("shared not a boolean", {"jwkUrl": URL, "target": {"name": "t", "shared": "yes"}}, "spec.target.shared"),
    ("allow without shared", {"jwkUrl": URL, "target": {"name": "t", "allow": ["b"]}}, "spec.target.allow: only applies with spec.target.shared: true"),
    ("two gateways in one output", {"jwkUrl": URL, "outputs": [{"istio": {"name": "a"}, "nginx": {}}]}, "exactly one of istio, envoyGateway"),
    ("an empty output", {"jwkUrl": URL, "outputs": [{}]}, "exactly one of istio, envoyGateway"),
    ("istio output without name", {"jwkUrl": URL, "outputs": [{"istio": {}}]}, "spec.outputs[0].istio.name: Required"),
    ("istio allow not a name", {"jwkUrl": URL, "outputs": [{"istio": {"name": "a", "allow": ["Team_A"]}}]}, "spec.outputs[0].istio.allow[0] in body should match"),
    ("envoy provider not a name", {"jwkUrl": URL, "outputs": [{"envoyGateway": {"securityPolicy": "p", "provider": "a b"}}]}, "spec.outputs[0].envoyGateway.provider in body should match"),
]  # fmt: skip
