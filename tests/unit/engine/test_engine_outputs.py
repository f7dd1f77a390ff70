"""The engine's outputs in process: target moves, shared targets, drift repair, resync, retained keys."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from jwks_operator.model.errors import ApiCallError, TargetConflictError
from tests.unit.fakes import NS, Rig, jwk

URL = "https://idp.example/jwks"
SPEC = {"jwkUrl": URL, "audiences": ["api"]}

pytestmark = pytest.mark.asyncio


async def published(rig: Rig, name: str = "a", spec: dict[str, Any] | None = None) -> None:
    rig.serve(URL, jwk(1))
    await rig.apply(name, spec or SPEC)
    rig.kube.calls.clear()


async def test_a_target_move_writes_the_new_output_before_removing_the_old() -> None:
    rig = Rig()
    await published(rig)
    await rig.apply("a", {**SPEC, "target": {"name": "moved"}}, generation=2)
    assert rig.kube.writes() == [("publish", "ConfigMap", "moved"), ("delete_owned", "ConfigMap", "a-jwks")]
    assert rig.kube.calls[-1][0] == "patch_status", "the status names the new target last"
    assert rig.status("a")["target"] == {"kind": "ConfigMap", "name": "moved"}
    assert ("ConfigMap", NS, "a-jwks") not in rig.kube.outputs
    assert rig.kids("moved") == ["k1"]


async def test_a_failed_move_keeps_the_old_target_until_the_new_one_is_written() -> None:
    rig = Rig()
    await published(rig)
    rig.kube.fail["publish"] = [TargetConflictError("ConfigMap moved already exists and is not ours")]
    await rig.apply("a", {**SPEC, "target": {"name": "moved"}}, generation=2)
    assert rig.kube.writes() == [("publish", "ConfigMap", "moved")]
    assert rig.status("a")["target"] == {"kind": "ConfigMap", "name": "a-jwks"}
    assert rig.condition("a", "Degraded") == ("True", "TargetConflict")
    assert rig.due(("obj", (NS, "a"))) == 5
    await rig.advance(5)
    assert rig.kube.writes()[1:] == [
        ("publish", "ConfigMap", "moved"),
        ("delete_owned", "ConfigMap", "a-jwks"),
    ]
    assert rig.status("a")["target"] == {"kind": "ConfigMap", "name": "moved"}


async def test_moving_into_a_shared_target_and_leaving_it_on_deletion() -> None:
    rig = Rig()
    await published(rig)
    shared = {**SPEC, "target": {"name": "all-keys", "shared": True}}
    await rig.apply("a", shared, generation=2)
    await rig.apply("b", shared)
    assert rig.kube.writes() == [
        ("publish_shared", "ConfigMap", "all-keys", "a", True),
        ("delete_owned", "ConfigMap", "a-jwks"),
        ("publish_shared", "ConfigMap", "all-keys", "b", True),
    ]
    assert rig.status("a")["target"] == {"kind": "ConfigMap", "name": "all-keys", "shared": True}
    assert {"a.jwks.json", "b.jwks.json"} <= set(rig.output("all-keys"))

    await rig.engine.observe("DELETED", rig.body("a", shared))
    await rig.settle()
    assert rig.kube.writes()[-1] == ("publish_shared", "ConfigMap", "all-keys", "a", False)
    assert "a.jwks.json" not in rig.output("all-keys")
    assert "b.jwks.json" in rig.output("all-keys")


async def test_an_output_changed_by_hand_is_written_back_with_a_repaired_event() -> None:
    rig = Rig()
    await published(rig)
    wanted = dict(rig.output("a-jwks"))
    edited = {**wanted, "jwks.json": '{"keys": []}'}
    rig.kube.outputs[("ConfigMap", NS, "a-jwks")] = edited
    rig.engine.drift("MODIFIED", rig.configmap_event("a-jwks", "a", edited))
    await rig.settle()
    assert rig.kube.writes() == [("publish", "ConfigMap", "a-jwks")]
    assert rig.output("a-jwks") == wanted
    assert rig.kube.events[-1][:2] == ("Normal", "Repaired")
    assert rig.kube.events[-1][2].startswith("ConfigMap a-jwks was changed by hand; restored")

    rig.engine.drift("MODIFIED", rig.configmap_event("a-jwks", "a", wanted))  # our own write echoing
    await rig.settle()
    assert len(rig.kube.writes()) == 1


async def test_only_a_change_of_what_this_process_wrote_skips_reading_the_target() -> None:
    """A rotation rewrites the ConfigMap from what this process last wrote there (no read: a stale
    resourceVersion is refused and read again); a first write, a repair and a move read it first."""
    rig = Rig()
    provider = rig.serve(URL, jwk(1))
    await rig.apply("a", SPEC)
    provider.keys = [jwk(2)]
    await rig.advance(300)  # max-age: refreshed, the keys changed
    assert rig.kids("a-jwks") == ["k2"]
    edited = {**rig.output("a-jwks"), "jwks.json": '{"keys": []}'}
    rig.kube.outputs[("ConfigMap", NS, "a-jwks")] = edited
    rig.engine.drift("MODIFIED", rig.configmap_event("a-jwks", "a", edited))
    await rig.settle()  # repaired
    await rig.apply("a", {**SPEC, "target": {"name": "moved"}}, generation=2)
    assert rig.kube.from_known == [False, True, False, False]


async def test_a_deleted_output_is_recreated_after_a_grace_second() -> None:
    rig = Rig()
    await published(rig)
    data = rig.kube.outputs.pop(("ConfigMap", NS, "a-jwks"))
    rig.engine.drift("DELETED", rig.configmap_event("a-jwks", "a", data))
    assert rig.due(("obj", (NS, "a"))) == 1.0, "the JwtSecret's own deletion may be the cause"
    await rig.settle()
    assert rig.kube.writes() == []
    await rig.advance(1)
    assert rig.kube.writes() == [("publish", "ConfigMap", "a-jwks")]
    assert rig.kids("a-jwks") == ["k1"]
    assert [e[:2] for e in rig.kube.events] == [("Normal", "Repaired")]


async def test_drift_ignores_outputs_of_other_owners() -> None:
    rig = Rig()
    await published(rig)
    event = rig.configmap_event("a-jwks", "a", {})
    event["metadata"]["ownerReferences"][0]["uid"] = "someone-else"
    rig.engine.drift("MODIFIED", event)
    await rig.settle()
    assert rig.kube.calls == []


async def test_resync_rewrites_an_unwatched_secret_changed_by_hand() -> None:
    rig = Rig(resync_interval=100)
    rig.kube.secrets[(NS, "hmac")] = {"key": b"0123456789abcdef0123456789abcdef"}
    spec = {"static": {"secretRef": {"name": "hmac", "key": "key", "kid": "h"}}, "algorithms": ["HS256"]}
    await rig.apply("a", spec)
    assert rig.kube.writes() == [("publish", "Secret", "a-jwks")]
    due = rig.due(("resync", (NS, "a")))
    assert due is not None
    assert 90 <= due <= 110
    rig.kube.outputs[("Secret", NS, "a-jwks")]["jwks.json"] = "tampered"
    await rig.advance(due)
    assert rig.kube.writes()[1:] == [("publish", "Secret", "a-jwks")]
    secret = base64.urlsafe_b64encode(b"0123456789abcdef0123456789abcdef").rstrip(b"=").decode()
    assert secret in rig.output("a-jwks", "Secret")["jwks.json"]
    assert rig.kube.events[-1][:2] == ("Normal", "Repaired")


async def test_a_key_dropped_by_the_provider_stays_published_for_retain_removed_for() -> None:
    rig = Rig()
    provider = rig.serve(URL, jwk(1), jwk(2))
    await rig.apply("a", {**SPEC, "rotation": {"retainRemovedFor": "10m"}})
    provider.keys = [jwk(2)]
    await rig.advance(300)
    assert sorted(rig.kids("a-jwks")) == ["k1", "k2"]
    assert rig.due(("obj", (NS, "a"))) == pytest.approx(600.05)
    await rig.advance(600.05)
    assert rig.kids("a-jwks") == ["k2"]
    assert rig.due(("obj", (NS, "a"))) is None


async def test_a_move_does_not_repair_the_previous_target_it_deletes() -> None:
    rig = Rig()
    await published(rig)
    data = dict(rig.output("a-jwks"))
    await rig.apply("a", {**SPEC, "target": {"name": "moved"}}, generation=2)
    rig.kube.calls.clear()
    rig.engine.drift("DELETED", rig.configmap_event("a-jwks", "a", data))  # our own deletion echoing
    assert rig.due(("obj", (NS, "a"))) is None
    await rig.advance(1)
    assert rig.kube.calls == []


SHARED = {**SPEC, "target": {"name": "all-keys", "shared": True}}
INVALID = {**SHARED, "jwkUrl": "ftp://idp.example/jwks"}


async def test_an_invalid_spec_keeps_naming_the_published_target_and_leaves_it_on_deletion() -> None:
    rig = Rig()
    await published(rig, "a", SHARED)
    await rig.apply("b", SHARED)
    await rig.apply("a", INVALID, generation=2)
    assert rig.condition("a") == ("False", "InvalidSpec")
    assert rig.status("a")["target"] == {"kind": "ConfigMap", "name": "all-keys", "shared": True}
    await rig.engine.observe("DELETED", rig.body("a", INVALID))
    await rig.settle()
    assert "a.jwks.json" not in rig.output("all-keys")
    assert "b.jwks.json" in rig.output("all-keys")


async def test_a_spec_fixed_with_a_new_target_removes_the_output_published_before_it_broke() -> None:
    rig = Rig()
    await published(rig)
    await rig.apply("a", {**SPEC, "jwkUrl": "ftp://idp.example/jwks"}, generation=2)
    assert rig.status("a")["target"] == {"kind": "ConfigMap", "name": "a-jwks"}
    await rig.apply("a", {**SPEC, "target": {"name": "moved"}}, generation=3)
    assert sorted(name for _, _, name in rig.kube.outputs) == ["moved"]
    assert rig.status("a")["target"] == {"kind": "ConfigMap", "name": "moved"}


async def test_a_failed_first_publish_names_no_target() -> None:
    rig = Rig()
    rig.serve(URL, jwk(1))
    rig.kube.fail["publish"] = [TargetConflictError("ConfigMap a-jwks already exists and is not ours")]
    await rig.apply("a", SPEC)
    assert rig.condition("a", "Degraded") == ("True", "TargetConflict")
    assert "target" not in rig.status("a"), "nothing is published: the conflicting ConfigMap is not ours"


async def test_leaving_a_shared_target_is_retried_with_backoff_until_done() -> None:
    rig = Rig()
    await published(rig, "a", SHARED)
    await rig.apply("b", SHARED)
    unavailable = ApiCallError("publish_shared: HTTP 503", status=503)
    rig.kube.fail["publish_shared"] = [unavailable, unavailable]
    uid = rig.uids["a"]
    await rig.engine.observe("DELETED", rig.body("a", SHARED))
    await rig.settle()
    assert "a.jwks.json" in rig.output("all-keys")
    assert rig.due(("leave", (NS, "a", uid))) == 5
    await rig.advance(5)
    assert rig.due(("leave", (NS, "a", uid))) == 10
    await rig.advance(10)
    assert "a.jwks.json" not in rig.output("all-keys")
    assert "b.jwks.json" in rig.output("all-keys")
    assert rig.due(("leave", (NS, "a", uid))) is None
    assert rig.engine.publisher.leaving == {}


async def test_expired_retained_keys_are_forgotten_and_do_not_shorten_the_recheck() -> None:
    rig = Rig()
    provider = rig.serve(URL, jwk(1), jwk(2), jwk(3))
    await rig.apply("a", {**SPEC, "rotation": {"retainRemovedFor": "10m"}})
    await rig.apply("b", {**SPEC, "rotation": {"retainRemovedFor": "15m"}})
    provider.keys = [jwk(2), jwk(3)]  # k1 removed at 300
    await rig.advance(300)
    provider.keys = [jwk(3)]  # k2 removed at 600
    await rig.advance(300)
    await rig.advance_to(900.05)  # k1 no longer retained by a
    assert sorted(rig.kids("a-jwks")) == ["k2", "k3"]
    assert rig.due(("obj", (NS, "a"))) == pytest.approx(300), "next: when k2 expires, not in 50 ms"
    source = rig.engine.sources.get(URL)
    assert source is not None
    assert len(source.removed) == 2, "b still retains k1"
    await rig.advance_to(1200.05)  # k1 no longer retained by b
    assert sorted(rig.kids("b-jwks")) == ["k2", "k3"]
    assert len(source.removed) == 1
    await rig.advance_to(1500.05)
    assert rig.kids("a-jwks") == rig.kids("b-jwks") == ["k3"]
    assert source.removed == {}


async def test_the_watch_echo_of_a_write_under_way_is_not_taken_for_an_edit_by_hand() -> None:
    """The ConfigMap watch can deliver our own update before the update call returns: that is no
    drift, so the spec change is reported as Published, not Repaired, and nothing is written twice."""
    rig = Rig()
    await published(rig)
    write = rig.kube.publish

    def write_and_echo(
        kind: Any, owner: Any, name: str, data: Any, *, new: bool = False, known: Any = None
    ) -> Any:
        result = write(kind, owner, name, data, new=new, known=known)
        rig.engine.drift("MODIFIED", rig.configmap_event(name, owner.name, dict(data)))  # the echo
        return result

    rig.kube.publish = write_and_echo  # type: ignore[method-assign]
    await rig.apply("a", {**SPEC, "audiences": ["api", "web"]}, generation=2)
    assert rig.kube.writes() == [("publish", "ConfigMap", "a-jwks")]
    assert [e[:2] for e in rig.kube.events] == [("Normal", "Published")]
