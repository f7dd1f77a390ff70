"""The per-object baseline: every JwtSecret's own client (a Kopf timer per object, or each gateway
fetching for itself) GETs its JWK URL once per refresh period, with no conditional request."""

from __future__ import annotations

import collections
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import requests

AGENT = "jwks-naive/1"


@dataclass
class NaiveResult:
    """What the naive clients did: rounds of one GET per client, each round's wall time."""

    clients: int
    rounds: int = 0
    statuses: collections.Counter[int] = field(default_factory=collections.Counter)
    round_seconds: list[float] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())

    @property
    def per_period(self) -> float:
        """Requests per refresh period: one per client, when each round fits in a period."""
        return self.requests / self.rounds if self.rounds else 0.0


def run(urls: list[str], *, period: float, duration: float, ca_file: str, workers: int = 16) -> NaiveResult:
    """One GET per URL (one URL per client) every `period`, for `duration` (at least one round)."""
    local = threading.local()
    result = NaiveResult(len(urls))
    lock = threading.Lock()

    def fetch(url: str) -> None:
        session: requests.Session | None = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
            session.headers["User-Agent"] = AGENT
        try:
            status = session.get(url, timeout=30, verify=ca_file).status_code
        except requests.RequestException:
            status = -1
        with lock:
            result.statuses[status] += 1

    started = time.monotonic()
    with ThreadPoolExecutor(workers) as pool:
        while result.rounds == 0 or time.monotonic() - started < duration:
            begin = time.monotonic()
            list(pool.map(fetch, urls))
            result.rounds += 1
            result.round_seconds.append(time.monotonic() - begin)
            pause = begin + period - time.monotonic()
            if time.monotonic() + max(pause, 0.0) - started >= duration:
                break
            if pause > 0:
                time.sleep(pause)
    return result
