"""One benchmark run of N JwtSecrets: initial sync, steady state, key rotation, the naive per-object
baseline, and the minimal API client against a fresh emulator.

Everything but the operator (and the minimal client) runs in this process: the emulated API server
in a thread with its own event loop, the providers as threaded HTTPS servers, the creators as a
thread pool. Readiness is read straight from the emulator's store (in its loop, no HTTP), so
watching progress adds no API requests and no serialization work.
"""

from __future__ import annotations

import collections
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import certifi
import trustme
from tests.harness.idp import JwksProvider, Record
from tests.harness.k8s import ApiServer, load_crds
from tests.harness.operator import OperatorProcess

from benchmarks import naive
from benchmarks.emulator import CONFIGMAPS, JWTSECRETS, BenchCluster, Tally
from benchmarks.procstat import usage
from benchmarks.rawhttp import JsonClient
from benchmarks.workload import Item, items, namespaces
from jwks_operator.names import GROUP, PLURAL, VERSION

ROOT = Path(__file__).resolve().parents[1]
Key = tuple[str, str]
HARNESS_AGENT = "jwks-bench/1"
OPERATOR_AGENT = "jwks-operator/"
PROVIDERS = 4
WRITES = ("create", "update", "patch", "delete")
VERBS = ("list", "watch", "get", *WRITES)


@dataclass(frozen=True)
class Settings:
    """Knobs of a run."""

    period: int = 2  # the providers' max-age (s): the refresh period
    steady_periods: int = 5
    concurrency: int = 8  # the operator's --concurrency, and the minimal client's threads
    creators: int = 8  # harness threads creating JwtSecrets
    ready_timeout: float | None = None  # default: 60 s + 50 ms per object
    profile_dir: Path | None = None  # run the operator under cProfile, writing here


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
    create_seconds: float = 0.0
    latency: Latencies | None = None
    minimal: Latencies | None = None
    minimal_calls: dict[str, int] = field(default_factory=dict)
    minimal_cpu: float = 0.0
    initial_calls: dict[str, int] = field(default_factory=dict)
    initial_by_resource: dict[str, int] = field(default_factory=dict)
    initial_fetches: collections.Counter[int] = field(default_factory=collections.Counter)
    initial_cpu: float = 0.0
    peak_rss_mib: float = 0.0
    period: int = 2
    steady_periods: int = 0
    steady_seconds: float = 0.0
    steady_fetches: collections.Counter[int] = field(default_factory=collections.Counter)
    steady_calls: dict[str, int] = field(default_factory=dict)
    steady_cpu: float = 0.0
    rotation_seconds: float | None = None
    rotation_affected: int = 0
    rotation_writes: int = 0
    naive: naive.NaiveResult | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def writes_per_object(self) -> float:
        return sum(self.initial_calls.get(v, 0) for v in WRITES) / self.n if self.n else 0.0

    @property
    def steady_per_period(self) -> float:
        return sum(self.steady_fetches.values()) / self.steady_periods if self.steady_periods else 0.0


# -- measuring ----------------------------------------------------------------------------------------


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
            if _agent(record.headers).startswith(agent):
                statuses[record.status] += 1
    return statuses


def marks(providers: list[JwksProvider]) -> list[int]:
    """The providers' log lengths now."""
    return [len(p.log) for p in providers]


def _agent(headers: Mapping[str, str]) -> str:
    return next((v for k, v in headers.items() if k.lower() == "user-agent"), "")


def _is_ready(obj: Mapping[str, Any]) -> bool:
    status = obj.get("status") or {}
    if status.get("observedGeneration") != obj["metadata"].get("generation"):
        return False
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])


class ReadyMonitor:
    """Records when each JwtSecret is first seen Ready (store scans in the emulator's loop)."""

    def __init__(self, cluster: BenchCluster, interval: float = 0.1) -> None:
        self.cluster = cluster
        self.interval = interval
        self.seen: dict[Key, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="ready-monitor")

    def _scan(self, api: ApiServer) -> list[Key]:
        seen = self.seen
        return [
            (str(k[0]), k[1])
            for k, obj in api.store[JWTSECRETS].items()
            if (str(k[0]), k[1]) not in seen and _is_ready(obj)
        ]

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                new = self.cluster.call(self._scan)
            except TimeoutError:  # the emulator's loop is busy for long: just look again
                continue
            now = time.monotonic()
            for key in new:
                self.seen[key] = now
            self._stop.wait(self.interval)

    def __enter__(self) -> ReadyMonitor:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def wait(self, count: int, timeout: float) -> bool:
        """Until `count` objects were seen Ready; False on timeout."""
        deadline = time.monotonic() + timeout
        while len(self.seen) < count:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True


def create_all(cluster: BenchCluster, todo: Iterable[Item], workers: int) -> tuple[dict[Key, float], float]:
    """Create the JwtSecrets with `workers` threads; when each create returned, and the start time."""
    api = JsonClient(cluster.url, HARNESS_AGENT)
    created: dict[Key, float] = {}

    def create(item: Item) -> None:
        path = f"/apis/{GROUP}/{VERSION}/namespaces/{item.namespace}/{PLURAL}"
        api.request("POST", path, item.body())
        created[item.key] = time.monotonic()

    start = time.monotonic()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(create, todo))
    return created, start


def create_namespaces(cluster: BenchCluster, names: Iterable[str]) -> None:
    api = JsonClient(cluster.url, HARNESS_AGENT)
    for name in names:
        api.request(
            "POST",
            "/api/v1/namespaces",
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
        )


def wait_quiet(cluster: BenchCluster, period: float, limit: int = 10) -> None:
    """Until one `period` passes in which the operator wrote nothing (at most `limit` periods)."""
    for _ in range(limit):
        before = cluster.tally()
        time.sleep(period)
        writes, _ = operator_calls(before, cluster.tally())
        if not any(writes.get(v) for v in WRITES):
            return


# -- phases -------------------------------------------------------------------------------------------


def operator_run(
    n: int, settings: Settings, providers: list[JwksProvider], bundle: Path, work: Path, result: Result
) -> None:
    """Initial sync, steady state, rotation and the naive baseline, with the real operator. It trusts
    `work`/trust.pem (a system-sized bundle); the naive clients only the test CA (`bundle`)."""
    todo = items(n, [p.url for p in providers])
    with BenchCluster(crds=load_crds(ROOT / "crds")) as cluster:
        create_namespaces(cluster, namespaces(n))
        kubeconfig = cluster.write_kubeconfig(work / "kubeconfig")
        args = [
            "--min-interval", "1",
            "--retry-base", "1",
            "--retry-max", "4",
            "--fetch-timeout", "5",
            "--fetch-deadline", "10",
            "--concurrency", str(settings.concurrency),
            "--allow-private-networks",
        ]  # fmt: skip
        command: list[str] = [sys.executable, "-m", "jwks_operator"]
        if settings.profile_dir is not None:
            settings.profile_dir.mkdir(parents=True, exist_ok=True)
            out = settings.profile_dir / f"operator-{n}.prof"
            command = [sys.executable, "-m", "cProfile", "-o", str(out), "-m", "jwks_operator"]
        log = work / "operator.log"
        operator = OperatorProcess(
            kubeconfig, log, args=args, env={"REQUESTS_CA_BUNDLE": str(work / "trust.pem")}, command=command
        )
        tally0, marks0 = cluster.tally(), marks(providers)  # the operator's startup calls count too
        with operator:
            assert operator.process is not None
            pid = operator.process.pid
            cpu0 = usage(pid).cpu  # not its start (imports): from the first create on
            timeout = settings.ready_timeout or 60 + 0.05 * n
            with ReadyMonitor(cluster) as monitor:
                created, start = create_all(cluster, todo, settings.creators)
                result.create_seconds = time.monotonic() - start
                if not monitor.wait(n, timeout):
                    result.notes.append(f"N={n}: only {len(monitor.seen)} Ready after {timeout:.0f} s")
            result.latency = Latencies.of(created, monitor.seen, start)
            result.initial_cpu = usage(pid).cpu - cpu0
            result.initial_calls, result.initial_by_resource = operator_calls(tally0, cluster.tally())
            result.initial_fetches = fetches(providers, marks0, OPERATOR_AGENT)

            wait_quiet(cluster, settings.period)
            steady(cluster, providers, pid, settings, result)
            rotation(cluster, providers, todo, settings, result)
            urls = [item.url for item in todo if item.url is not None]
            result.naive = naive.run(
                urls,
                period=settings.period,
                duration=settings.period * settings.steady_periods,
                ca_file=str(bundle),
            )
            result.peak_rss_mib = usage(pid).peak_rss_mib
        result.notes += log_notes(n, operator.log())
        if result.steady_per_period < 0.95 * result.urls:
            result.notes.append(
                f"N={n}: the operator fetched each URL less than once per period in the steady state "
                f"({result.steady_per_period:.1f} fetches/period for {result.urls} URLs): it fell behind"
            )


def log_notes(n: int, text: str) -> list[str]:
    """Errors and warnings in the operator's log: counts, and the first line of each kind."""
    notes: list[str] = []
    for level in ("ERROR", "WARNING"):
        lines = [line for line in text.splitlines() if f" {level} " in line]
        if lines:
            notes.append(f"N={n}: {len(lines)} {level} line(s) in the operator log, first: {lines[0][:300]}")
    return notes


def steady(
    cluster: BenchCluster, providers: list[JwksProvider], pid: int, settings: Settings, result: Result
) -> None:
    """Several refresh periods with unchanged keys: fetches (all 304) and API calls (none)."""
    tally0, marks0, cpu0 = cluster.tally(), marks(providers), usage(pid).cpu
    start = time.monotonic()
    time.sleep(settings.period * settings.steady_periods)
    result.steady_seconds = time.monotonic() - start
    result.steady_periods = settings.steady_periods
    result.steady_cpu = usage(pid).cpu - cpu0
    result.steady_calls, _ = operator_calls(tally0, cluster.tally())
    result.steady_fetches = fetches(providers, marks0, OPERATOR_AGENT)


def rotation(
    cluster: BenchCluster, providers: list[JwksProvider], todo: list[Item], settings: Settings, result: Result
) -> None:
    """A new key at provider 0: seconds until every affected ConfigMap lists it, and the writes."""
    affected = [(item.namespace, f"{item.name}-jwks") for item in todo if item.provider == 0]
    result.rotation_affected = len(affected)
    tally0 = cluster.tally()
    kid = providers[0].rotate()
    start = time.monotonic()

    def published(api: ApiServer) -> int:
        store = api.store[CONFIGMAPS]
        return sum(
            1 for key in affected if kid in ((store.get(key) or {}).get("data") or {}).get("jwks.json", "")
        )

    deadline = start + max(60.0, settings.period * 10, 0.05 * len(affected))
    while time.monotonic() < deadline:
        if cluster.call(published) == len(affected):
            result.rotation_seconds = time.monotonic() - start
            break
        time.sleep(0.05)
    else:
        result.notes.append(f"N={result.n}: rotation not published everywhere after {deadline - start:.0f} s")
    wait_quiet(cluster, settings.period)
    calls, _ = operator_calls(tally0, cluster.tally())
    result.rotation_writes = sum(calls.get(v, 0) for v in WRITES)


def minimal_run(
    n: int, settings: Settings, providers: list[JwksProvider], bundle: Path, result: Result
) -> None:
    """The same creation against a fresh emulator, served by the minimal client instead."""
    todo = items(n, [p.url for p in providers])
    with BenchCluster(crds=load_crds(ROOT / "crds")) as cluster:
        create_namespaces(cluster, namespaces(n))
        command = [
            sys.executable, "-m", "benchmarks.minimal",
            "--server", cluster.url,
            "--ca", str(bundle),
            "--concurrency", str(settings.concurrency),
        ]  # fmt: skip
        tally0 = cluster.tally()  # its list and watch count too
        process = subprocess.Popen(command, stdout=subprocess.PIPE, cwd=ROOT)  # noqa: S603
        try:
            assert process.stdout is not None
            line = process.stdout.readline()
            if line.strip() != b"watching":
                raise RuntimeError(f"the minimal client did not start: {line!r}")
            cpu0 = usage(process.pid).cpu
            timeout = settings.ready_timeout or 60 + 0.05 * n
            with ReadyMonitor(cluster) as monitor:
                created, start = create_all(cluster, todo, settings.creators)
                if not monitor.wait(n, timeout):
                    result.notes.append(
                        f"N={n}: minimal client: only {len(monitor.seen)} Ready after {timeout:.0f} s"
                    )
            result.minimal = Latencies.of(created, monitor.seen, start)
            result.minimal_cpu = usage(process.pid).cpu - cpu0
            result.minimal_calls, _ = operator_calls(tally0, cluster.tally(), who="minimal")
        finally:
            process.terminate()
            process.wait(10)


def run(n: int, settings: Settings, progress: Callable[[str], None] = lambda _: None) -> Result:
    """Benchmark N JwtSecrets."""
    ca = trustme.CA()
    with tempfile.TemporaryDirectory(prefix="jwks-bench-") as tmp:
        work = Path(tmp)
        bundle = work / "ca.pem"
        ca.cert_pem.write_to_path(str(bundle))
        # What the operator trusts: like a container's trust store (certifi's) plus the test CA.
        (work / "trust.pem").write_bytes(Path(certifi.where()).read_bytes() + b"\n" + ca.cert_pem.bytes())
        providers = [JwksProvider(ca=ca, max_age=settings.period).start() for _ in range(PROVIDERS)]
        try:
            todo = items(n, [p.url for p in providers])
            result = Result(
                n,
                urls=len({i.url for i in todo if i.url}),
                static=sum(1 for i in todo if i.url is None),
                period=settings.period,
            )
            progress(f"N={n}: operator")
            operator_run(n, settings, providers, bundle, work, result)
            progress(f"N={n}: minimal client")
            minimal_run(n, settings, providers, bundle, result)
        finally:
            for provider in providers:
                provider.stop()
    return result
