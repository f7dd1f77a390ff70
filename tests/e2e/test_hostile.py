"""Hostile inputs, table driven: malformed specs (from tests/faults/spec_table.py), malicious JWK Sets,
hostile servers.

Every case asserts a clear reason, that nothing good was lost, and that nothing private was published.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pytest
import trustme
from kubernetes.client.exceptions import ApiException

from jwks_operator.publish.allow import ALLOW_ANNOTATION
from tests.faults.spec_table import BAD_SPECS
from tests.harness.client import ClusterClient, wait_for
from tests.harness.idp import JwksProvider
from tests.harness.operator import OperatorProcess
from tests.material import SECRET_JWK_MEMBERS, ec_key, private_jwk, public_jwk, rsa_key

PRIVATE = SECRET_JWK_MEMBERS
GOOD_URL = "https://idp.example/jwks"


@pytest.mark.parametrize(("case", "spec", "message"), BAD_SPECS, ids=[c[0] for c in BAD_SPECS])
def test_malformed_specs_are_rejected_at_the_door(
    kube: ClusterClient, ns: str, case: str, spec: dict[str, Any], message: str
) -> None:
    with pytest.raises(ApiException) as info:
        kube.create(ns, "bad", spec)
    assert info.value.status == 422
    assert message in json.loads(str(info.value.body))["message"]


def doc(*keys: dict[str, Any]) -> bytes:
    return json.dumps({"keys": list(keys)}).encode()


def nested(depth: int) -> bytes:
    return b'{"keys": ' + b"[" * depth + b"]" * depth + b"}"


MALICIOUS_DOCUMENTS: list[tuple[str, Callable[[], bytes], str]] = [
    ("private RSA key", lambda: doc(private_jwk(rsa_key(), kid="leak")), "contains private key members"),
    ("private EC key", lambda: doc(private_jwk(ec_key(), kid="leak")), "contains private key members (d)"),
    ("weak RSA", lambda: doc(public_jwk(rsa_key(1024), kid="weak")), "RSA key is 1024 bits"),
    ("wrong curve", lambda: doc(public_jwk(ec_key("secp256k1"), kid="k1")), "unsupported EC curve"),
    (
        "RSA key claiming ES256",
        lambda: doc(public_jwk(rsa_key(), kid="c", alg="ES256")),
        "does not match kty RSA",
    ),
    (
        "EC key claiming RS256",
        lambda: doc(public_jwk(ec_key(), kid="c", alg="RS256")),
        "does not match kty EC",
    ),
    ("alg none", lambda: doc(public_jwk(rsa_key(), kid="n", alg="none")), "'none' does not match"),
    ("encryption key", lambda: doc(public_jwk(rsa_key(), kid="e", use="enc")), "is not a signature key"),
    (
        "symmetric key from a URL",
        lambda: doc({"kty": "oct", "k": base64.b64encode(b"s" * 32).decode()}),
        "only accepted from a Secret reference",
    ),
    (
        "duplicate kids",
        lambda: doc(public_jwk(rsa_key(n=0), kid="d"), public_jwk(rsa_key(n=1), kid="d")),
        "duplicate kid with different key material",
    ),
    ("huge document", lambda: b'{"keys": []' + b" " * (1024 * 1024) + b"}", "larger than 1048576 bytes"),
    ("deeply nested", lambda: nested(200000), "nested too deeply"),
    ("not JSON", lambda: b"<html>login</html>", "not valid JSON"),
    ("no keys array", lambda: b'{"keys": {"kty": "RSA"}}', '"keys" array'),
]


def published_members(kube: ClusterClient, ns: str, name: str) -> set[str]:
    keys = json.loads(kube.configmap(ns, name).data["jwks.json"])["keys"]
    return {member for key in keys for member in key}


@pytest.fixture(scope="module")
def module_ca(ca: trustme.CA) -> trustme.CA:
    return ca


@pytest.mark.parametrize(
    ("case", "body", "reason"), MALICIOUS_DOCUMENTS, ids=[c[0] for c in MALICIOUS_DOCUMENTS]
)
def test_malicious_documents_never_replace_good_keys(
    kube: ClusterClient, ns: str, ca: trustme.CA, case: str, body: Callable[[], bytes], reason: str
) -> None:
    with JwksProvider(ca=ca, max_age=1) as provider:
        kube.create(ns, "m", {"jwkUrl": provider.url, "audiences": ["api"]})
        kube.wait_condition(ns, "m")
        before = kube.configmap(ns, "m-jwks")
        provider.serve_raw(body())
        obj = wait_for(
            lambda: (o := kube.get(ns, "m"))["status"].get("lastError") and o, 15, f"{case} reported"
        )
    assert reason in obj["status"]["lastError"]
    assert (kube.condition(ns, "m", "Degraded") or {}).get("status") == "True"
    assert (kube.condition(ns, "m") or {}).get("status") == "True"
    assert kube.configmap(ns, "m-jwks").data == before.data
    assert not PRIVATE & published_members(kube, ns, "m-jwks")


def test_a_private_key_beside_good_ones_is_dropped(kube: ClusterClient, ns: str, ca: trustme.CA) -> None:
    with JwksProvider(ca=ca, max_age=1) as provider:
        provider.serve_raw(doc(public_jwk(rsa_key(), kid="ok"), private_jwk(ec_key(), kid="leak")))
        kube.create(ns, "mix", {"jwkUrl": provider.url, "audiences": ["api"]})
        obj = kube.wait_condition(ns, "mix", "True", "KeysRejected", kind="Degraded")
    assert obj["status"]["rejectedKeys"][0]["kid"] == "leak"
    assert "private key members" in obj["status"]["rejectedKeys"][0]["reason"]
    assert [k["kid"] for k in obj["status"]["keys"]] == ["ok"]
    assert not PRIVATE & published_members(kube, ns, "mix-jwks")


HOSTILE_SERVERS: list[tuple[str, str, Callable[[JwksProvider], None], str]] = [
    ("slow drip", "provider", lambda p: p.drip(50), "took longer than 3s"),
    ("redirect to http", "provider", lambda p: p.redirect("http://127.0.0.1:9/jwks"), "refused redirect"),
    ("redirect loop", "provider", lambda p: p.redirect(p.url), "more than 5 redirects"),
    ("hanging server", "provider", lambda p: p.delay(5), "read timeout"),
    (
        "metadata IP",
        "https://169.254.169.254/latest/meta-data/jwks",
        lambda p: None,
        "link-local or cloud metadata address",
    ),
    ("metadata host", "https://metadata.google.internal/jwks", lambda p: None, "cloud metadata host name"),
    ("untrusted TLS", "stranger", lambda p: None, "TLS error"),
]


@pytest.mark.parametrize(
    ("case", "url", "behave", "reason"), HOSTILE_SERVERS, ids=[c[0] for c in HOSTILE_SERVERS]
)
def test_hostile_servers(
    kube: ClusterClient,
    ns: str,
    ca: trustme.CA,
    case: str,
    url: str,
    behave: Callable[[JwksProvider], None],
    reason: str,
) -> None:
    with JwksProvider(ca=ca if url != "stranger" else trustme.CA(), max_age=1) as provider:
        behave(provider)
        target = provider.url if url in ("provider", "stranger") else url
        kube.create(ns, "h", {"jwkUrl": target, "audiences": ["api"]})
        obj = kube.wait_condition(ns, "h", "False", "FetchFailed", timeout=20)
    assert reason in obj["status"]["lastError"]
    assert obj["status"]["keyCount"] == 0
    with pytest.raises(ApiException):
        kube.configmap(ns, "h-jwks")


def test_shared_jwks_without_audience_is_refused(kube: ClusterClient, ns: str) -> None:
    firebase = "https://www.googleapis.com/service_accounts/v1/jwk/securetoken@system.gserviceaccount.com"
    kube.create(ns, "fb", {"jwkUrl": firebase})
    obj = kube.wait_condition(ns, "fb", "False", "AudienceRequired")
    message = (kube.condition(ns, "fb") or {})["message"]
    assert message.startswith("Firebase Auth signs the tokens of all its customers with this JWK Set")
    assert obj["status"]["keyCount"] == 0
    assert any(e.reason == "AudienceRequired" for e in kube.events(ns, "fb"))


SHARED_SPELLINGS = [
    "https://www.googleapis.com/oauth2/v3/certs#x",
    "https://www.googleapis.com/oauth2/v3/certs?",
    "https://www.googleapis.com:443/oauth2/v3/certs",
    "https://www.googleapis.com./oauth2/v3/certs",
    "https://appleid.apple.com/auth/keys",
    "https://token.actions.githubusercontent.com/.well-known/jwks",
    "https://login.microsoftonline.com/common/discovery/keys",
    "https://login.microsoftonline.com/contoso.onmicrosoft.com/discovery/v2.0/keys",
]


@pytest.mark.parametrize("url", SHARED_SPELLINGS)
def test_every_spelling_of_a_shared_jwks_needs_an_audience(kube: ClusterClient, ns: str, url: str) -> None:
    """Before: only the exact string matched (a fragment, an empty query, :443 or a trailing dot escaped the
    check), and Apple, GitHub Actions and a tenant's own Entra keys URL were not known as shared."""
    kube.create(ns, "shared", {"jwkUrl": url})
    obj = kube.wait_condition(ns, "shared", "False", "AudienceRequired")
    assert obj["status"]["keyCount"] == 0


def test_credentials_in_the_url_stay_in_the_request(
    kube: ClusterClient, ns: str, ca: trustme.CA, operator: OperatorProcess
) -> None:
    """Before: `user:pass@` and query tokens were shown in status.source and published in policy.json."""
    with JwksProvider(ca=ca, max_age=60) as provider:
        url = provider.url.replace("https://", "https://alice:pw-canary@") + "?token=tok-canary&tenant=acme"
        kube.create(ns, "creds", {"jwkUrl": url, "audiences": ["api"]})
        obj = kube.wait_condition(ns, "creds")
        assert "token=tok-canary" in provider.log[-1].path  # the request still carries them
        shown = provider.url + "?token=REDACTED&tenant=REDACTED"
    assert obj["status"]["source"] == shown
    assert json.loads(kube.configmap(ns, "creds-jwks").data["policy.json"])["source"]["url"] == shown
    published = json.dumps(obj["status"]) + json.dumps(kube.configmap(ns, "creds-jwks").data)
    assert "canary" not in published + json.dumps([e.message for e in kube.events(ns, "creds")])


def unavailable(name: str) -> str:
    return (
        f"spec.static.secretRef: Secret {name} is not available to this JwtSecret (it must exist, hold the "
        "key, and allow it with the annotation jwks.dev/allow-jwtsecrets)"
    )


def test_a_secret_that_did_not_opt_in_is_never_copied_nor_described(
    kube: ClusterClient, ns: str, operator: OperatorProcess
) -> None:
    """Before: any Secret of the namespace (a database password) was copied to a Secret named by the
    JwtSecret's author, and the status told whether a Secret existed, its keys and its length."""
    raw = b"database-password-canary-0123456789"
    data = {"password": base64.b64encode(raw).decode()}
    kube.core.create_namespaced_secret(ns, {"metadata": {"name": "db"}, "data": data})
    other = {"name": "team-b", "annotations": {ALLOW_ANNOTATION: "team-b-api"}}  # opted in for another
    kube.core.create_namespaced_secret(ns, {"metadata": other, "data": data})
    refs = {"db": ("db", "password"), "wrong-key": ("db", "nope"), "gone": ("gone", "password")}
    refs["other"] = ("team-b", "password")
    for name, (secret, key) in refs.items():
        target = {"name": f"leak-{name}"}
        kube.create(ns, name, {"static": {"secretRef": {"name": secret, "key": key}}, "target": target})
    for name, (secret, _) in refs.items():
        obj = kube.wait_condition(ns, name, "False", "SecretNotAvailable")
        assert obj["status"]["lastError"] == unavailable(secret)  # one message: nothing told apart
    assert [s.metadata.name for s in kube.core.list_namespaced_secret(ns).items] == ["db", "team-b"]
    kube.core.patch_namespaced_secret("db", ns, {"metadata": {"annotations": {ALLOW_ANNOTATION: "*"}}})
    kube.patch_spec(ns, "db", {"audiences": ["api"]})
    kube.wait_condition(ns, "db")  # the owner opted in: published
    emitted = [operator.log(), *(json.dumps(kube.get(ns, n)["status"]) for n in refs)]
    emitted += [json.dumps([e.message for e in kube.events(ns, n)]) for n in refs]
    assert not [text for text in emitted if raw.decode() in text or "nope" in text]


def test_a_ca_bundle_secret_that_is_not_utf8_is_a_fetch_error_then_recovers(
    kube: ClusterClient, ns: str
) -> None:
    """Before: a non-UTF-8 caBundleRef Secret was decoded with replacement characters; the reviewer's
    build raised UnicodeDecodeError and the JwtSecret was stuck without retry."""
    private = trustme.CA()
    pem = private.cert_pem.bytes()
    with JwksProvider(ca=private, max_age=60) as provider:
        body = {
            "metadata": {"name": "idp-ca"},
            "data": {"ca.crt": base64.b64encode(b"\xff\xfe" + pem).decode()},
        }
        kube.core.create_namespaced_secret(ns, body)
        ref = {"kind": "Secret", "name": "idp-ca"}
        kube.create(ns, "ca", {"jwkUrl": provider.url, "audiences": ["api"], "caBundleRef": ref})
        obj = kube.wait_condition(ns, "ca", "False", "FetchFailed")
        assert obj["status"]["lastError"] == (
            "spec.caBundleRef: Secret idp-ca holds no PEM CA bundle under key 'ca.crt' (it must exist and "
            "hold UTF-8 PEM certificates there, at most 262144 bytes)"
        )
        kube.core.patch_namespaced_secret("idp-ca", ns, {"data": {"ca.crt": base64.b64encode(pem).decode()}})
        obj = kube.wait_condition(ns, "ca", timeout=30)  # retried, with backoff
    assert obj["status"]["keyCount"] == 1


def test_insecure_settings_are_loud(kube: ClusterClient, ns: str) -> None:
    with JwksProvider(max_age=60) as plain:
        kube.create(ns, "plain", {"jwkUrl": plain.url, "allowInsecureHttp": True})
        kube.wait_condition(ns, "plain")
        insecure = kube.wait_condition(ns, "plain", "True", "InsecureHttp", kind="InsecureConfig")
    message = (kube.condition(ns, "plain", "InsecureConfig") or {})["message"]
    assert "keys can be replaced in transit" in message
    assert "spec.audiences is empty" in message
    assert insecure["status"]["keyCount"] == 1
    wait_for(lambda: any(e.reason == "InsecureHttp" for e in kube.events(ns, "plain")), what="warning event")


def test_nothing_secret_anywhere(kube: ClusterClient, ns: str, operator: OperatorProcess) -> None:
    raw = b"hostile-canary-secret-0123456789abcdef"
    encoded = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    meta = {"name": "s", "annotations": {ALLOW_ANNOTATION: "*"}}  # its owner opts in (#14)
    kube.core.create_namespaced_secret(ns, {"metadata": meta, "data": {"k": base64.b64encode(raw).decode()}})
    kube.create(ns, "hs", {"static": {"secretRef": {"name": "s", "key": "k"}}})
    kube.wait_condition(ns, "hs")
    kube.core.patch_namespaced_secret("s", ns, {"data": {"k": base64.b64encode(b"short").decode()}})
    kube.patch_spec(ns, "hs", {"audiences": ["x"]})  # re-read the (now too short) secret
    kube.wait_condition(ns, "hs", "True", "SecretNotAvailable", kind="Degraded")
    emitted = [
        operator.log(),
        json.dumps(kube.get(ns, "hs")),
        json.dumps([e.message for e in kube.events(ns, "hs")]),
        json.dumps([c.data for c in kube.core.list_namespaced_config_map(ns).items]),
    ]
    for text in emitted:
        assert raw.decode() not in text
        assert encoded not in text
        assert "short" not in text.replace("shorter", "")


def test_private_ca_bundle_reference(kube: ClusterClient, ns: str) -> None:
    private = trustme.CA()
    with JwksProvider(ca=private, max_age=60) as provider:
        kube.create(ns, "noca", {"jwkUrl": provider.url, "audiences": ["api"]})
        kube.wait_condition(ns, "noca", "False", "FetchFailed")
        ref = {"kind": "ConfigMap", "name": "idp-ca"}
        kube.create(ns, "ca", {"jwkUrl": provider.url, "audiences": ["api"], "caBundleRef": ref})
        obj = kube.wait_condition(ns, "ca", "False", "FetchFailed")
        assert obj["status"]["lastError"] == "spec.caBundleRef: ConfigMap idp-ca not found"
        pem = private.cert_pem.bytes().decode()
        kube.core.create_namespaced_config_map(ns, {"metadata": {"name": "idp-ca"}, "data": {"ca.crt": pem}})
        obj = kube.wait_condition(ns, "ca", timeout=20)
    assert obj["status"]["keyCount"] == 1
    assert (kube.condition(ns, "noca") or {}).get(
        "status"
    ) == "False"  # the other one still trusts only its own CA
