"""An HMAC secret leaves Secrets only with the consent of the Secret's owner (jwks.dev/allow-hmac-export on
the Secret): a JwtSecret's `allowHmac: true` alone no longer puts it in Space Cloud's project ConfigMap."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from jwks_operator.publish.gateways import ObjectRef, spacecloud
from tests.unit.fakes import NS, Rig

SECRET = "a-shared-secret-of-32-bytes-or-more"
K = base64.urlsafe_b64encode(SECRET.encode()).rstrip(b"=").decode()  # the secret as a JWK's `k`
PROJECT = ObjectRef("", "v1", "configmaps", "ConfigMap", NS, "default--shop--project--shop")
SPEC = {
    "static": {"secretRef": {"name": "hmac", "key": "key", "kid": "h1"}},
    "audiences": ["api"],
    "outputs": [{"spaceCloud": {"projectId": "shop", "allowHmac": True}}],
}

pytestmark = pytest.mark.asyncio


@pytest.fixture(autouse=True)
def space_cloud_reads_this_namespace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spacecloud, "NAMESPACE", NS)


def project() -> dict[str, Any]:
    """Space Cloud's project ConfigMap, whose owner lets every JwtSecret of the namespace in."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": PROJECT.name,
            "namespace": NS,
            "resourceVersion": "1",
            "labels": {"kind": "project"},
            "annotations": {"jwks.dev/allow-jwtsecrets": "*"},
        },
        "data": {"data": json.dumps({"id": "shop", "secrets": []})},
    }


def ready(rig: Rig) -> dict[str, Any]:
    condition: dict[str, Any] = rig.status("hm")["outputs"][0]["conditions"][0]
    return condition


def exposed(rig: Rig) -> bool:
    return SECRET in json.dumps(rig.kube.objects[PROJECT])


async def test_allow_hmac_alone_does_not_put_the_secret_in_a_configmap() -> None:
    """The issue's case: the Secret lets JwtSecret hm publish it (jwks.dev/allow-jwtsecrets: hm), and hm's
    author sets allowHmac: true on a spaceCloud output: the secret stays out of the ConfigMap."""
    rig = Rig()
    rig.kube.secrets[(NS, "hmac")] = {"key": SECRET.encode()}
    rig.kube.objects[PROJECT] = project()
    await rig.apply("hm", SPEC)
    assert not exposed(rig)
    condition = ready(rig)
    assert (condition["status"], condition["reason"]) == ("False", "HmacExportNotAllowed")
    assert condition["message"] == (
        "the HMAC secret of Secret hmac would be stored in ConfigMap default--shop--project--shop, and "
        "the Secret's owner has not allowed it to leave Secrets: add the annotation "
        'jwks.dev/allow-hmac-export: hm (or hm/uid-1, or "*") to Secret hmac; nothing was written'
    )
    assert rig.condition("hm") == ("True", "KeysPublished"), "its own Secret still serves the key"
    assert K in rig.kube.outputs[("Secret", NS, "hm-jwks")]["jwks.json"]


async def test_the_secrets_owner_consents_and_may_withdraw() -> None:
    """With jwks.dev/allow-hmac-export on the Secret the entry is written; withdrawn (seen when the Secret
    is read again: a retry, a spec change, the resync), the entry comes out and the output says so."""
    rig = Rig()
    rig.kube.secrets[(NS, "hmac")] = {"key": SECRET.encode()}
    rig.kube.hmac_export.add((NS, "hmac"))
    rig.kube.objects[PROJECT] = project()
    await rig.apply("hm", SPEC)
    assert exposed(rig)
    assert (ready(rig)["status"], ready(rig)["reason"]) == ("True", "Written")

    rig.kube.hmac_export.clear()
    await rig.engine.resync((NS, "hm"))
    assert not exposed(rig)
    secrets = json.loads(rig.kube.objects[PROJECT]["data"]["data"]).get("secrets", [])
    assert secrets == []
    condition = ready(rig)
    assert (condition["status"], condition["reason"]) == ("False", "HmacExportNotAllowed")
    assert condition["message"].endswith(
        "to Secret hmac; the entries this JwtSecret had written in default--shop--project--shop were removed"
    )
    assert rig.condition("hm", "Degraded") == ("True", "OutputFailed")

    rig.kube.hmac_export.add((NS, "hmac"))  # consent again: the retry writes it back
    await rig.advance(rig.due(("obj", (NS, "hm"))) or 0)
    assert exposed(rig)
    assert ready(rig)["status"] == "True"
