"""The engine in process when a JwtSecret changes while a pass of it runs: passes of its generations run
one at a time, and a pass of a replaced generation publishes and reports nothing."""

from __future__ import annotations

import asyncio

import pytest

from tests.unit.fakes import NS, Gate, Rig

pytestmark = pytest.mark.asyncio


def hmac(kid: str) -> dict[str, object]:
    return {"static": {"secretRef": {"name": "hmac", "key": "key", "kid": kid}}, "algorithms": ["HS256"]}


def moved(name: str) -> dict[str, object]:
    return {**hmac("one"), "target": {"name": name}}


@pytest.mark.parametrize("held", ["read_secret_key", "publish"])
async def test_a_pass_of_a_replaced_generation_finishing_last_changes_nothing(held: str) -> None:
    rig = Rig()
    rig.kube.secrets[(NS, "hmac")] = {"key": b"0123456789abcdef0123456789abcdef"}
    gate = rig.kube.gates[held] = Gate()
    await rig.engine.observe("ADDED", rig.body("a", hmac("one")))
    rig.engine.scheduler.fire_due()
    await gate.reached()  # generation 1's pass is reading its secret, or writing its output
    await rig.engine.observe("MODIFIED", rig.body("a", hmac("two"), generation=2))
    rig.engine.scheduler.fire_due()
    await asyncio.sleep(0.1)  # generation 2's pass gets as far as it can meanwhile
    gate.open()
    await rig.settle()
    assert rig.status("a")["observedGeneration"] == 2
    assert rig.kids("a-jwks", "Secret") == ["two"]
    assert len(rig.kube.called("patch_status")) == 1, "generation 1 reported nothing"
    writes = 1 if held == "read_secret_key" else 2  # a pass replaced before it publishes does not publish
    assert rig.kube.writes() == [("publish", "Secret", "a-jwks")] * writes


async def test_a_move_by_a_replaced_pass_is_handed_over_to_the_next_generation() -> None:
    rig = Rig()
    rig.kube.secrets[(NS, "hmac")] = {"key": b"0123456789abcdef0123456789abcdef"}
    await rig.apply("a", hmac("one"))
    gate = rig.kube.gates["publish"] = Gate()
    await rig.engine.observe("MODIFIED", rig.body("a", moved("b"), generation=2))
    rig.engine.scheduler.fire_due()
    await gate.reached()  # generation 2 is writing Secret b; generation 3 names c
    await rig.engine.observe("MODIFIED", rig.body("a", moved("c"), generation=3))
    gate.open()
    await rig.settle()
    assert sorted(name for _, _, name in rig.kube.outputs) == ["c"], "b, written by generation 2, is removed"
    assert rig.status("a")["target"] == {"kind": "Secret", "name": "c"}
    assert rig.status("a")["observedGeneration"] == 3


async def test_a_deleted_contributor_whose_pass_was_joining_a_shared_target_leaves_it() -> None:
    rig = Rig()
    rig.kube.secrets[(NS, "hmac")] = {"key": b"0123456789abcdef0123456789abcdef"}
    shared = {**hmac("one"), "target": {"name": "all", "shared": True}}
    await rig.apply("b", shared)
    gate = rig.kube.gates["publish_shared"] = Gate()
    await rig.engine.observe("ADDED", rig.body("a", shared))
    rig.engine.scheduler.fire_due()
    await gate.reached()
    await rig.engine.observe("DELETED", rig.body("a", shared))
    gate.open()
    await rig.settle()
    assert sorted(k for k in rig.output("all", "Secret") if k.endswith(".jwks.json")) == ["b.jwks.json"]
    assert (NS, "a") not in rig.kube.statuses
