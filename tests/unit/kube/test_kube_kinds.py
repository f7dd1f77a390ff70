"""The Kubernetes adapter against what other servers and kinds answer: a kind the API server does not
serve (a gateway's CRD not installed) told from a missing object, and what `verify --jwtsecret` reads of
a shared target (only that JwtSecret's own part)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from jwks_operator.kube.adapter import Kube
from jwks_operator.model.errors import KindNotServedError
from jwks_operator.model.names import GROUP, PLURAL, VERSION
from jwks_operator.publish.gateways.base import ObjectRef
from jwks_operator.publish.writes import Body
from tests.unit.kube.test_kube_writes import NS, FakeCore, core, kube, seed

__all__ = ["core", "kube"]  # fixtures


def test_a_kind_the_api_server_does_not_serve_is_told_from_a_missing_object() -> None:
    """A gateway's CRD not installed: the API server answers 404 with no Status naming the object (e.g.
    "404 page not found"); a missing object's 404 names it."""
    answers: list[ApiException] = []

    class Http:
        def request(self, method: str, where: str, body: Any = None, **_: Any) -> Body:
            raise answers.pop(0)

    def not_found(body: str) -> ApiException:
        exc = ApiException(status=404, reason="Not Found")
        exc.body = body
        return exc

    kube = Kube(client.ApiClient())
    kube.http = Http()  # type: ignore[assignment]
    policy = ObjectRef("gateway.envoyproxy.io", "v1alpha1", "securitypolicies", "SecurityPolicy", NS, "edge")
    answers.append(not_found("404 page not found"))
    with pytest.raises(KindNotServedError, match="does not serve SecurityPolicy") as info:
        kube.write_output(policy, lambda existing: None)
    assert (info.value.reason, info.value.status) == ("KindNotInstalled", 404)
    answers.append(not_found(json.dumps({"kind": "Status", "details": {"name": "edge"}})))
    assert kube.write_output(policy, lambda existing: None) == "unchanged"  # read as absent


def test_read_published_for_a_contributor_of_a_shared_target_is_its_own_part(
    kube: Kube, core: FakeCore
) -> None:
    """Before: the whole shared target, where another contributor's policy accepts its own audience."""
    shared = {
        "jwks.json": "merged",
        "a.jwks.json": "keys of a",
        "a.policy.json": "policy of a",
        "b.jwks.json": "keys of b",
        "b.policy.json": "policy of b",
        "index.json": "{}",
    }
    seed(core, "gateway", shared, refs=[])
    target = {"kind": "ConfigMap", "name": "gateway", "shared": True}
    jwtsecrets = f"/apis/{GROUP}/{VERSION}/namespaces/{NS}/{PLURAL}/"

    def request(method: str, where: str, body: Any = None, **_: Any) -> dict[str, Any]:
        if where.startswith(jwtsecrets):
            return {"status": {"target": target}}
        return core.request(method, where, body)

    kube.http = type("Http", (), {"request": staticmethod(request)})()
    assert kube.read_published(NS, "b", via_jwtsecret=True) == {
        "jwks.json": "keys of b",
        "policy.json": "policy of b",
    }
    assert kube.read_published(NS, "gateway") == shared  # the ConfigMap itself: every contributor
    with pytest.raises(LookupError, match="shared ConfigMap ns/gateway holds no part of JwtSecret c"):
        kube.read_published(NS, "c", via_jwtsecret=True)
