"""Our own status patches echoed back by the JwtSecret watch are known to be ours (the resourceVersion
the patch left, nothing but the status changed) and dropped before `observe`; anything else is not."""

from __future__ import annotations

from typing import Any

import pytest

from jwks_operator.model.names import REFRESH_ANNOTATION
from tests.unit.fakes import NS, Rig, jwk

pytestmark = pytest.mark.asyncio

SPEC: dict[str, Any] = {"static": {"jwks": {"keys": [jwk(1)]}}, "audiences": ["a"]}


def echo(rig: Rig, name: str, **changes: Any) -> dict[str, Any]:
    """The watch event's object after our last status patch (with `changes` to its metadata)."""
    body = rig.body(name, SPEC)
    _, _, patched = rig.kube.called("patch_status")[-1]
    assert patched
    body["metadata"] |= {"resourceVersion": str(rig.kube.version), **changes}
    return body


async def test_the_echo_of_our_status_patch_is_ours_and_taken_as_seen() -> None:
    rig = Rig()
    await rig.apply("a", SPEC)
    tracked = rig.engine.objects[(NS, "a")]
    assert tracked.resource_version == str(rig.kube.version)  # the patch's answer, taken as seen
    assert rig.engine.echoed(echo(rig, "a"))
    other = echo(rig, "a", resourceVersion=str(rig.kube.version + 1))  # a later change by someone
    assert not rig.engine.echoed(other)
    assert not rig.engine.echoed(echo(rig, "b"))  # not tracked


@pytest.mark.parametrize(
    "changed",
    [
        {"generation": 2},
        {"annotations": {REFRESH_ANNOTATION: "now"}},
        {"finalizers": ["example.com/hold"]},
        {"deletionTimestamp": "2026-01-01T00:00:00Z"},
        {"uid": "someone-else"},
    ],
    ids=["generation", "refresh-request", "finalizers", "deleting", "uid"],
)
async def test_a_patch_answer_showing_another_change_makes_no_echo(changed: dict[str, Any]) -> None:
    rig = Rig()
    await rig.apply("a", SPEC)
    tracked = rig.engine.objects[(NS, "a")]
    assert tracked.echo_version
    # The next status patch's answer shows something else changed meanwhile: its event must reach observe.
    answer = echo(rig, "a", resourceVersion="2000", **changed)
    tracked.wrote_status(answer)
    assert tracked.echo_version == ""
    assert not rig.engine.echoed(answer)
    assert tracked.resource_version != "2000"  # not taken as seen either


async def test_an_older_event_processed_after_a_newer_patch_leaves_the_newest_version() -> None:
    rig = Rig()
    await rig.apply("a", SPEC)
    newest = echo(rig, "a")
    older = rig.body("a", SPEC)
    older["metadata"]["resourceVersion"] = "5"
    await rig.engine.observe("MODIFIED", older)  # e.g. the echo of an earlier patch, late
    assert rig.engine.objects[(NS, "a")].resource_version == "5"
    assert rig.engine.echoed(newest)
    assert rig.engine.objects[(NS, "a")].resource_version == newest["metadata"]["resourceVersion"]
