"""What the benchmark counts between two moments: the API calls of a client (from the backend's tally),
the operator's requests to the providers and the connections the providers accepted."""

from __future__ import annotations

import collections
import time

from tests.harness.idp import JwksProvider, Record

from benchmarks.backends import Backend
from benchmarks.emulator import Tally, user_agent
from benchmarks.results import WRITES

OPERATOR_AGENT = "jwks-operator/"


def operator_calls(
    before: Tally, after: Tally, who: str = "operator"
) -> tuple[dict[str, int], dict[str, int]]:
    """API calls of one client between two tallies: by verb, and by "verb resource"."""
    verbs: collections.Counter[str] = collections.Counter()
    detail: collections.Counter[str] = collections.Counter()
    for (client, verb, resource), count in (after - before).items():
        if client == who and resource != "(discovery)":
            verbs[verb] += count
            detail[f"{verb} {resource}"] += count
    return dict(verbs), dict(detail)


def fetches(providers: list[JwksProvider], marks: list[int], agent: str) -> collections.Counter[int]:
    """Statuses of the requests `agent` made to the providers since `marks` (log lengths)."""
    statuses: collections.Counter[int] = collections.Counter()
    for provider, mark in zip(providers, marks, strict=True):
        with provider._lock:
            records: list[Record] = provider.log[mark:]
        for record in records:
            if user_agent(record.headers).startswith(agent):
                statuses[record.status] += 1
    return statuses


def marks(providers: list[JwksProvider]) -> list[int]:
    """The providers' log lengths now."""
    return [len(p.log) for p in providers]


def connections(providers: list[JwksProvider]) -> int:
    """Connections the providers accepted so far (each a full TLS handshake)."""
    return sum(p.connections for p in providers)


def wait_quiet(cluster: Backend, period: float, limit: int = 10) -> None:
    """Until one `period` passes in which the operator wrote nothing (at most `limit` periods)."""
    for _ in range(limit):
        before = cluster.tally()
        time.sleep(period)
        writes, _ = operator_calls(before, cluster.tally())
        if not any(writes.get(v) for v in WRITES):
            return
