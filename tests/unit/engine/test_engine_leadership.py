"""Failover in process: Kopf's own peering decision (its `process_peering_event`, observed by
`Leadership`, which pauses the engine) on a fake clock, as tests/e2e/test_ha.py sees it with two real
replicas. A leader that stops leaves the peering object and the standby leads at once; a crashed one is
presumed alive until its last keep-alive plus its lifetime, to the instant.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from datetime import datetime, timedelta
from types import SimpleNamespace

import kopf
import pytest
from kopf._cogs.aiokits import aiotoggles
from kopf._cogs.structs import references
from kopf._core.engines import peering

from jwks_operator.runtime.leadership import Leadership
from tests.unit.fakes import T0

LIFETIME = 6  # --peering-lifetime, as tests/e2e/test_ha.py runs its replicas
RESOURCE = references.Resource("kopf.dev", "v1", "clusterkopfpeerings", namespaced=False)

pytestmark = pytest.mark.asyncio


class Standby:
    """Replica b (priority 100) of a ClusterKopfPeering where replica a has priority 200."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.now = T0
        clock = SimpleNamespace(now=lambda tz=None: self.now)
        monkeypatch.setattr(
            peering, "datetime", SimpleNamespace(datetime=clock, timedelta=timedelta, UTC=dt.UTC)
        )
        monkeypatch.setattr(peering, "process_peering_event", peering.process_peering_event)  # undo install()
        self.changes: list[bool] = []
        self.leadership = Leadership(standalone=False, on_change=self.changes.append)
        self.leadership.install()
        self.settings = kopf.OperatorSettings()
        self.settings.peering.name, self.settings.peering.priority = "jwks-operator", 100
        self.paused = aiotoggles.Toggle(True)  # mandatory peering: paused until Kopf first decides
        self.pressure = asyncio.Event()
        self.pressure.set()  # Kopf returns at once instead of sleeping until a peer's deadline

    async def sees(self, **last_seen: datetime) -> bool:
        """The peering object's status lists these replicas' last keep-alives: whether b leads after it."""
        status = {
            name.replace("_", "-"): {
                "priority": 200 if name == "replica_a" else 100,
                "lifetime": LIFETIME,
                "lastseen": seen.isoformat(),
            }
            for name, seen in last_seen.items()
        }
        peering_object = {"metadata": {"name": "jwks-operator"}, "status": status}
        await peering.process_peering_event(
            raw_event={"type": "MODIFIED", "object": peering_object},  # type: ignore[typeddict-item]
            namespace=None,
            resource=RESOURCE,
            identity=peering.Identity("replica-b"),
            settings=self.settings,
            autoclean=False,  # no API: removing dead peers is Kopf's own business
            stream_pressure=self.pressure,
            conflicts_found=self.paused,
        )
        return self.leadership.leading


async def test_a_crashed_leader_is_presumed_alive_until_its_last_keepalive_plus_its_lifetime(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    b = Standby(monkeypatch)
    assert not await b.sees(replica_a=T0, replica_b=T0)
    b.now = T0 + timedelta(seconds=LIFETIME, microseconds=-1)  # a crashed right after T0
    assert not await b.sees(replica_a=T0, replica_b=b.now)
    b.now = T0 + timedelta(seconds=LIFETIME)
    assert await b.sees(replica_a=T0, replica_b=b.now)
    assert b.changes == [False, True]


async def test_a_leader_that_stops_hands_over_at_once_and_takes_the_lead_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    b = Standby(monkeypatch)
    assert not await b.sees(replica_a=T0, replica_b=T0)
    assert await b.sees(replica_b=T0), "a stopping replica removes itself from the status: no wait"
    b.now = T0 + timedelta(seconds=1)
    assert not await b.sees(replica_a=b.now, replica_b=T0), "the higher priority leads again"
    assert b.changes == [False, True, False]
