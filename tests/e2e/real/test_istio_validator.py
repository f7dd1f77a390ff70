"""tests/gateways/istio's `istio-validate` can both pass and fail a RequestAuthentication.

It runs istiod's own validation webhook handler (tests/harness/gomod.py builds it), so tests that feed
it what the operator wrote (test_gateways) rely on it saying no when Istio would. No cluster needed:
on the real tier because its cold build (Istio + Kubernetes, minutes) is done by `make test-real`.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.harness.gomod import istio_validator
from tests.material import public_jwk, rsa_key

ISSUER = "https://idp.test/"
JWKS = json.dumps({"keys": [public_jwk(rsa_key(), kid="k1", use="sig", alg="RS256")]})


def request_authentication(*rules: dict[str, Any], api_version: str = "v1") -> dict[str, Any]:
    """A RequestAuthentication as `kubectl get requestauthentication X -o json` prints it."""
    return {
        "apiVersion": f"security.istio.io/{api_version}",
        "kind": "RequestAuthentication",
        "metadata": {
            "name": "shop",
            "namespace": "default",
            "uid": "0b4c6a3e-7a41-4f1e-9d0a-5b3f3f6f2a10",
            "resourceVersion": "1234",
            "generation": 1,
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "labels": {"app.kubernetes.io/managed-by": "jwks-operator"},
            "managedFields": [{"manager": "jwks-operator", "operation": "Apply", "apiVersion": "v1"}],
        },
        "spec": {"selector": {"matchLabels": {"app": "shop"}}, "jwtRules": list(rules)},
    }


def validate(obj: dict[str, Any], tmp_path: Path) -> tuple[int, dict[str, Any], str]:
    """istio-validate's exit code, its JSON verdict ({} when none) and its stderr."""
    path = tmp_path / "object.json"
    path.write_text(json.dumps(obj))
    done = subprocess.run(
        [str(istio_validator()), str(path)], capture_output=True, text=True, check=False, timeout=60
    )
    verdict: dict[str, Any] = json.loads(done.stdout) if done.stdout.strip() else {}
    return done.returncode, verdict, done.stderr


@pytest.mark.parametrize("api_version", ["v1", "v1beta1"])
def test_one_rsa_key_is_valid_and_read(tmp_path: Path, api_version: str) -> None:
    rule = {"issuer": ISSUER, "audiences": ["shop-api"], "jwks": JWKS}
    code, verdict, stderr = validate(request_authentication(rule, api_version=api_version), tmp_path)
    assert (code, verdict) == (0, {"valid": True, "errors": [], "warnings": [], "keys": [1]}), stderr


def test_keys_are_counted_per_rule(tmp_path: Path) -> None:
    two = json.dumps({"keys": [public_jwk(rsa_key(), kid="k1"), public_jwk(rsa_key(n=1), kid="k2")]})
    rules = [
        {"issuer": ISSUER, "jwks": two},
        {"issuer": "https://other.test/", "jwksUri": "https://other.test/jwks"},  # no inline jwks: no entry
        {"issuer": "https://empty.test/", "jwks": '{"keys": []}'},
    ]
    code, verdict, stderr = validate(request_authentication(*rules), tmp_path)
    assert (code, verdict["valid"], verdict["keys"]) == (0, True, [2, 0]), stderr


def test_jwks_that_is_not_json_is_invalid(tmp_path: Path) -> None:
    code, verdict, _ = validate(request_authentication({"issuer": ISSUER, "jwks": "not json"}), tmp_path)
    assert (code, verdict["valid"], verdict["keys"]) == (1, False, [None])
    assert len(verdict["errors"]) == 1
    assert verdict["errors"][0].startswith("jwks parse error:")


def test_jwks_and_jwks_uri_together_are_accepted(tmp_path: Path) -> None:
    """Istio does not forbid both: validateJwtRule checks each alone (Envoy then uses the inline jwks)."""
    rule = {"issuer": ISSUER, "jwks": JWKS, "jwksUri": "https://idp.test/jwks"}
    code, verdict, stderr = validate(request_authentication(rule), tmp_path)
    assert (code, verdict) == (0, {"valid": True, "errors": [], "warnings": [], "keys": [1]}), stderr


def test_no_issuer_and_no_jwks_uri_is_invalid(tmp_path: Path) -> None:
    code, verdict, _ = validate(request_authentication({"audiences": ["shop-api"], "jwks": JWKS}), tmp_path)
    assert (code, verdict["valid"]) == (1, False)
    assert verdict["errors"] == ["issuer or jwksUri must be non-empty string"]


def test_errors_are_listed_one_by_one(tmp_path: Path) -> None:
    rule = {"audiences": [""], "jwks": "not json"}
    code, verdict, _ = validate(request_authentication(rule), tmp_path)
    assert code == 1
    assert verdict["errors"][:2] == [
        "audience must be non-empty string",
        "issuer or jwksUri must be non-empty string",
    ]
    assert len(verdict["errors"]) == 3


def test_private_key_material_is_a_warning(tmp_path: Path) -> None:
    secret = json.dumps({"keys": [{"kty": "oct", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQ"}]})
    code, verdict, stderr = validate(request_authentication({"issuer": ISSUER, "jwks": secret}), tmp_path)
    assert (code, verdict["valid"], verdict["errors"], verdict["keys"]) == (0, True, [], [1]), stderr
    assert verdict["warnings"] == [
        "jwks key at index 0 contains private key material; only public keys are used for verification"
    ]


def test_an_unknown_spec_field_is_a_parse_error(tmp_path: Path) -> None:
    rule = {"issuer": ISSUER, "jwks": JWKS, "jwksURI": "https://idp.test/jwks"}  # misspelt jwksUri
    code, verdict, stderr = validate(request_authentication(rule), tmp_path)
    assert (code, verdict) == (2, {})
    assert 'unknown field "jwksURI"' in stderr


def test_an_unknown_top_level_field_is_rejected_by_the_webhook(tmp_path: Path) -> None:
    obj = {**request_authentication({"issuer": ISSUER, "jwks": JWKS}), "data": {}}
    code, verdict, _ = validate(obj, tmp_path)
    assert (code, verdict["valid"]) == (1, False)
    assert verdict["errors"] == ['unknown field "data" on RequestAuthentication resource default/shop']


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[]", "not a JSON object"),
        (json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}), "want a"),
        (json.dumps({**request_authentication(), "spec": None}), "no spec"),
    ],
)
def test_other_input_is_a_usage_error(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "object.json"
    path.write_text(content)
    done = subprocess.run(
        [str(istio_validator()), str(path)], capture_output=True, text=True, check=False, timeout=60
    )
    assert (done.returncode, done.stdout) == (2, "")
    assert message in done.stderr


def test_no_argument_is_a_usage_error() -> None:
    done = subprocess.run([str(istio_validator())], capture_output=True, text=True, check=False, timeout=60)
    assert (done.returncode, done.stdout) == (2, "")
    assert "usage: istio-validate OBJECT_JSON_FILE" in done.stderr
