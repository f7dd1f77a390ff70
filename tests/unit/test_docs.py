"""Every YAML and Python example in the README and docs/ is checked, so the guides stay copy-pasteable."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
import yaml

from jwks_operator.keys.keyset import KeySet
from jwks_operator.publish.gateways import PARSERS
from jwks_operator.publish.outputs import render
from jwks_operator.resource.spec import parse_spec, target_name
from tests.harness.k8s import apply_defaults, load_crds, prune, validate
from tests.material import private_pem, public_jwk, rsa_key

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SCHEMA = load_crds(ROOT / "crds")[0]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def blocks(language: str) -> list[tuple[str, str]]:
    found = []
    for page in PAGES:
        for body in re.findall(rf"```{language}\n(.*?)```", page.read_text(), re.DOTALL):
            found.append((page.name, body))
    return found


def documents() -> list[tuple[str, dict[str, Any]]]:
    return [(page, doc) for page, body in blocks("yaml") for doc in yaml.safe_load_all(body) if doc]


DOCS = documents()
JWTSECRETS = [(p, d) for p, d in DOCS if d["kind"] == "JwtSecret"]


def test_the_guides_have_examples() -> None:
    assert len(JWTSECRETS) >= 8
    assert {d["kind"] for _, d in DOCS} >= {"JwtSecret", "SecurityPolicy", "ConfigMap", "Pod"}
    shown = {key for _, d in JWTSECRETS for o in d["spec"].get("outputs") or [] for key in o}
    assert shown == set(PARSERS), "docs/integrations.md shows a manifest for every gateway output"


@pytest.mark.parametrize(
    ("page", "doc"), JWTSECRETS, ids=[f"{p}:{d['metadata']['name']}" for p, d in JWTSECRETS]
)
def test_jwtsecret_examples_are_valid(page: str, doc: dict[str, Any]) -> None:
    obj = {
        "apiVersion": doc["apiVersion"],
        "kind": doc["kind"],
        "metadata": doc["metadata"],
        "spec": doc["spec"],
    }
    apply_defaults(obj, SCHEMA)
    pruned = {**obj, "spec": dict(obj["spec"])}
    prune(pruned["spec"], SCHEMA["properties"]["spec"])
    assert pruned == obj, "the example uses fields the CRD does not declare"
    assert validate(obj, SCHEMA) == []
    spec = parse_spec(doc["spec"])
    assert spec.audiences, "every example sets audiences"
    assert not [w for w in spec.warnings() if w[0] == "InsecureHttp"]


def test_envoy_gateway_policy_points_at_a_published_configmap() -> None:
    published = {target_name(d["metadata"]["name"], parse_spec(d["spec"])) for _, d in JWTSECRETS}
    policies = [d for _, d in DOCS if d["kind"] == "SecurityPolicy"]
    managed = {
        o["envoyGateway"]["securityPolicy"]
        for _, d in JWTSECRETS
        for o in d["spec"].get("outputs") or []
        if "envoyGateway" in o
    }
    assert policies
    assert managed, "the guide shows a SecurityPolicy whose provider the operator manages"
    for policy in policies:
        if "jwt" not in policy["spec"]:
            assert policy["metadata"]["name"] in managed, "a policy without jwt is one the operator fills"
            continue
        for provider in policy["spec"]["jwt"]["providers"]:
            local = provider["localJWKS"]
            assert local["type"] == "ValueRef"
            assert local["valueRef"]["kind"] == "ConfigMap"
            assert local["valueRef"]["group"] == ""
            assert local["valueRef"]["name"] in published
            assert len(provider.get("audiences", [])) <= 8  # Envoy Gateway's limit


def test_envoy_sidecar_recipe_fetches_the_mounted_published_configmap() -> None:
    """The Envoy recipe: remote_jwks on loopback, served by the Pod's sidecar from the whole mounted
    ConfigMap of a documented JwtSecret (tests/envoy/test_recipes.py runs it)."""
    config = next(d for _, d in DOCS if d["kind"] == "ConfigMap" and "envoy.yaml" in d["data"])
    bootstrap = yaml.safe_load(config["data"]["envoy.yaml"])
    (listener,) = bootstrap["static_resources"]["listeners"]
    manager = listener["filter_chains"][0]["filters"][0]["typed_config"]
    jwt_filter = next(f for f in manager["http_filters"] if f["name"] == "envoy.filters.http.jwt_authn")
    remote = jwt_filter["typed_config"]["providers"]["firebase"]["remote_jwks"]
    assert remote["http_uri"]["uri"] == "http://127.0.0.1:8081/jwks.json"
    pod = next(d for _, d in DOCS if d["kind"] == "Pod")
    sidecar = next(c for c in pod["spec"]["containers"] if c["name"] == "jwks")
    assert sidecar["command"][-1] == sidecar["volumeMounts"][0]["mountPath"]
    assert "8081" in sidecar["command"]
    volume = next(v for v in pod["spec"]["volumes"] if v["name"] == "jwks")
    assert "items" not in volume["configMap"], "the whole ConfigMap: jwks.json and policy.json"
    assert all("subPath" not in m for c in pod["spec"]["containers"] for m in c.get("volumeMounts", []))
    published = {target_name(d["metadata"]["name"], parse_spec(d["spec"])) for _, d in JWTSECRETS}
    assert volume["configMap"]["name"] in published


def test_python_gateway_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (source,) = [body for _, body in blocks("python")]
    key = rsa_key()
    spec = parse_spec({"jwkUrl": "https://idp/jwks", "audiences": ["orders"], "issuers": ["https://idp"]})
    for name, value in render(spec, KeySet((public_jwk(key, kid="k", alg="RS256"),))).items():
        (tmp_path / name).write_text(value)
    monkeypatch.setenv("JWKS_DIR", str(tmp_path))
    namespace: dict[str, Any] = {}
    exec(compile(source, "docs/integrations.md", "exec"), namespace)
    claims = {"aud": "orders", "iss": "https://idp", "sub": "u", "exp": int(time.time()) + 60}
    token = jwt.encode(claims, private_pem(key), "RS256", headers={"kid": "k"})
    assert namespace["authenticate"]({"Authorization": f"Bearer {token}"})["sub"] == "u"
    wrong = jwt.encode({**claims, "aud": "x"}, private_pem(key), "RS256", headers={"kid": "k"})
    with pytest.raises(PermissionError, match="audience 'x'"):
        namespace["authenticate"]({"Authorization": f"Bearer {wrong}"})
