"""What a benchmark run is given (Settings) and what it measures (Result, Latencies)."""

from __future__ import annotations

import collections
import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks import naive
from benchmarks.backends import BackendName, Key
from benchmarks.profiles import STRESS, Profile, bytes_per_object

WRITES = ("create", "update", "patch", "delete")
VERBS = ("list", "watch", "get", *WRITES)


@dataclass(frozen=True)
class Settings:
    """Knobs of a run."""

    period: int = 2  # the measuring period (s) of the steady state, and the stress profile's max-age
    steady_periods: int = 5
    concurrency: int = 8  # the operator's --concurrency, and the minimal client's threads
    creators: int = 8  # harness threads creating JwtSecrets
    ready_timeout: float | None = None  # default: 60 s + 50 ms per object
    profile_dir: Path | None = None  # run the operator under cProfile, writing here
    backend: BackendName = "emulator"
    profile: Profile = STRESS  # what the providers send, and how a rotation is seen


@dataclass(frozen=True)
class Latencies:
    """Time-to-Ready of each object (from its create returning), and of the whole batch."""

    ready: int
    p50: float
    p95: float
    max: float
    all_ready: float  # from the first create to the last object seen Ready

    @staticmethod
    def of(created: Mapping[Key, float], seen: Mapping[Key, float], start: float) -> Latencies:
        values = sorted(max(seen[k] - created[k], 0.0) for k in created if k in seen)
        if not values:
            return Latencies(0, float("nan"), float("nan"), float("nan"), float("nan"))
        p95 = values[min(len(values) - 1, max(0, round(0.95 * len(values)) - 1))]
        return Latencies(len(values), statistics.median(values), p95, values[-1], max(seen.values()) - start)


@dataclass
class Result:
    """Everything measured for one N."""

    n: int
    urls: int
    static: int
    profile: Profile = STRESS
    create_seconds: float = 0.0
    latency: Latencies | None = None
    minimal: Latencies | None = None
    minimal_calls: dict[str, int] = field(default_factory=dict)
    minimal_cpu: float = 0.0
    minimal_server_cpu: float = 0.0
    initial_calls: dict[str, int] = field(default_factory=dict)
    initial_by_resource: dict[str, int] = field(default_factory=dict)
    initial_fetches: collections.Counter[int] = field(default_factory=collections.Counter)
    initial_cpu: float = 0.0
    initial_main_cpu: float = 0.0  # of which the event loop's thread (Kopf, the engine); the rest: threads
    initial_fetch_cpu: float = 0.0  # of which the fetch threads' (refreshes, mostly), as the operator counts
    initial_api_cpu: float = 0.0  # of which the API threads'
    server_cpu: float = 0.0  # the API server's (and etcd's) over the same span
    peak_rss_mib: float = 0.0
    rss_before_mib: float = 0.0  # the operator's VmRSS before the first create
    rss_after_mib: float = 0.0  # and once it settled after the sync
    initial_connections: int = 0  # connections (TLS handshakes) the providers accepted during the sync
    steady_connections: int = 0  # and during the steady state
    period: int = 2
    steady_periods: int = 0
    settle_seconds: float = 0.0  # after the sync, until the operator's CPU per period stopped falling
    steady_seconds: float = 0.0
    steady_fetches: collections.Counter[int] = field(default_factory=collections.Counter)
    steady_calls: dict[str, int] = field(default_factory=dict)
    steady_cpu: float = 0.0
    rotation_seconds: float | None = None
    rotation_fetched: float | None = None  # when the last affected URL was fetched with the new key
    floor_publish: float | None = None  # the minimal client updating as many ConfigMaps
    rotation_forced: float | None = None  # the forced refreshes all requested (s after rotating)
    rotation_affected: int = 0
    rotation_forced_objects: int = 0  # JwtSecrets annotated to force the refresh (one per affected URL)
    rotation_writes: int = 0
    naive: naive.NaiveResult | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def writes_per_object(self) -> float:
        return sum(self.initial_calls.get(v, 0) for v in WRITES) / self.n if self.n else 0.0

    @property
    def cpu_ms_per_object(self) -> float:
        """The operator's CPU per object in the initial sync, every thread's (fetch threads included)."""
        return 1000 * self.initial_cpu / self.n if self.n else 0.0

    @property
    def cpu_split_ms(self) -> tuple[float, float, float]:
        """Of it, per object: the event loop's thread (Kopf, the engine), the API threads, the fetch threads
        (the rest: other threads, e.g. the metrics server, the fetch watchdog)."""
        if not self.n:
            return (0.0, 0.0, 0.0)
        cpu = (self.initial_main_cpu, self.initial_api_cpu, self.initial_fetch_cpu)
        return (1000 * cpu[0] / self.n, 1000 * cpu[1] / self.n, 1000 * cpu[2] / self.n)

    @property
    def bytes_per_object(self) -> float | None:
        """The operator's resident memory the sync added, per object."""
        if not self.rss_after_mib:
            return None
        return bytes_per_object(self.rss_before_mib, self.rss_after_mib, self.n)

    @property
    def rotation_target(self) -> float | None:
        """The most rotation s may be (profiles.Profile.rotation_target)."""
        return self.profile.rotation_target(self.floor_publish, self.rotation_forced)

    @property
    def floor_ratio(self) -> float | None:
        """The operator's all-Ready time over the minimal client's."""
        if not (self.latency and self.minimal and self.minimal.all_ready > 0):
            return None
        return self.latency.all_ready / self.minimal.all_ready

    @property
    def expected_per_period(self) -> float:
        """Steady-state provider requests per period the profile's max-age calls for."""
        return self.profile.expected_per_period(self.urls, self.period)

    @property
    def steady_per_period(self) -> float:
        return sum(self.steady_fetches.values()) / self.steady_periods if self.steady_periods else 0.0
