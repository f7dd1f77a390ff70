"""One benchmark run of N JwtSecrets: for each workload profile (profiles.py) the initial sync, steady state,
key rotation and (where the period is max-age) the naive per-object baseline, on a fresh cluster each; and
once, the minimal API client against a fresh cluster of the same backend (backends.py): the floor.

The providers run in this process as threaded HTTPS servers, the creators as a thread pool; the
operator and the minimal client are subprocesses; the API server is the emulator (a thread of this
process) or a real control plane (child processes).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import certifi
import trustme
from prometheus_client.parser import text_string_to_metric_families
from tests.harness.idp import JwksProvider
from tests.harness.operator import OperatorProcess

from benchmarks import naive
from benchmarks.backends import ROOT, Backend, Key, backend, wait_for
from benchmarks.measure import OPERATOR_AGENT, connections, fetches, marks, operator_calls, wait_quiet
from benchmarks.procstat import thread_cpu_of, usage
from benchmarks.profiles import Profile
from benchmarks.results import Latencies, Result, Settings
from benchmarks.rotation import publish_floor, rotation
from benchmarks.workload import Item, items, namespaces
from jwks_operator.model.names import GROUP, PLURAL, VERSION

THREAD_CPU = "jwks_operator_thread_cpu_seconds_total"
PROVIDERS = 4


# -- creating and settling ----------------------------------------------------------------------------


def create_all(cluster: Backend, todo: Iterable[Item], workers: int) -> tuple[dict[Key, float], float]:
    """Create the JwtSecrets with `workers` threads; when each create returned, and the start time."""
    api = cluster.harness()
    created: dict[Key, float] = {}

    def create(item: Item) -> None:
        path = f"/apis/{GROUP}/{VERSION}/namespaces/{item.namespace}/{PLURAL}"
        api.request("POST", path, item.body())
        created[item.key] = time.monotonic()

    start = time.monotonic()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(create, todo))
    return created, start


def create_namespaces(cluster: Backend, names: Iterable[str]) -> None:
    api = cluster.harness()
    for name in names:
        api.request(
            "POST",
            "/api/v1/namespaces",
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
        )


def pool_cpu(operator: OperatorProcess) -> dict[str, float]:
    """The operator's own count of its worker threads' CPU seconds, by pool (fetch, api): a scrape of that
    family alone (the per-object families of 10,000 JwtSecrets are not built for it)."""
    url = f"http://127.0.0.1:{operator.metrics_port}/metrics?name[]={THREAD_CPU}"
    with urllib.request.urlopen(url, timeout=60) as response:
        text = response.read().decode()
    return {
        sample.labels["pool"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == THREAD_CPU
    }


def wait_settled(pid: int, period: float, limit: int = 30) -> float:
    """Until the operator's CPU per `period` stops falling (within 10% of the previous period's, at most
    `limit` periods): watch events still queued after the sync are worked off before the steady state is
    measured. The seconds waited."""
    start = time.monotonic()
    last = None
    for _ in range(limit):
        cpu0 = usage(pid).cpu
        time.sleep(period)
        used = usage(pid).cpu - cpu0
        if last is not None and used >= 0.9 * last:
            break
        last = used
    return time.monotonic() - start


# -- phases -------------------------------------------------------------------------------------------


def operator_run(
    n: int,
    settings: Settings,
    providers: list[JwksProvider],
    bundle: Path,
    work: Path,
    result: Result,
    progress: Callable[[str], None],
) -> None:
    """Initial sync, steady state, rotation and (stress) the naive baseline, with the real operator, under
    `settings.profile`. It trusts `work`/trust.pem (a system-sized bundle); the naive clients only the
    test CA (`bundle`)."""
    todo = items(n, [p.url for p in providers])
    with backend(settings.backend, work) as cluster:
        create_namespaces(cluster, namespaces(n))
        kubeconfig = cluster.operator_kubeconfig(work / "kubeconfig")
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
            out = settings.profile_dir / f"operator-{settings.backend}-{settings.profile.name}-{n}.prof"
            command = [sys.executable, "-m", "cProfile", "-o", str(out), "-m", "jwks_operator"]
        log = work / "operator.log"
        operator = OperatorProcess(
            kubeconfig,
            log,
            args=args,
            env={"REQUESTS_CA_BUNDLE": str(work / "trust.pem")},
            command=command,
            metrics=True,
        )
        tally0, marks0 = cluster.tally(), marks(providers)  # the operator's startup calls count too
        connections0 = connections(providers)
        with operator, cluster.monitor() as monitor:
            assert operator.process is not None
            pid = operator.process.pid
            before = usage(pid)  # not its start (imports): from here on
            cpu0, server0, result.rss_before_mib = before.cpu, cluster.server_cpu(), before.rss_mib
            main0 = thread_cpu_of(pid, pid)  # the event loop's thread: Kopf and the engine
            pools0 = pool_cpu(operator)
            timeout = settings.ready_timeout or 60 + 0.05 * n
            created, start = create_all(cluster, todo, settings.creators)
            result.create_seconds = time.monotonic() - start
            if not wait_for(monitor, n, timeout):
                result.notes.append(f"N={n}: only {len(monitor.seen)} Ready after {timeout:.0f} s")
            result.latency = Latencies.of(created, monitor.seen, start)
            result.initial_cpu = usage(pid).cpu - cpu0
            result.server_cpu = cluster.server_cpu() - server0
            result.initial_calls, result.initial_by_resource = operator_calls(tally0, cluster.tally())
            result.initial_fetches = fetches(providers, marks0, OPERATOR_AGENT)
            result.initial_connections = connections(providers) - connections0

            result.initial_main_cpu = thread_cpu_of(pid, pid) - main0
            pools = pool_cpu(operator)
            result.initial_fetch_cpu = pools.get("fetch", 0.0) - pools0.get("fetch", 0.0)
            result.initial_api_cpu = pools.get("api", 0.0) - pools0.get("api", 0.0)
            progress(f"N={n}: all Ready or timed out; steady state")
            wait_quiet(cluster, settings.period)
            result.settle_seconds = wait_settled(pid, settings.period)
            result.rss_after_mib = usage(pid).rss_mib
            steady(cluster, providers, pid, settings, result)
            rotation(cluster, monitor, providers, todo, settings, result)
            if settings.profile.max_age <= settings.period:  # the naive clients fetch once per period
                urls = [item.url for item in todo if item.url is not None]
                result.naive = naive.run(
                    urls,
                    period=settings.period,
                    duration=settings.period * settings.steady_periods,
                    ca_file=str(bundle),
                )
            result.peak_rss_mib = usage(pid).peak_rss_mib
        result.notes += log_notes(f"N={n} ({settings.profile.name})", operator.log())
        expected = result.expected_per_period
        if expected >= 1 and result.steady_per_period < 0.95 * expected:
            result.notes.append(
                f"N={n} ({settings.profile.name}): the operator fetched each URL less than once per max-age "
                f"in the steady state ({result.steady_per_period:.1f} fetches/period for {result.urls} "
                "URLs): it fell behind"
            )


def log_notes(run: str, text: str) -> list[str]:
    """Errors and warnings in the operator's log: counts, and the first line of each kind."""
    notes: list[str] = []
    for level in ("ERROR", "WARNING"):
        lines = [line for line in text.splitlines() if f" {level} " in line]
        if lines:
            notes.append(f"{run}: {len(lines)} {level} line(s) in the operator log, first: {lines[0][:300]}")
    return notes


def steady(
    cluster: Backend, providers: list[JwksProvider], pid: int, settings: Settings, result: Result
) -> None:
    """Several periods with unchanged keys: fetches (stress: all 304; realistic: none, max-age is hours),
    connections and API calls (none)."""
    tally0, marks0, cpu0 = cluster.tally(), marks(providers), usage(pid).cpu
    connections0 = connections(providers)
    start = time.monotonic()
    time.sleep(settings.period * settings.steady_periods)
    result.steady_seconds = time.monotonic() - start
    result.steady_periods = settings.steady_periods
    result.steady_cpu = usage(pid).cpu - cpu0
    result.steady_calls, _ = operator_calls(tally0, cluster.tally())
    result.steady_fetches = fetches(providers, marks0, OPERATOR_AGENT)
    result.steady_connections = connections(providers) - connections0


def minimal_run(
    n: int, settings: Settings, provider_urls: list[str], bundle: Path, work: Path, result: Result
) -> None:
    """The same creation against a fresh cluster of the same backend, served by the minimal client (which
    fetches each URL once: one floor serves every profile)."""
    todo = items(n, provider_urls)
    with backend(settings.backend, work) as cluster:
        create_namespaces(cluster, namespaces(n))
        command = [
            sys.executable, "-m", "benchmarks.minimal",
            *cluster.minimal_args(),
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
            timeout = settings.ready_timeout or 60 + 0.05 * n
            with cluster.monitor() as monitor:
                cpu0, server0 = usage(process.pid).cpu, cluster.server_cpu()
                created, start = create_all(cluster, todo, settings.creators)
                if not wait_for(monitor, n, timeout):
                    result.notes.append(
                        f"N={n}: minimal client: only {len(monitor.seen)} Ready after {timeout:.0f} s"
                    )
                result.minimal = Latencies.of(created, monitor.seen, start)
                result.minimal_cpu = usage(process.pid).cpu - cpu0
                result.minimal_server_cpu = cluster.server_cpu() - server0
            affected = [(item.namespace, f"{item.name}-jwks") for item in todo if item.provider == 0]
            result.floor_publish = publish_floor(cluster, affected, settings.concurrency)
            result.minimal_calls, _ = operator_calls(tally0, cluster.tally(), who="minimal")
        finally:
            process.terminate()
            process.wait(10)


FLOOR_FIELDS = ("minimal", "minimal_calls", "minimal_cpu", "minimal_server_cpu", "floor_publish")


def run(
    n: int,
    settings: Settings,
    profiles: Sequence[Profile],
    progress: Callable[[str], None] = lambda _: None,
) -> list[Result]:
    """Benchmark N JwtSecrets under each profile, against one floor: a Result per profile."""
    ca = trustme.CA()
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="jwks-bench-") as tmp:
        work = Path(tmp)
        bundle = work / "ca.pem"
        ca.cert_pem.write_to_path(str(bundle))
        # What the operator trusts: like a container's trust store (certifi's) plus the test CA.
        trust = Path(certifi.where()).read_bytes() + b"\n" + ca.cert_pem.bytes()
        for profile in profiles:
            providers = [
                JwksProvider(ca=ca, max_age=profile.max_age, keep_alive=profile.keep_alive).start()
                for _ in range(PROVIDERS)
            ]
            try:
                todo = items(n, [p.url for p in providers])
                result = Result(
                    n,
                    urls=len({i.url for i in todo if i.url}),
                    static=sum(1 for i in todo if i.url is None),
                    profile=profile,
                    period=settings.period,
                )
                phase = work / profile.name
                phase.mkdir()
                (phase / "trust.pem").write_bytes(trust)
                progress(f"N={n}: operator ({settings.backend}, {profile.name})")
                chosen = replace(settings, profile=profile)
                operator_run(n, chosen, providers, bundle, phase, result, progress)
                results.append(result)
            finally:
                for provider in providers:
                    provider.stop()
        progress(f"N={n}: minimal client ({settings.backend})")
        floor = Result(n, urls=0, static=0)
        (work / "floor").mkdir()
        providers = [JwksProvider(ca=ca, max_age=settings.period).start() for _ in range(PROVIDERS)]
        try:  # the minimal client fetches each URL once
            minimal_run(n, settings, [p.url for p in providers], bundle, work / "floor", floor)
        finally:
            for provider in providers:
                provider.stop()
    for result in results:
        for name in FLOOR_FIELDS:
            setattr(result, name, getattr(floor, name))
        result.notes += floor.notes
    return results
