"""The Kubernetes adapter's reads (Secret keys, CA bundles, published data) and the pure CA-bundle check."""

from __future__ import annotations

import base64
import re
from typing import Any

import pytest
import trustme

from jwks_operator.fetch.trust import check_ca_bundle
from jwks_operator.kube.adapter import Kube
from jwks_operator.model.errors import ApiCallError, FetchError, SecretNotAvailableError, SecretRefError
from jwks_operator.model.names import GROUP, PLURAL, VERSION
from jwks_operator.publish.allow import ALLOW_ANNOTATION
from jwks_operator.resource.spec import CaBundleRef
from tests.unit.kube.test_kube_writes import NS, FakeCore, core, kube, seed

__all__ = ["core", "kube"]  # fixtures

CA = trustme.CA().cert_pem.bytes().decode()


def b64(text: str | bytes) -> str:
    return base64.b64encode(text if isinstance(text, bytes) else text.encode()).decode()


SECRET = b"\x00\xff" + b"s" * 30  # 32 bytes, the least any HS* algorithm takes


def allow(names: str) -> dict[str, Any]:
    return {"annotations": {ALLOW_ANNOTATION: names}}


def test_read_secret_key_only_from_a_secret_that_opted_in(kube: Kube, core: FakeCore) -> None:
    seed(core, "hmac", {"k": b64(SECRET)}, refs=[], resource="secret", **allow("other, hs"))
    seed(core, "any", {"k": b64(SECRET)}, refs=[], resource="secret", **allow("*"))
    assert kube.read_secret_key(NS, "hmac", "k", "hs") == SECRET
    assert kube.read_secret_key(NS, "any", "k", "hs") == SECRET
    assert kube.read_secret_key(NS, "any", "k") == SECRET  # a caller that names no JwtSecret: only "*"
    core.fail("read", 403)
    with pytest.raises(ApiCallError, match=r"\(read secret key\): HTTP 403"):
        kube.read_secret_key(NS, "hmac", "k", "hs")


def test_a_secret_not_available_tells_nothing_about_itself(kube: Kube, core: FakeCore) -> None:
    """Before: any Secret of the namespace was copied out, and the status told whether it existed, its keys
    and its length. Now every refusal reads the same."""
    seed(core, "db", {"password": b64(SECRET)}, refs=[], resource="secret")  # did not opt in
    seed(core, "hmac", {"k": b64(SECRET), "short": b64(b"x" * 31)}, refs=[], resource="secret", **allow("hs"))
    seed(core, "empty", {}, refs=[], resource="secret", **allow("*"))
    refused = [
        ("db", "password", "hs"),
        ("hmac", "k", "intruder"),
        ("hmac", "k", None),  # named in the list, but the caller did not say who asks
        ("hmac", "short", "hs"),
        ("hmac", "missing", "hs"),
        ("empty", "k", "hs"),
        ("gone", "k", "hs"),
    ]
    messages = set()
    for name, key, jwtsecret in refused:
        with pytest.raises(SecretNotAvailableError) as info:
            kube.read_secret_key(NS, name, key, jwtsecret)
        assert info.value.reason == "SecretNotAvailable"
        messages.add(info.value.message.replace(f"Secret {name} ", "Secret NAME "))
    assert messages == {
        "spec.static.secretRef: Secret NAME is not available to this JwtSecret (it must exist, hold the key, "
        "and allow it with the annotation jwks.dev/allow-jwtsecrets)"
    }
    assert isinstance(info.value, SecretRefError)


def test_read_ca_bundle_only_reads(kube: Kube, core: FakeCore) -> None:
    seed(core, "cm", {"ca.crt": CA, "junk": "not a certificate"}, refs=[])
    seed(
        core,
        "sec",
        {"root.pem": b64(CA), "comment": b64("# Autorité racine\n" + CA)},
        refs=[],
        resource="secret",
    )
    assert kube.read_ca_bundle(NS, CaBundleRef("ConfigMap", "cm")) == CA
    assert kube.read_ca_bundle(NS, CaBundleRef("Secret", "sec", "root.pem")) == CA
    assert kube.read_ca_bundle(NS, CaBundleRef("Secret", "sec", "comment")).startswith("# Autorité")
    assert (
        kube.read_ca_bundle(NS, CaBundleRef("ConfigMap", "cm", "junk")) == "not a certificate"
    )  # checked later
    with pytest.raises(FetchError, match=re.escape("spec.caBundleRef: ConfigMap gone not found")):
        kube.read_ca_bundle(NS, CaBundleRef("ConfigMap", "gone"))
    with pytest.raises(FetchError, match=re.escape("spec.caBundleRef.key: ConfigMap cm has no key 'x'")):
        kube.read_ca_bundle(NS, CaBundleRef("ConfigMap", "cm", "x"))
    assert core.calls == ["read"] * 6


def test_a_ca_bundle_secret_that_cannot_be_used_is_one_clear_fetch_error(kube: Kube, core: FakeCore) -> None:
    """Before: a non-UTF-8 value was decoded with replacement characters, and the errors told a missing
    Secret from a missing key. Now: one FetchError (retried, last keys kept) for every failure."""
    data = {"binary": b64(b"\xff\xfe" + CA.encode()), "junk": b64("not a certificate"), "key": b64(CA)}
    seed(core, "sec", data, refs=[], resource="secret")
    for name, key in [("sec", "binary"), ("sec", "junk"), ("sec", "missing"), ("gone", "key")]:
        with pytest.raises(FetchError) as info:
            kube.read_ca_bundle(NS, CaBundleRef("Secret", name, key))
        assert info.value.message == (
            f"spec.caBundleRef: Secret {name} holds no PEM CA bundle under key {key!r} (it must exist and "
            "hold UTF-8 PEM certificates there)"
        )


def test_check_ca_bundle() -> None:
    ref = CaBundleRef("ConfigMap", "cm", "junk")
    assert check_ca_bundle(CA, ref) == CA
    assert check_ca_bundle("# our CA\n" + CA, ref).startswith("# our CA")
    for bad in ("not a certificate", "", "\ufffd\ufffd", CA.replace("CERTIFICATE", "PRIVATE KEY")):
        with pytest.raises(
            FetchError, match=re.escape("spec.caBundleRef: ConfigMap cm key 'junk' holds no PEM certificate")
        ):
            check_ca_bundle(bad, ref)


def test_read_published(kube: Kube, core: FakeCore) -> None:
    seed(core, "out", {"jwks.json": "{}"}, refs=[])
    seed(core, "sec", {"jwks.json": b64("{}")}, refs=[], resource="secret")
    assert kube.read_published(NS, "out") == {"jwks.json": "{}"}
    with pytest.raises(LookupError, match="ConfigMap ns/gone not found"):
        kube.read_published(NS, "gone")
    statuses = {"js": {"target": {"kind": "Secret", "name": "sec"}}, "new": {}}
    jwtsecrets = f"/apis/{GROUP}/{VERSION}/namespaces/{NS}/{PLURAL}/"

    def request(method: str, where: str, body: Any = None, **_: Any) -> dict[str, Any]:
        if where.startswith(jwtsecrets):
            return {"status": statuses[where.removeprefix(jwtsecrets)]}
        return core.request(method, where, body)

    kube.http = type("Http", (), {"request": staticmethod(request)})()
    assert kube.read_published(NS, "js", via_jwtsecret=True) == {"jwks.json": "{}"}
    with pytest.raises(LookupError, match="JwtSecret ns/new has published nothing yet"):
        kube.read_published(NS, "new", via_jwtsecret=True)
