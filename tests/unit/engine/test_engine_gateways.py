"""The engine's gateway outputs in process: written after the ConfigMap, each reported on its own, retried,
written again only when their inputs change, released when dropped from the spec or on deletion."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from jwks_operator.engine.scheduler import Item
from jwks_operator.model.errors import ApiCallError
from jwks_operator.publish.gateways import ObjectRef
from tests.unit.fakes import NS, Rig, jwk

URL = "https://idp.example/jwks"
ISSUER = "https://idp.example/"
NGINX = {"jwkUrl": URL, "audiences": ["api"], "outputs": [{"nginx": {}}]}
POLICY = ObjectRef("gateway.envoyproxy.io", "v1alpha1", "securitypolicies", "SecurityPolicy", NS, "edge")
RA = ObjectRef("security.istio.io", "v1", "requestauthentications", "RequestAuthentication", NS, "api")

ALLOW = {"jwks.dev/allow-jwtsecrets": "a"}  # the object's owner lets JwtSecret a manage its entries

pytestmark = pytest.mark.asyncio


def nginx_ref(name: str = "a-jwk") -> ObjectRef:
    return ObjectRef("", "v1", "secrets", "Secret", NS, name)


def nginx_kids(rig: Rig, name: str = "a-jwk") -> list[str]:
    data = rig.kube.objects[nginx_ref(name)]["data"]["jwk"]
    return [k["kid"] for k in json.loads(base64.b64decode(data))["keys"]]


def output_entry(rig: Rig, name: str, index: int = 0) -> dict[str, Any]:
    entry: dict[str, Any] = rig.status(name)["outputs"][index]
    return entry


def user_policy() -> dict[str, Any]:
    """A SecurityPolicy as a platform team writes it (its targetRefs pick the routes)."""
    return {
        "apiVersion": "gateway.envoyproxy.io/v1alpha1",
        "kind": "SecurityPolicy",
        "metadata": {"name": "edge", "namespace": NS, "resourceVersion": "7", "annotations": ALLOW},
        "spec": {"targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": "api"}]},
    }


async def test_an_output_is_written_after_the_configmap_and_reported_on_its_own() -> None:
    rig = Rig()
    rig.serve(URL, jwk(1))
    await rig.apply("a", NGINX)
    calls = [c[0] for c in rig.kube.calls if c[0] in ("publish", "write_output", "patch_status")]
    assert calls == ["publish", "write_output", "patch_status"]
    assert nginx_kids(rig) == ["k1"]
    entry = output_entry(rig, "a")
    assert (entry["output"], entry["kind"], entry["objects"]) == ("nginx/", "Secret", ["a-jwk"])
    ready = entry["conditions"][0]
    assert (ready["type"], ready["status"], ready["reason"]) == ("OutputReady", "True", "Written")
    assert ready["message"] == "1 key(s) in Secret a-jwk"
    assert rig.condition("a", "Ready") == ("True", "KeysPublished")
    assert rig.condition("a", "Degraded") == ("False", "AsExpected")


async def test_unchanged_keys_write_no_output_and_a_rotation_reaches_it() -> None:
    rig = Rig()
    provider = rig.serve(URL, jwk(1))
    await rig.apply("a", NGINX)
    rig.kube.calls.clear()
    await rig.advance(300)  # max-age: revalidated, unchanged
    assert rig.kube.called("write_output") == []
    provider.keys = [jwk(2)]
    await rig.advance(300)
    assert rig.kube.called("write_output") == [("write_output", "Secret", "a-jwk")]
    assert nginx_kids(rig) == ["k2"]


async def test_a_missing_object_fails_that_output_only_and_is_retried_with_backoff() -> None:
    rig = Rig()
    rig.serve(URL, jwk(1))
    spec = {
        **NGINX,
        "issuers": [ISSUER],
        "outputs": [{"envoyGateway": {"securityPolicy": "edge"}}, {"nginx": {}}],
    }
    await rig.apply("a", spec)
    failed, written = output_entry(rig, "a", 0), output_entry(rig, "a", 1)
    assert failed["conditions"][0]["status"] == "False"
    assert failed["conditions"][0]["reason"] == "NotFound"
    assert "SecurityPolicy edge not found" in failed["conditions"][0]["message"]
    assert written["conditions"][0]["status"] == "True"
    assert rig.condition("a", "Ready") == ("True", "KeysPublished"), "the ConfigMap still serves the keys"
    degraded = next(c for c in rig.status("a")["conditions"] if c["type"] == "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "OutputFailed")
    assert degraded["message"].startswith("1 of 2 output(s) not written: envoyGateway/edge: ")
    assert rig.due(("obj", (NS, "a"))) == 5
    registry = rig.engine.metrics.registry
    labels = {"namespace": NS, "jwtsecret": "a"}
    ready = "jwks_operator_output_ready"
    assert registry.get_sample_value(ready, {**labels, "output": "envoyGateway/edge"}) == 0.0
    assert registry.get_sample_value(ready, {**labels, "output": "nginx/"}) == 1.0

    rig.kube.objects[POLICY] = user_policy()
    rig.kube.calls.clear()
    await rig.advance(5)
    assert rig.kube.called("write_output") == [("write_output", "SecurityPolicy", "edge")], (
        "only the failed one"
    )
    provider = rig.kube.objects[POLICY]["spec"]["jwt"]["providers"][0]
    assert provider["localJWKS"]["valueRef"]["name"] == "a-jwks"
    assert rig.condition("a", "Degraded") == ("False", "AsExpected")


async def test_an_output_dropped_from_the_spec_is_released() -> None:
    rig = Rig()
    rig.serve(URL, jwk(1))
    await rig.apply("a", NGINX)
    await rig.apply("a", {**NGINX, "outputs": []}, generation=2)
    assert nginx_ref() not in rig.kube.objects
    assert "outputs" not in rig.status("a")


async def test_deletion_takes_our_rules_out_of_a_users_request_authentication() -> None:
    rig = Rig()
    rig.serve(URL, jwk(1))
    rig.kube.objects[RA] = {
        "apiVersion": "security.istio.io/v1",
        "kind": "RequestAuthentication",
        "metadata": {"name": "api", "namespace": NS, "resourceVersion": "3", "annotations": ALLOW},
        "spec": {"jwtRules": [{"issuer": "https://other.example/", "jwksUri": "https://other.example/jwks"}]},
    }
    spec = {**NGINX, "issuers": [ISSUER], "outputs": [{"istio": {"name": "api"}}]}
    await rig.apply("a", spec)
    rules = rig.kube.objects[RA]["spec"]["jwtRules"]
    assert [r["issuer"] for r in rules] == ["https://other.example/", ISSUER]
    await rig.engine.observe("DELETED", rig.body("a", spec))
    await rig.settle()
    assert rig.kube.objects[RA]["spec"]["jwtRules"] == [
        {"issuer": "https://other.example/", "jwksUri": "https://other.example/jwks"}
    ]


async def test_after_a_restart_a_dropped_output_is_still_released() -> None:
    rig = Rig()
    rig.serve(URL, jwk(1))
    await rig.apply("a", NGINX)
    rig.restart()
    await rig.apply("a", {**NGINX, "outputs": []}, generation=2)
    assert nginx_ref() not in rig.kube.objects


async def test_resync_repairs_an_output_deleted_by_hand() -> None:
    rig = Rig()
    rig.serve(URL, jwk(1))
    await rig.apply("a", NGINX)
    del rig.kube.objects[nginx_ref()]
    await rig.engine.resync((NS, "a"))
    assert nginx_kids(rig) == ["k1"]


FINALIZER = "jwks.dev/release-outputs"


def user_ra() -> dict[str, Any]:
    return {
        "apiVersion": "security.istio.io/v1",
        "kind": "RequestAuthentication",
        "metadata": {"name": "api", "namespace": NS, "resourceVersion": "3", "annotations": ALLOW},
        "spec": {"selector": {"matchLabels": {"app": "api"}}},
    }


def deleting(body: dict[str, Any]) -> dict[str, Any]:
    return {**body, "metadata": {**body["metadata"], "deletionTimestamp": "2026-01-01T12:05:00Z"}}


async def test_outputs_hold_a_finalizer_until_their_entries_are_out() -> None:
    rig = Rig()
    rig.serve(URL, jwk(1))
    rig.kube.objects[RA] = user_ra()
    spec = {**NGINX, "issuers": [ISSUER], "outputs": [{"istio": {"name": "api"}}]}
    await rig.apply("a", spec)
    assert rig.kube.finalizers[(NS, "a")] == [FINALIZER]
    calls = [c[0] for c in rig.kube.calls]
    assert calls.index("set_finalizers") < calls.index("write_output"), "held before anything is written"

    await rig.engine.observe("MODIFIED", deleting(rig.body("a", spec)))
    await rig.settle()
    assert "jwtRules" not in rig.kube.objects[RA]["spec"]
    assert rig.kube.finalizers[(NS, "a")] == [], "let go once the rules are out"


async def test_a_jwtsecret_deleted_while_no_operator_ran_is_released_by_the_next_one() -> None:
    rig = Rig()
    rig.serve(URL, jwk(1))
    rig.kube.objects[RA] = user_ra()
    spec = {**NGINX, "issuers": [ISSUER], "outputs": [{"istio": {"name": "api"}}]}
    await rig.apply("a", spec)
    rig.restart()  # deleted meanwhile: the next operator lists it with deletionTimestamp and our finalizer
    await rig.engine.observe(None, deleting(rig.body("a", spec)))
    await rig.settle()
    assert "jwtRules" not in rig.kube.objects[RA]["spec"], "found from the stored status.outputs"
    assert rig.kube.finalizers[(NS, "a")] == []


async def test_dropping_every_output_lets_the_finalizer_go() -> None:
    rig = Rig()
    rig.serve(URL, jwk(1))
    await rig.apply("a", NGINX)
    assert rig.kube.finalizers[(NS, "a")] == [FINALIZER]
    await rig.apply("a", {**NGINX, "outputs": []}, generation=2)
    assert rig.kube.finalizers[(NS, "a")] == []


async def test_a_failing_release_is_retried_and_the_others_still_go() -> None:
    rig = Rig()
    rig.serve(URL, jwk(1))
    rig.kube.objects[RA] = user_ra()
    spec = {**NGINX, "issuers": [ISSUER], "outputs": [{"istio": {"name": "api"}}, {"nginx": {}}]}
    await rig.apply("a", spec)
    rig.kube.fail["write_output"] = [ApiCallError("Kubernetes API error: HTTP 500", status=500)]
    await rig.engine.observe("MODIFIED", deleting(rig.body("a", spec)))
    await rig.settle()
    assert nginx_ref() not in rig.kube.objects, "the NGINX Secret went although the Istio release failed"
    assert rig.kube.objects[RA]["spec"].get("jwtRules"), "the Istio rules wait for the retry"
    assert rig.kube.finalizers[(NS, "a")] == [FINALIZER]
    await rig.advance(5)
    assert "jwtRules" not in rig.kube.objects[RA]["spec"]
    assert rig.kube.finalizers[(NS, "a")] == []


async def test_after_a_restart_a_failing_output_is_retried_at_once() -> None:
    rig = Rig()
    rig.serve(URL, jwk(1))
    spec = {**NGINX, "issuers": [ISSUER], "outputs": [{"envoyGateway": {"securityPolicy": "edge"}}]}
    await rig.apply("a", spec)
    rig.restart()
    rig.kube.objects[POLICY] = user_policy()
    await rig.engine.observe(None, rig.body("a", spec))
    await rig.settle()
    assert rig.kube.objects[POLICY]["spec"].get("jwt"), "not left waiting for the URL's next refresh"


async def test_the_release_finalizer_does_not_hold_deletion_forever_on_a_malformed_object() -> None:
    """Issue 23, item 5: a RequestAuthentication whose spec was replaced by a list cannot be read: the
    release reports it on the JwtSecret (its output's condition, a Warning Event), keeps trying a bounded
    number of times, then removes the finalizer and records in an Event what it left behind. The other
    outputs are released at once; the object is never written."""
    rig = Rig()
    rig.serve(URL, jwk(1))
    rig.kube.objects[RA] = user_ra()
    spec = {**NGINX, "issuers": [ISSUER], "outputs": [{"istio": {"name": "api"}}, {"nginx": {}}]}
    await rig.apply("a", spec)
    rig.kube.objects[RA]["spec"] = [{"jwtRules": "a list, by hand"}]
    malformed = json.dumps(rig.kube.objects[RA])
    await rig.engine.observe("MODIFIED", deleting(rig.body("a", spec)))
    await rig.settle()
    assert nginx_ref() not in rig.kube.objects, "the NGINX Secret went at once"
    assert rig.kube.finalizers[(NS, "a")] == [FINALIZER], "held while it tries"
    (entry,) = rig.status("a")["outputs"]
    ready = entry["conditions"][0]
    assert (entry["output"], ready["status"], ready["reason"]) == ("istio/api", "False", "MalformedObject")
    assert ready["message"] == (
        "could not remove this output: RequestAuthentication api: spec is not an object; left untouched "
        "(attempt 1 of 5; after the last, the finalizer jwks.dev/release-outputs is removed anyway)"
    )
    warnings = [(r, m) for t, r, m in rig.kube.events if t == "Warning"]
    assert warnings == [("ReleaseBlocked", f"output istio/api: {ready['message']}")]

    def ra_writes() -> int:
        return len([c for c in rig.kube.called("write_output") if c[1] == "RequestAuthentication"])

    before = ra_writes()
    await rig.engine.observe("MODIFIED", deleting(rig.body("a", spec)))  # the echo of that status
    await rig.settle()
    assert ra_writes() == before, "the release goes on as it was: no new one, no attempt now"
    attempts = 1
    while rig.kube.finalizers[(NS, "a")] and attempts < 20:
        await rig.advance(rig.due(("leave", (NS, "a", rig.uids["a"]))) or 0)
        attempts = ra_writes() - 1
    assert attempts == 5, "five attempts, then the finalizer is removed"
    assert rig.kube.finalizers[(NS, "a")] == []
    assert json.dumps(rig.kube.objects[RA]) == malformed, "never written"
    reasons = [r for t, r, _ in rig.kube.events if t == "Warning"]
    assert reasons == ["ReleaseBlocked", "ReleaseAbandoned"], "one Event when blocked, one when abandoned"
    assert rig.kube.events[-1][2] == (
        "output istio/api: gave up removing this JwtSecret's entries from RequestAuthentication api after 5 "
        "attempts (RequestAuthentication api: spec is not an object; left untouched): whatever it holds of "
        "them stays there; the finalizer jwks.dev/release-outputs was removed"
    )


async def test_only_unreadable_objects_bound_the_release() -> None:
    """API errors are retried for as long as they last (the object may be fine); an unexpected error while
    reading the object counts as unreadable."""
    rig = Rig()
    rig.serve(URL, jwk(1))
    rig.kube.objects[RA] = user_ra()
    spec = {**NGINX, "issuers": [ISSUER], "outputs": [{"istio": {"name": "api"}}]}
    await rig.apply("a", spec)
    leave: Item = ("leave", (NS, "a", rig.uids["a"]))
    rig.kube.fail["write_output"] = [ApiCallError("Kubernetes API error: HTTP 500", status=500)] * 8
    await rig.engine.observe("MODIFIED", deleting(rig.body("a", spec)))
    for _ in range(8):
        await rig.advance(rig.due(leave) or 0)
    assert rig.kube.finalizers[(NS, "a")] == [FINALIZER], "still held after eight failed attempts"
    (entry,) = rig.status("a")["outputs"]
    assert entry["conditions"][0]["reason"] == "ApiError"
    assert entry["conditions"][0]["message"] == "could not remove this output: Kubernetes API error: HTTP 500"
    rig.kube.fail["write_output"] = [TypeError("a bug reading it")] * 5
    for _ in range(5):
        await rig.advance(rig.due(leave) or 0)
    assert rig.kube.finalizers[(NS, "a")] == [], "five unexpected errors in a row: given up"
    assert rig.kube.objects[RA]["spec"].get("jwtRules"), "our rule left behind, as the Event says"
    blocked = [m for t, r, m in rig.kube.events if r == "ReleaseBlocked"]
    assert blocked == [
        "output istio/api: could not remove this output: Kubernetes API error: HTTP 500",
        "output istio/api: could not remove this output: unexpected TypeError while removing (see the "
        "operator log) (attempt 1 of 5; after the last, the finalizer jwks.dev/release-outputs is removed "
        "anyway)",
    ]
    assert [r for _, r, _ in rig.kube.events].count("ReleaseAbandoned") == 1


async def test_an_output_whose_kind_is_not_served_is_released_at_once_with_an_event() -> None:
    """Before: a JwtSecret with an envoyGateway output on a cluster without Envoy Gateway's CRD stayed
    Terminating: every release attempt read the SecurityPolicy, got 404 for the kind, and retried with a
    growing backoff. With no such kind there is nothing of ours to take out: the finalizer comes off."""
    rig = Rig()
    rig.serve(URL, jwk(1))
    rig.kube.unserved.add("SecurityPolicy")
    spec = {**NGINX, "issuers": [ISSUER], "outputs": [{"envoyGateway": {"securityPolicy": "edge"}}]}
    await rig.apply("a", spec)
    ready = output_entry(rig, "a")["conditions"][0]
    assert (ready["status"], ready["reason"]) == ("False", "KindNotInstalled"), ready
    assert rig.kube.finalizers[(NS, "a")] == [FINALIZER]

    await rig.engine.observe("MODIFIED", deleting(rig.body("a", spec)))
    await rig.settle()
    assert rig.kube.finalizers[(NS, "a")] == [], "nothing of ours can be in a kind that does not exist"
    (event,) = [e for e in rig.kube.events if e[1] == "KindNotInstalled"]
    assert event[0] == "Normal"
    assert "output envoyGateway/edge: the API server does not serve SecurityPolicy" in event[2], event
    assert "nothing to take out" in event[2]


async def test_a_stuck_release_says_in_status_what_the_deletion_waits_for() -> None:
    """Before: a release that kept failing left the deleting JwtSecret's status as it was (Ready, no
    word of the wait); only the operator log told why it stayed Terminating."""
    rig = Rig()
    rig.serve(URL, jwk(1))
    rig.kube.objects[RA] = user_ra()
    spec = {**NGINX, "issuers": [ISSUER], "outputs": [{"istio": {"name": "api"}}]}
    await rig.apply("a", spec)
    forbidden = ApiCallError("Kubernetes API error (write output): HTTP 403 Forbidden", status=403)
    rig.kube.fail["write_output"] = [forbidden, forbidden]
    await rig.engine.observe("MODIFIED", deleting(rig.body("a", spec)))
    await rig.settle()
    assert rig.kube.finalizers[(NS, "a")] == [FINALIZER]
    degraded = next(c for c in rig.status("a")["conditions"] if c["type"] == "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "ReleaseFailed")
    assert degraded["message"].startswith(
        "deletion waits until this JwtSecret's entries are out of istio/api (finalizer "
        "jwks.dev/release-outputs; retried with backoff): "
    ), degraded["message"]
    assert "may not write RequestAuthentication" in degraded["message"]
    entry = output_entry(rig, "a")["conditions"][0]
    assert (entry["status"], entry["reason"]) == ("False", "Forbidden")
    assert entry["message"].startswith("could not remove this output: the operator may not write")
    assert rig.condition("a", "Ready") == ("True", "KeysPublished"), "its keys stay until it is gone"
    assert [e[:2] for e in rig.kube.events] == [("Warning", "ReleaseBlocked")]

    patches = len(rig.kube.called("patch_status"))
    await rig.advance(5)  # fails the same way: nothing new to say, no write
    assert len(rig.kube.called("patch_status")) == patches
    assert rig.kube.finalizers[(NS, "a")] == [FINALIZER]
    await rig.advance(10)
    assert "jwtRules" not in rig.kube.objects[RA]["spec"]
    assert rig.kube.finalizers[(NS, "a")] == []
