"""Where a benchmark run happens: the test emulator in this process, or a real control plane.

Both offer what a run needs: the API URL and credentials (the harness's, and the ones the operator and
the minimal client run with), the requests each client made (`tally`), a monitor that sees objects turn
Ready and ConfigMaps change, and the CPU seconds the API server spent.

- emulator: tests/harness/k8s/'s emulator, requests counted as they arrive, readiness read from its
  store (no API requests), the CPU of its event-loop thread.
- real (real_backend.py): tests/harness/control_plane.py's etcd, kube-apiserver and
  kube-controller-manager, requests counted from the API server's audit log (by User-Agent),
  readiness from a watch, the CPU of the API server and etcd processes. The operator and the
  minimal client authenticate as deploy/'s ServiceAccount (so API priority and fairness treats them
  as it would in a cluster).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Protocol

from tests.harness.k8s import ApiServer, load_crds

from benchmarks.emulator import CONFIGMAPS, JWTSECRETS, BenchCluster, Tally
from benchmarks.procstat import thread_cpu
from benchmarks.rawhttp import JsonClient

ROOT = Path(__file__).resolve().parents[1]
HARNESS_AGENT = "jwks-bench/1"
Key = tuple[str, str]
BackendName = Literal["emulator", "real"]


def is_ready(obj: dict[str, Any]) -> bool:
    """Ready=True for the object's current generation."""
    status = obj.get("status") or {}
    if status.get("observedGeneration") != obj["metadata"].get("generation"):
        return False
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])


class Monitor(Protocol):
    """Sees JwtSecrets turn Ready (`seen`: when each was first seen Ready) and reads published keys."""

    seen: dict[Key, float]

    def __enter__(self) -> Monitor: ...
    def __exit__(self, *exc: object) -> None: ...
    def published(self, configmaps: Iterable[Key], kid: str) -> int:
        """How many of these ConfigMaps list key `kid` in jwks.json."""
        ...


def wait_for(monitor: Monitor, count: int, timeout: float) -> bool:
    """Until `count` objects were seen Ready; False on timeout."""
    deadline = time.monotonic() + timeout
    while len(monitor.seen) < count:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


class Backend(Protocol):
    """A fresh cluster, started on entry and stopped on exit."""

    name: BackendName
    url: str

    def __enter__(self) -> Backend: ...
    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None: ...
    def harness(self) -> JsonClient:
        """A client for the harness (admin)."""
        ...

    def operator_kubeconfig(self, path: Path) -> Path:
        """The kubeconfig the operator runs with."""
        ...

    def minimal_args(self) -> list[str]:
        """How the minimal client reaches and authenticates to the API server."""
        ...

    def tally(self) -> Tally:
        """Requests so far by (client, verb, resource)."""
        ...

    def monitor(self) -> Monitor: ...
    def server_cpu(self) -> float:
        """CPU seconds the API server (and etcd) spent so far."""
        ...


# -- the emulator -----------------------------------------------------------------------------------


class StoreMonitor:
    """Scans the emulator's store every `interval` s (in its loop, no HTTP)."""

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
            if (str(k[0]), k[1]) not in seen and is_ready(obj)
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

    def __enter__(self) -> StoreMonitor:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def published(self, configmaps: Iterable[Key], kid: str) -> int:
        wanted = list(configmaps)

        def count(api: ApiServer) -> int:
            store = api.store[CONFIGMAPS]
            return sum(
                1 for key in wanted if kid in ((store.get(key) or {}).get("data") or {}).get("jwks.json", "")
            )

        return self.cluster.call(count)


class EmulatorBackend:
    """The test suite's emulator, in this process."""

    name: BackendName = "emulator"

    def __init__(self, work: Path) -> None:
        self.work = work
        self.cluster = BenchCluster(crds=load_crds(ROOT / "crds"))
        self.url = ""
        self._tid = 0

    def __enter__(self) -> EmulatorBackend:
        self.cluster.__enter__()
        self.url = self.cluster.url
        self._tid = self.cluster.call(lambda _: threading.get_native_id())
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.cluster.__exit__(t, e, tb)

    def harness(self) -> JsonClient:
        return JsonClient(self.url, HARNESS_AGENT)

    def operator_kubeconfig(self, path: Path) -> Path:
        return self.cluster.write_kubeconfig(path)

    def minimal_args(self) -> list[str]:
        return ["--server", self.url]

    def tally(self) -> Tally:
        return self.cluster.tally()

    def monitor(self) -> Monitor:
        return StoreMonitor(self.cluster)

    def server_cpu(self) -> float:
        return thread_cpu(self._tid)


# -- the real control plane ---------------------------------------------------------------------------


def backend(name: BackendName, work: Path) -> Backend:
    """A fresh cluster of that kind (enter it to start it)."""
    if name == "real":
        from benchmarks.real_backend import RealBackend  # builds nothing until entered

        return RealBackend(work)
    return EmulatorBackend(work)
