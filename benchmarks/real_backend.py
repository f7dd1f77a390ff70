"""The real control plane as a benchmark backend: tests/harness/control_plane.py's etcd +
kube-apiserver + kube-controller-manager; requests counted from the API server's audit log (by
User-Agent), readiness seen through a watch, the CPU of the API server and etcd processes. The operator
and the minimal client authenticate as deploy/'s ServiceAccount (so API priority and fairness treats
them as it would in a cluster)."""

from __future__ import annotations

import collections
import json
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml
from kubernetes import client, utils
from tests.harness.backend import OPERATOR_NAMESPACE, OPERATOR_SA, OPERATOR_USER
from tests.harness.control_plane import RealCluster
from tests.harness.k8s import load_crds
from tools.control_plane import assets

from benchmarks.backends import HARNESS_AGENT, ROOT, BackendName, Key, Monitor, is_ready
from benchmarks.emulator import Tally, client_of_agent
from benchmarks.procstat import usage
from benchmarks.rawhttp import HttpError, JsonClient
from jwks_operator.model.names import GROUP, MANAGED_SELECTOR, PLURAL, VERSION

AUDIT_POLICY = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived"],
    "rules": [{"level": "Metadata", "users": [OPERATOR_USER]}, {"level": "None"}],
}


class AuditTally:
    """Counts the audit log's requests by (client, verb, resource), reading only what is new."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.counts: Tally = collections.Counter()
        self._offset = 0
        self._lock = threading.Lock()

    def __call__(self) -> Tally:
        with self._lock:
            if self.path.exists():
                with self.path.open("rb") as log:
                    log.seek(self._offset)
                    for line in log:
                        if not line.endswith(b"\n"):
                            break  # still being written
                        self._offset += len(line)
                        self._count(json.loads(line))
            return collections.Counter(self.counts)

    def _count(self, event: dict[str, Any]) -> None:
        ref = event.get("objectRef") or {}
        resource = ref.get("resource")
        if not resource:
            return  # discovery and other non-resource URLs
        if ref.get("subresource"):
            resource += f"/{ref['subresource']}"
        self.counts[(client_of_agent(event.get("userAgent", "")), event["verb"], resource)] += 1


class WatchMonitor:
    """Watches every JwtSecret and our ConfigMaps (two streams, restarted where they broke off)."""

    def __init__(self, api: JsonClient) -> None:
        self.api = api
        self.seen: dict[Key, float] = {}
        self.jwks: dict[Key, str] = {}
        self._stop = threading.Event()
        self._opened = threading.Semaphore(0)
        self._threads = [
            threading.Thread(target=self._watch, args=(path, handle), daemon=True, name=f"watch-{name}")
            for name, path, handle in (
                ("jwtsecrets", f"/apis/{GROUP}/{VERSION}/{PLURAL}", self._jwtsecret),
                ("configmaps", f"/api/v1/configmaps?labelSelector={MANAGED_SELECTOR}", self._configmap),
            )
        ]

    def _jwtsecret(self, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        key = (meta["namespace"], meta["name"])
        if key not in self.seen and is_ready(obj):
            self.seen[key] = time.monotonic()

    def _configmap(self, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        self.jwks[(meta["namespace"], meta["name"])] = (obj.get("data") or {}).get("jwks.json", "")

    def _watch(self, path: str, handle: Callable[[dict[str, Any]], None]) -> None:
        first = True
        version = ""
        while not self._stop.is_set():
            try:
                if not version:
                    listed = self.api.request("GET", path)
                    for obj in listed["items"]:
                        handle(obj)
                    version = listed["metadata"]["resourceVersion"]
                sep = "&" if "?" in path else "?"
                for event in self.api.stream(
                    f"{path}{sep}watch=true&allowWatchBookmarks=true&resourceVersion={version}",
                    on_open=self._opened.release if first else None,
                ):
                    first = False
                    obj = event["object"]
                    if event["type"] == "ERROR":
                        version = ""  # 410 Gone: list again
                        break
                    version = obj["metadata"].get("resourceVersion", version)
                    if event["type"] in ("ADDED", "MODIFIED"):
                        handle(obj)
            except (HttpError, OSError):
                if self._stop.wait(0.5):
                    return

    def __enter__(self) -> WatchMonitor:
        for thread in self._threads:
            thread.start()
        for _ in self._threads:
            if not self._opened.acquire(timeout=60):
                raise RuntimeError("the benchmark's watches did not open")
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()  # the threads are daemons blocked in reads: left to die with the process

    def published(self, configmaps: Iterable[Key], kid: str) -> int:
        return sum(1 for key in configmaps if kid in self.jwks.get(key, ""))


class RealBackend:
    """etcd + kube-apiserver + kube-controller-manager built from source (tools/control_plane.py)."""

    name: BackendName = "real"

    def __init__(self, work: Path) -> None:
        self.work = Path(tempfile.mkdtemp(prefix="cluster-", dir=work))
        # The API server's default compaction interval (5 min), not the tests' 5 s; only the requests
        # of the ServiceAccount the operator (or the minimal client) runs as are audited.
        self.cluster = RealCluster(
            self.work, load_crds(ROOT / "crds"), compaction="5m", audit_policy=AUDIT_POLICY
        )
        self.url = ""
        self._sa_token = ""
        self._tally = AuditTally(self.work / "audit.log")

    def __enter__(self) -> RealBackend:
        self.cluster.__enter__()
        try:
            self.url = self.cluster.url
            api = self.cluster.api_client(self.work / "admin.kubeconfig")
            for manifest in ("namespace.yaml", "rbac.yaml"):
                for doc in yaml.safe_load_all((ROOT / "deploy" / manifest).read_text()):
                    if doc:
                        utils.create_from_dict(api, doc)  # type: ignore[no-untyped-call]
            core: Any = client.CoreV1Api(api)
            self._wait_for_service_account(core)
            body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                    "spec": {"expirationSeconds": 4 * 3600}}  # fmt: skip
            answer = core.create_namespaced_service_account_token(OPERATOR_SA, OPERATOR_NAMESPACE, body)
            self._sa_token = answer.status.token
        except BaseException:
            self.cluster.stop()
            raise
        return self

    @staticmethod
    def _wait_for_service_account(core: Any) -> None:
        deadline = time.monotonic() + 30
        while True:
            try:
                core.read_namespaced_service_account(OPERATOR_SA, OPERATOR_NAMESPACE)
                return
            except client.exceptions.ApiException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.cluster.stop()

    def harness(self) -> JsonClient:
        return JsonClient(
            self.url, HARNESS_AGENT, ca_file=str(self.work / "ca.crt"), token=self.cluster.token
        )

    def operator_kubeconfig(self, path: Path) -> Path:
        return self.cluster.service_account_kubeconfig(OPERATOR_NAMESPACE, OPERATOR_SA, path)

    def minimal_args(self) -> list[str]:
        token = self.work / "minimal.token"
        token.write_text(self._sa_token)
        token.chmod(0o600)
        return ["--server", self.url, "--api-ca", str(self.work / "ca.crt"), "--token-file", str(token)]

    def tally(self) -> Tally:
        return self._tally()

    def monitor(self) -> Monitor:
        return WatchMonitor(self.harness())

    def server_cpu(self) -> float:
        return sum(
            usage(self.cluster.processes[name].pid).cpu
            for name in ("kube-apiserver", "etcd")
            if name in self.cluster.processes
        )


def versions() -> str:
    """What the real control plane's binaries say they are, e.g. "Kubernetes v1.34.4, etcd 3.6.4"."""
    said = []
    for name, path in assets().items():
        out = subprocess.run([str(path), "--version"], capture_output=True, text=True, check=False)  # noqa: S603
        first = (
            (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr).strip() else name
        )
        said.append(first.replace("etcd Version:", "etcd").strip())
    return ", ".join(dict.fromkeys(said))
