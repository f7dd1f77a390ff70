"""The JwtSecret life cycle end to end: real Kopf operator process, emulated API server, TLS providers."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
import trustme
from kubernetes.client.exceptions import ApiException

from jwks_operator.model.names import GROUP, PLURAL, VERSION
from jwks_operator.publish.allow import ALLOW_ANNOTATION
from tests.harness.client import ClusterClient, wait_for
from tests.harness.idp import JwksProvider
from tests.harness.operator import OperatorProcess
from tests.material import (
    SECRET_JWK_MEMBERS,
    certificate_pem,
    ec_key,
    private_jwk,
    public_jwk,
    public_pem,
    rsa_key,
)

PRIVATE_MEMBERS = SECRET_JWK_MEMBERS
ALLOW_ANY = {"annotations": {ALLOW_ANNOTATION: "*"}}  # an HMAC Secret's owner opts in (#14)


@pytest.fixture
def provider(ca: trustme.CA) -> Iterator[JwksProvider]:
    with JwksProvider(ca=ca) as p:
        yield p


def published(kube: ClusterClient, ns: str, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    data = kube.configmap(ns, name).data
    return json.loads(data["jwks.json"]), json.loads(data["policy.json"])


def test_examples_are_accepted_and_become_ready(
    kube: ClusterClient, ns: str, examples: dict[str, list[Any]]
) -> None:
    for doc in examples["static-jwks.yaml"] + examples["static-pem.yaml"]:
        kube.custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, doc)
    for name in ("static-jwks", "static-pem"):
        obj = kube.wait_condition(ns, name)
        assert obj["status"]["keyCount"] == 1
    jwks, policy = published(kube, ns, "static-pem-jwks")
    assert jwks["keys"][0]["kid"] == "partner-es256"
    assert policy == {
        "algorithms": ["ES256"],
        "audiences": ["partner-api"],
        "issuers": ["https://partner.example.com"],
        "source": {"type": "pem"},
    }


def test_static_jwk_is_published_with_metadata_status_and_event(kube: ClusterClient, ns: str) -> None:
    good = public_jwk(rsa_key(), kid="k1", alg="RS256", use="sig")
    spec = {"static": {"jwks": {"keys": [good]}}, "audiences": ["api"], "issuers": ["https://iss"]}
    created = kube.create(ns, "s1", spec)
    obj = kube.wait_condition(ns, "s1")
    status = obj["status"]
    assert status["keys"] == [{"kid": "k1", "kty": "RSA", "alg": "RS256", "use": "sig"}]
    assert status["keyCount"] == 1
    assert status["source"] == "static:jwks"
    assert status["target"] == {"kind": "ConfigMap", "name": "s1-jwks"}
    assert status["observedGeneration"] == 1
    assert "lastError" not in status
    degraded = kube.condition(ns, "s1", "Degraded")
    assert degraded is not None
    assert (degraded["status"], degraded["reason"]) == ("False", "AsExpected")

    cm = kube.configmap(ns, "s1-jwks")
    assert cm.metadata.labels["app.kubernetes.io/managed-by"] == "jwks-operator"
    (ref,) = cm.metadata.owner_references
    assert (ref.kind, ref.name, ref.uid, ref.controller) == (
        "JwtSecret",
        "s1",
        created["metadata"]["uid"],
        True,
    )
    jwks, policy = published(kube, ns, "s1-jwks")
    assert jwks == {"keys": [good]}
    assert policy["audiences"] == ["api"]
    assert policy["issuers"] == ["https://iss"]
    assert "RS256" in policy["algorithms"]
    assert not kube.events(ns, "s1"), "the first publish is in status; no event (an API write) for it"
    kube.patch_spec(ns, "s1", {"audiences": ["api", "web"]})
    wait_for(lambda: any(e.reason == "Published" for e in kube.events(ns, "s1")), what="Published event")


def test_static_pem_certificate_and_key(kube: ClusterClient, ns: str) -> None:
    pem = certificate_pem(rsa_key()) + public_pem(ec_key("P-384"))
    kube.create(ns, "pem", {"static": {"pem": pem}})
    obj = kube.wait_condition(ns, "pem")
    assert [k["kty"] for k in obj["status"]["keys"]] == ["RSA", "EC"]
    jwks, _ = published(kube, ns, "pem-jwks")
    assert "x5c" in jwks["keys"][0]
    assert jwks["keys"][1]["alg"] == "ES384"


def test_hmac_secret_goes_to_a_secret_never_a_configmap(kube: ClusterClient, ns: str) -> None:
    raw = b"an-hmac-secret-that-is-32-bytes!"
    kube.core.create_namespaced_secret(
        ns, {"metadata": {"name": "signing", **ALLOW_ANY}, "data": {"k": base64.b64encode(raw).decode()}}
    )
    kube.create(
        ns, "hs", {"static": {"secretRef": {"name": "signing", "key": "k", "kid": "h1"}}, "audiences": ["a"]}
    )
    obj = kube.wait_condition(ns, "hs")
    assert obj["status"]["target"] == {"kind": "Secret", "name": "hs-jwks"}
    secret = kube.core.read_namespaced_secret("hs-jwks", ns)
    jwks = json.loads(base64.b64decode(secret.data["jwks.json"]))
    assert base64.urlsafe_b64decode(jwks["keys"][0]["k"] + "=") == raw
    assert secret.metadata.owner_references[0].name == "hs"
    with pytest.raises(ApiException) as missing:
        kube.configmap(ns, "hs-jwks")
    assert missing.value.status == 404
    token = jwt.encode({"aud": "a"}, raw, algorithm="HS256", headers={"kid": "h1"})
    assert jwt.decode(token, jwt.PyJWKSet(jwks["keys"])["h1"].key, algorithms=["HS256"], audience="a")
    everything = json.dumps(obj) + json.dumps([e.message for e in kube.events(ns, "hs")])
    assert raw.decode() not in everything
    assert jwks["keys"][0]["k"] not in everything


def test_missing_secret_is_reported_then_recovers(kube: ClusterClient, ns: str) -> None:
    kube.create(ns, "hs", {"static": {"secretRef": {"name": "later", "key": "k"}}})
    obj = kube.wait_condition(ns, "hs", "False", "SecretNotAvailable")
    assert obj["status"]["lastError"] == (
        "spec.static.secretRef: Secret later is not available to this JwtSecret (it must exist, hold the "
        "key, and allow it with the annotation jwks.dev/allow-jwtsecrets)"
    )
    kube.core.create_namespaced_secret(
        ns, {"metadata": {"name": "later", **ALLOW_ANY}, "data": {"k": base64.b64encode(b"x" * 32).decode()}}
    )
    kube.wait_condition(ns, "hs", timeout=30)


def test_jwk_url_over_tls_publishes_keys_that_verify_tokens(
    kube: ClusterClient, ns: str, provider: JwksProvider
) -> None:
    kube.create(ns, "url", {"jwkUrl": provider.url, "audiences": ["api"]})
    obj = kube.wait_condition(ns, "url")
    assert obj["status"]["source"] == provider.url
    assert obj["status"]["lastFetchTime"]
    assert obj["status"]["refresh"]["reason"] in ("ProviderCache", "MinInterval")
    jwks, policy = published(kube, ns, "url-jwks")
    assert policy["source"] == {"type": "jwkUrl", "url": provider.url}
    for key in jwks["keys"]:
        assert not PRIVATE_MEMBERS & set(key)
    token = provider.sign({"aud": "api", "exp": int(time.time()) + 60})
    kid = jwt.get_unverified_header(token)["kid"]
    claims = jwt.decode(
        token, jwt.PyJWKSet(jwks["keys"])[kid].key, algorithms=policy["algorithms"], audience="api"
    )
    assert claims["aud"] == "api"


def test_metrics_report_each_jwtsecret_and_url(
    kube: ClusterClient, ns: str, provider: JwksProvider, operator: OperatorProcess
) -> None:
    kube.create(ns, "good", {"jwkUrl": provider.url, "audiences": ["api"]})
    kube.create(ns, "bad", {"static": {"pem": "not a key"}})
    kube.wait_condition(ns, "good")
    kube.wait_condition(ns, "bad", "False")

    def series(name: str, **labels: str) -> float | None:
        return operator.scrape().get((name, frozenset(labels.items())))

    good, bad = {"namespace": ns, "jwtsecret": "good"}, {"namespace": ns, "jwtsecret": "bad"}
    assert series("jwks_operator_keys_published", **good) == len(provider.keys)
    assert series("jwks_operator_condition", **good, type="Ready", status="True") == 1.0
    assert series("jwks_operator_condition", **good, type="Ready", status="False") == 0.0
    assert series("jwks_operator_condition", **bad, type="Ready", status="False") == 1.0
    assert series("jwks_operator_keys_published", **bad) == 0.0
    url = {"url": provider.url}
    assert (series("jwks_operator_fetches_total", **url, result="ok") or 0) >= 1
    assert (series("jwks_operator_next_refresh_timestamp_seconds", **url) or 0) > time.time()
    assert series("jwks_operator_consecutive_failures", **url) == 0.0
    assert (series("jwks_operator_api_writes_total", kind="ConfigMap", verb="create") or 0) >= 1
    kube.delete(ns, "bad")
    wait_for(
        lambda: series("jwks_operator_keys_published", **bad) is None, what="series of a deleted object gone"
    )
    assert not [k for k in operator.scrape() if ("jwtsecret", "bad") in k[1] and ("namespace", ns) in k[1]]


def test_untrusted_tls_is_refused(kube: ClusterClient, ns: str) -> None:
    with JwksProvider(ca=trustme.CA()) as stranger:
        kube.create(ns, "tls", {"jwkUrl": stranger.url})
        obj = kube.wait_condition(ns, "tls", "False", "FetchFailed")
    assert obj["status"]["lastError"].startswith("TLS error")


def test_failures_keep_last_good_keys(kube: ClusterClient, ns: str, provider: JwksProvider) -> None:
    kube.create(ns, "url", {"jwkUrl": provider.url})
    kube.wait_condition(ns, "url")
    before = kube.configmap(ns, "url-jwks")
    provider.fail(status=503)
    obj = kube.wait_condition(ns, "url", "True", reason="FetchFailed", kind="Degraded", timeout=30)
    assert (kube.condition(ns, "url") or {}).get("status") == "True"
    assert obj["status"]["lastError"] == "HTTP 503 Service Unavailable"
    provider.recover()
    provider.serve_raw(json.dumps({"keys": [private_jwk(ec_key())]}).encode())
    obj = kube.wait_condition(ns, "url", "True", reason="FetchFailed", kind="Degraded", timeout=30)
    wait_for(
        lambda: "private key members" in kube.get(ns, "url")["status"].get("lastError", ""),
        30,
        "private key error",
    )
    after = kube.configmap(ns, "url-jwks")
    assert after.data == before.data
    assert after.metadata.resource_version == before.metadata.resource_version


def test_invalid_static_keys_are_reported_with_reasons(kube: ClusterClient, ns: str) -> None:
    weak = public_jwk(rsa_key(1024), kid="weak")
    good = public_jwk(ec_key(), kid="good")
    kube.create(ns, "mixed", {"static": {"jwks": {"keys": [good, weak]}}})
    obj = kube.wait_condition(ns, "mixed", "True", "KeysRejected", kind="Degraded")
    assert obj["status"]["rejectedKeys"] == [
        {"index": 1, "kid": "weak", "reason": "RSA key is 1024 bits; at least 2048 are required"}
    ]
    assert obj["status"]["keyCount"] == 1
    kube.create(ns, "none", {"static": {"jwks": {"keys": [weak]}}})
    obj = kube.wait_condition(ns, "none", "False", "NoValidKeys")
    assert "spec.static.jwks has no usable key" in obj["status"]["lastError"]
    kube.create(
        ns, "pem", {"static": {"pem": "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"}}
    )
    kube.wait_condition(ns, "pem", "False", "NoValidKeys")


def test_schema_rejects_malformed_specs_naming_the_field(kube: ClusterClient, ns: str) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({}, "exactly one of spec.jwkUrl or spec.static must be set"),
        ({"jwkUrl": "https://a/b", "static": {"pem": "x"}}, "exactly one of spec.jwkUrl or spec.static"),
        ({"jwkUrl": "http://a/b"}, "spec.jwkUrl: must use https://"),
        ({"jwkUrl": "https://a/b", "audiences": [""]}, "spec.audiences[0]"),
        ({"static": {}}, "exactly one of spec.static.jwks, spec.static.pem or spec.static.secretRef"),
        ({"jwkUrl": "https://a/b", "algorithms": ["none"]}, "spec.algorithms[0]"),
    ]
    for spec, message in cases:
        with pytest.raises(ApiException) as info:
            kube.create(ns, "bad", spec)
        assert info.value.status == 422
        assert message in json.loads(str(info.value.body))["message"]
    kube.create(ns, "http-ok", {"jwkUrl": "http://127.0.0.1:9/jwks", "allowInsecureHttp": True})


def test_spec_update_publishes_new_keys(kube: ClusterClient, ns: str) -> None:
    first = public_jwk(rsa_key(), kid="v1")
    second = public_jwk(ec_key(), kid="v2")
    kube.create(ns, "rot", {"static": {"jwks": {"keys": [first]}}})
    kube.wait_condition(ns, "rot")
    kube.patch_spec(ns, "rot", {"static": {"jwks": {"keys": [second]}}, "audiences": ["new"]})
    wait_for(lambda: published(kube, ns, "rot-jwks")[0]["keys"][0]["kid"] == "v2", what="v2 published")
    obj = kube.wait_condition(ns, "rot")
    assert obj["status"]["observedGeneration"] == 2
    assert published(kube, ns, "rot-jwks")[1]["audiences"] == ["new"]


def test_delete_removes_the_published_object(kube: ClusterClient, ns: str) -> None:
    kube.create(ns, "gone", {"static": {"jwks": {"keys": [public_jwk(ec_key())]}}})
    kube.wait_condition(ns, "gone")
    kube.delete(ns, "gone")
    wait_for(lambda: not kube.core.list_namespaced_config_map(ns).items, what="ConfigMap removed")


def test_unmanaged_configmap_is_never_overwritten(kube: ClusterClient, ns: str) -> None:
    kube.core.create_namespaced_config_map(ns, {"metadata": {"name": "taken-jwks"}, "data": {"mine": "yes"}})
    kube.create(ns, "taken", {"static": {"jwks": {"keys": [public_jwk(ec_key())]}}})
    obj = kube.wait_condition(ns, "taken", "False", "TargetConflict")
    assert (
        "ConfigMap taken-jwks already exists and is not managed by jwks-operator"
        in obj["status"]["lastError"]
    )
    assert kube.configmap(ns, "taken-jwks").data == {"mine": "yes"}
    kube.patch_spec(ns, "taken", {"target": {"name": "free-jwks"}})
    kube.wait_condition(ns, "taken")
    assert kube.configmap(ns, "free-jwks").metadata.owner_references[0].name == "taken"


def test_nothing_is_rewritten_when_nothing_changed(
    kube: ClusterClient, ns: str, provider: JwksProvider
) -> None:
    kube.create(ns, "quiet", {"jwkUrl": provider.url})
    kube.wait_condition(ns, "quiet")
    time.sleep(1.5)  # let the first-write burst settle
    cm_version = kube.configmap(ns, "quiet-jwks").metadata.resource_version
    obj_version = kube.get(ns, "quiet")["metadata"]["resourceVersion"]
    fetches = provider.count()
    time.sleep(3.5)  # several refreshes at the 1 s minimum interval, answered 304
    assert provider.count() >= fetches + 2
    assert provider.count(status=304) >= 2
    assert kube.configmap(ns, "quiet-jwks").metadata.resource_version == cm_version
    assert kube.get(ns, "quiet")["metadata"]["resourceVersion"] == obj_version


def test_provider_rotation_is_followed(kube: ClusterClient, ns: str, provider: JwksProvider) -> None:
    kube.create(ns, "rot", {"jwkUrl": provider.url})
    kube.wait_condition(ns, "rot")
    old = set(provider.keys)
    new_kid = provider.rotate()
    wait_for(lambda: new_kid in {k["kid"] for k in published(kube, ns, "rot-jwks")[0]["keys"]}, 15, "new key")
    for kid in old:
        provider.retire(kid)
    wait_for(
        lambda: {k["kid"] for k in published(kube, ns, "rot-jwks")[0]["keys"]} == {new_kid},
        15,
        "old key gone",
    )


def test_operator_log_has_no_secret_material(kube: ClusterClient, ns: str, operator: OperatorProcess) -> None:
    raw = b"log-leak-canary-0123456789abcdef-XYZ"
    kube.core.create_namespaced_secret(
        ns, {"metadata": {"name": "s", **ALLOW_ANY}, "data": {"k": base64.b64encode(raw).decode()}}
    )
    kube.create(ns, "hs", {"static": {"secretRef": {"name": "s", "key": "k"}}})
    kube.wait_condition(ns, "hs")
    assert raw.decode() not in operator.log()
    assert base64.urlsafe_b64encode(raw).rstrip(b"=").decode() not in operator.log()


def test_target_change_moves_the_output(kube: ClusterClient, ns: str) -> None:
    kube.create(ns, "mv", {"static": {"jwks": {"keys": [public_jwk(ec_key())]}}})
    kube.wait_condition(ns, "mv")
    kube.patch_spec(ns, "mv", {"target": {"name": "moved-jwks"}})
    obj = kube.wait_condition(ns, "mv")
    assert obj["status"]["target"] == {"kind": "ConfigMap", "name": "moved-jwks"}
    wait_for(
        lambda: [c.metadata.name for c in kube.core.list_namespaced_config_map(ns).items] == ["moved-jwks"],
        what="only the new ConfigMap left",
    )
