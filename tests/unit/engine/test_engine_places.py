"""The engine's places: at most PASSES_PER_WORKER x --concurrency passes of JwtSecrets' own run at once
(the rest wait before they start), a pass waiting for its URL's first fetch holds no place, and the passes a
new document starts (a rotation) never wait for one."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from jwks_operator.engine.engine import PASSES_PER_WORKER
from jwks_operator.kube.adapter import Owner, PublishResult, TargetKind
from tests.unit.fakes import FakeKube, Rig, jwk, stuck, until

URL = "https://idp.example/jwks"
STATIC = {"static": {"jwks": {"keys": [jwk(9)]}}}

pytestmark = pytest.mark.asyncio


class HoldingKube(FakeKube):
    """Holds the publish of every output whose name starts with "held" until `release` is set (with
    "late", until `later` is), and counts the publishes under way."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.later = threading.Event()
        self.lock = threading.Lock()
        self.running = 0
        self.most = 0
        self.started = 0

    def publish(
        self, kind: TargetKind, owner: Owner, name: str, data: Any, *, new: bool = False, known: Any = None
    ) -> PublishResult:
        with self.lock:
            self.running += 1
            self.started += 1
            self.most = max(self.most, self.running)
        try:
            gate = {"held": self.release, "late": self.later}.get(name[:4])
            if gate is not None and not gate.wait(5):
                raise TimeoutError("never released")
            return super().publish(kind, owner, name, data, new=new, known=known)
        finally:
            with self.lock:
                self.running -= 1


def holding_rig(**options: Any) -> tuple[Rig, HoldingKube]:
    rig = Rig(**options)
    kube = rig.kube = HoldingKube()
    rig.restart()  # an engine on the holding kube
    return rig, kube


async def take_every_place(rig: Rig, kube: HoldingKube, count: int = PASSES_PER_WORKER) -> None:
    """`count` static JwtSecrets whose passes are held in their publish (with concurrency 1 and the default
    `count`, every place)."""
    for n in range(count):
        await rig.engine.observe(None, rig.body(f"held{n}", STATIC))
    rig.engine.scheduler.fire_due()
    assert await until(lambda: kube.running == min(count, PASSES_PER_WORKER))


def published(kube: FakeKube) -> set[str]:
    return {name for (_, _, name) in kube.outputs}


async def test_at_most_four_passes_per_api_worker_run_at_once_and_the_rest_follow() -> None:
    rig, kube = holding_rig(concurrency=1)
    places = PASSES_PER_WORKER * 1
    try:
        await take_every_place(rig, kube, places + 6)
        await asyncio.sleep(0.2)  # the others had every chance to start
        assert kube.running == places
        assert kube.started == places, "the others wait for a place, not in the API lanes"
    finally:
        kube.release.set()
    await rig.settle()
    assert kube.most == places
    assert published(kube) == {f"held{n}-jwks" for n in range(places + 6)}
    assert all(rig.condition(f"held{n}") == ("True", "KeysPublished") for n in range(places + 6))


async def test_jwtsecrets_waiting_for_their_urls_first_fetch_hold_no_place() -> None:
    rig = Rig(concurrency=1)
    release = threading.Event()
    rig.serve(URL, jwk(1), headers=stuck(release))
    try:
        for n in range(PASSES_PER_WORKER * 2):  # more than there are places, all waiting for one fetch
            await rig.engine.observe(None, rig.body(f"slow{n}", {"jwkUrl": URL, "audiences": ["api"]}))
        rig.engine.scheduler.fire_due()
        assert await until(lambda: len(rig.fetcher.calls) == 1)
        await rig.engine.observe(None, rig.body("static", STATIC))
        rig.engine.scheduler.fire_due()
        assert await until(lambda: "static-jwks" in published(rig.kube)), "a stuck provider held every place"
    finally:
        release.set()
    await rig.settle()
    assert len(rig.fetcher.calls) == 1, "one fetch for all of them"
    assert all(rig.condition(f"slow{n}")[0] == "True" for n in range(PASSES_PER_WORKER * 2))


async def test_a_rotation_publishes_to_every_subscriber_while_all_places_are_taken() -> None:
    rig, kube = holding_rig(concurrency=1)
    provider = rig.serve(URL, jwk(1), headers={"cache-control": "max-age=60"})
    readers = [f"reader{n}" for n in range(PASSES_PER_WORKER + 2)]
    for name in readers:
        await rig.apply(name, {"jwkUrl": URL, "audiences": ["api"]})
    try:
        await take_every_place(rig, kube)
        provider.keys.append(jwk(2))
        rig.clock.advance(60)  # the URL's refresh is due
        rig.engine.scheduler.fire_due()
        assert await until(lambda: all(rig.kids(f"{name}-jwks") == ["k1", "k2"] for name in readers)), (
            "the rotation waited for a place"
        )
    finally:
        kube.release.set()
    await rig.settle()


async def test_a_pass_whose_jwtsecret_was_replaced_while_it_waited_gives_its_place_up() -> None:
    rig, kube = holding_rig(concurrency=1)
    places = PASSES_PER_WORKER
    release = threading.Event()
    rig.serve(URL, jwk(1), headers=stuck(release))
    try:
        await take_every_place(rig, kube)
        await rig.engine.observe(None, rig.body("x", STATIC))  # its pass waits for a place
        rig.engine.scheduler.fire_due()
        await asyncio.sleep(0.05)  # it is waiting there
        await rig.engine.observe(None, rig.body("x", {"jwkUrl": URL, "audiences": ["api"]}, generation=2))
        rig.engine.scheduler.fire_due()
        assert await until(lambda: len(rig.fetcher.calls) == 1), "generation 2 waits for its URL, placeless"
        kube.release.set()  # places free up: generation 1's pass takes one, and must give it up at once
        assert await until(lambda: kube.running == 0)
        for n in range(places):
            await rig.engine.observe(None, rig.body(f"late{n}", STATIC))
        rig.engine.scheduler.fire_due()
        assert await until(lambda: kube.running == places), "a replaced generation's pass kept a place"
    finally:
        release.set()
        kube.later.set()
    await rig.settle()
    assert rig.kids("x-jwks") == ["k1"]
    assert len(rig.fetcher.calls) == 1
