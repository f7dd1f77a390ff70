"""The Kubernetes adapter's reads (Secret keys, CA bundles, published data) and the pure CA-bundle check."""

from __future__ import annotations

import base64
import re

import pytest
import trustme

from jwks_operator.errors import ApiCallError, FetchError, SecretRefError
from jwks_operator.kube import Kube
from jwks_operator.spec import CaBundleRef
from jwks_operator.trust import check_ca_bundle
from tests.unit.test_kube_writes import NS, FakeCore, core, kube, seed

__all__ = ["core", "kube"]  # fixtures

CA = trustme.CA().cert_pem.bytes().decode()


def b64(text: str | bytes) -> str:
    return base64.b64encode(text if isinstance(text, bytes) else text.encode()).decode()


def test_read_secret_key(kube: Kube, core: FakeCore) -> None:
    seed(core, "hmac", {"k": b64(b"\x00\xff")}, refs=[], resource="secret")
    assert kube.read_secret_key(NS, "hmac", "k") == b"\x00\xff"
    with pytest.raises(
        SecretRefError, match=re.escape("spec.static.secretRef.key: Secret hmac has no key 'x'")
    ):
        kube.read_secret_key(NS, "hmac", "x")
    with pytest.raises(SecretRefError, match=re.escape("spec.static.secretRef: Secret gone not found")):
        kube.read_secret_key(NS, "gone", "k")
    core.fail("read", 403)
    with pytest.raises(ApiCallError, match=r"\(read secret key\): HTTP 403"):
        kube.read_secret_key(NS, "hmac", "k")


def test_read_ca_bundle_only_reads(kube: Kube, core: FakeCore) -> None:
    seed(core, "cm", {"ca.crt": CA, "junk": "not a certificate"}, refs=[])
    seed(core, "sec", {"root.pem": b64(CA), "binary": b64(b"\xff\xfe")}, refs=[], resource="secret")
    assert kube.read_ca_bundle(NS, CaBundleRef("ConfigMap", "cm")) == CA
    assert kube.read_ca_bundle(NS, CaBundleRef("Secret", "sec", "root.pem")) == CA
    assert kube.read_ca_bundle(NS, CaBundleRef("ConfigMap", "cm", "junk")) == "not a certificate"
    assert kube.read_ca_bundle(NS, CaBundleRef("Secret", "sec", "binary")) == "\ufffd\ufffd"
    with pytest.raises(FetchError, match=re.escape("spec.caBundleRef: Secret cm not found")):
        kube.read_ca_bundle(NS, CaBundleRef("Secret", "cm"))
    with pytest.raises(FetchError, match=re.escape("spec.caBundleRef.key: ConfigMap cm has no key 'x'")):
        kube.read_ca_bundle(NS, CaBundleRef("ConfigMap", "cm", "x"))
    assert core.calls == ["read"] * 6


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
    kube.custom = type(
        "Custom", (), {"get_namespaced_custom_object": lambda _, *a: {"status": statuses[a[-1]]}}
    )()
    assert kube.read_published(NS, "js", via_jwtsecret=True) == {"jwks.json": "{}"}
    with pytest.raises(LookupError, match="JwtSecret ns/new has published nothing yet"):
        kube.read_published(NS, "new", via_jwtsecret=True)
