"""A real Kubernetes control plane on loopback: etcd, kube-apiserver and kube-controller-manager.

Started like envtest does (binaries from KUBEBUILDER_ASSETS or built by tools/control_plane.py), plus
what envtest lacks: RBAC authorization, a static admin token, a service-account signing key (so the
TokenRequest API works and the operator can run as the chart's ServiceAccount), an audit log (the
requests each client made, for RBAC checks), a short etcd compaction interval (watch 410s happen), and
kube-controller-manager with the garbage collector, namespace and service-account controllers.

Same interface as tests/harness/k8s/'s EmulatedCluster: a context manager with `url`,
`write_kubeconfig(path)` and `api_client(path)`, CRDs installed and Established on entry. Ports are
picked free; every process logs to `workdir`, which is kept (pytest's tmp retention) for failures.
"""

from __future__ import annotations

import base64
import ctypes
import json
import signal
import ssl
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import trustme
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from tools.control_plane import assets

from tests.harness.operator import free_port

Obj = dict[str, Any]
ADMIN = "admin"
CONTROLLERS = "garbagecollector,namespace,serviceaccount,serviceaccount-token"
SERVICE_CIDR = "10.96.0.0/16"  # Service addresses (the node tier routes them inside its namespace)
AUDIT_POLICY = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived"],
    "rules": [
        {"level": "None", "users": ["system:apiserver"]},
        {"level": "None", "users": ["system:kube-controller-manager"], "verbs": ["get", "list", "watch"]},
        {"level": "None", "nonResourceURLs": ["/readyz*", "/healthz*", "/livez*"]},
        {"level": "Metadata"},
    ],
}


@dataclass(frozen=True)
class Request:
    """One audited request: who made it, with which verb, on what, and the answer's code."""

    user: str
    user_agent: str
    verb: str
    group: str
    resource: str  # plural, with "/subresource" when there is one
    namespace: str
    name: str
    uri: str
    code: int
    decision: str  # the authorizer's: "allow", "forbid", or "" (not authorized: e.g. authentication failed)


class ControlPlaneError(RuntimeError):
    """The control plane did not start; the message names the process and ends with its log."""


class RealCluster:
    """etcd + kube-apiserver + kube-controller-manager, each a child process, on loopback ports."""

    address = "127.0.0.1"  # the API server's bind and advertise address
    authorization = "RBAC"
    controllers = CONTROLLERS

    def __init__(
        self,
        workdir: Path,
        crds: Sequence[Mapping[str, Any]] = (),
        *,
        compaction: str = "5s",
        audit_policy: Mapping[str, Any] = AUDIT_POLICY,
    ) -> None:
        self.workdir = workdir
        self.crds = list(crds)
        self.compaction = compaction
        self.audit_policy = audit_policy
        self.bins = assets()
        self.token = uuid.uuid4().hex
        self._controller_token = uuid.uuid4().hex
        self.port = 0
        self.url = ""
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self._ca = trustme.CA()
        self.ca_pem = self._ca.cert_pem.bytes()

    # -- start and stop -----------------------------------------------------------------------------

    def __enter__(self) -> RealCluster:
        try:
            self._files()
            self._start_etcd()
            self.start_apiserver()
            # CRDs first: the controller manager's REST mapper sees them at once (it re-reads
            # discovery every 30 s, so a CRD created later is garbage-collected only after that).
            self.install(self.crds)
            self._start_controller_manager()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def stop(self) -> None:
        """SIGTERM every process (controller manager, API server, then etcd), SIGKILL after 10 s."""
        for name in ("kube-controller-manager", "kube-apiserver", "etcd"):
            self._stop(name)

    def _stop(self, name: str) -> None:
        proc = self.processes.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def _files(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        serving = self._ca.issue_cert("127.0.0.1", "localhost", "kubernetes.default.svc")
        serving.cert_chain_pems[0].write_to_path(str(self.workdir / "serving.crt"))
        serving.private_key_pem.write_to_path(str(self.workdir / "serving.key"))
        self._ca.cert_pem.write_to_path(str(self.workdir / "ca.crt"))
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        (self.workdir / "sa.key").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            )
        )
        (self.workdir / "sa.pub").write_bytes(
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        (self.workdir / "tokens.csv").write_text(
            f'{self.token},{ADMIN},{ADMIN}-uid,"system:masters"\n'
            f'{self._controller_token},system:kube-controller-manager,kcm-uid,"system:masters"\n'
        )
        (self.workdir / "audit-policy.yaml").write_text(yaml.safe_dump(dict(self.audit_policy)))
        for secret in ("serving.key", "sa.key", "tokens.csv"):
            (self.workdir / secret).chmod(0o600)

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        with (self.workdir / f"{name}.log").open("ab") as log:
            proc = subprocess.Popen(  # in our process group, and killed if this process dies
                [str(self.bins[name]), *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            )
        self.processes[name] = proc
        return proc

    def log(self, name: str, tail: int = 40) -> str:
        """The last lines a process printed."""
        path = self.workdir / f"{name}.log"
        lines = path.read_text(errors="replace").splitlines() if path.exists() else []
        return "\n".join(lines[-tail:])

    def _wait(self, name: str, ready: Any, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            proc = self.processes[name]
            if proc.poll() is not None:
                raise ControlPlaneError(f"{name} exited with {proc.returncode}:\n{self.log(name)}")
            if ready():
                return
            time.sleep(0.1)
        raise ControlPlaneError(f"{name} was not ready in {timeout:.0f} s:\n{self.log(name)}")

    def _start_etcd(self) -> None:
        client_port, peer_port = free_port(), free_port()
        self.etcd_url = f"http://127.0.0.1:{client_port}"
        peer = f"http://127.0.0.1:{peer_port}"
        self._spawn(
            "etcd",
            [
                "--name=etcd",
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls={self.etcd_url}",
                f"--advertise-client-urls={self.etcd_url}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=etcd={peer}",
                "--unsafe-no-fsync",  # a throw-away store: no fsync on every write
                "--log-level=warn",
            ],
        )
        self._wait("etcd", lambda: _get(f"{self.etcd_url}/health") == 200, 30)

    def start_apiserver(self) -> None:
        """Start (or restart, keeping its port and etcd's data) the API server; wait for /readyz."""
        self.port = self.port or free_port()
        self.url = f"https://{self.address}:{self.port}"
        w = self.workdir
        args = [
            f"--etcd-servers={self.etcd_url}",
            f"--etcd-compaction-interval={self.compaction}",
            f"--bind-address={self.address}",
            f"--advertise-address={self.address}",
            f"--secure-port={self.port}",
            f"--cert-dir={w / 'certs'}",
            f"--tls-cert-file={w / 'serving.crt'}",
            f"--tls-private-key-file={w / 'serving.key'}",
            f"--client-ca-file={w / 'ca.crt'}",
            f"--token-auth-file={w / 'tokens.csv'}",
            f"--authorization-mode={self.authorization}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={w / 'sa.pub'}",
            f"--service-account-signing-key-file={w / 'sa.key'}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            f"--audit-policy-file={w / 'audit-policy.yaml'}",
            f"--audit-log-path={w / 'audit.log'}",
            "--audit-log-format=json",
            "--audit-log-mode=blocking",
            "--audit-log-maxbackup=0",
            "--endpoint-reconciler-type=none",
        ]
        self._spawn("kube-apiserver", args)
        self._wait("kube-apiserver", lambda: self._get("/readyz") == 200, 90)

    def restart_apiserver(self) -> None:
        """Stop the API server (every watch breaks) and start it again on the same port and data."""
        self._stop("kube-apiserver")
        self.start_apiserver()

    def _start_controller_manager(self) -> None:
        kubeconfig = self._kubeconfig(self.workdir / "kcm.kubeconfig", self._controller_token)
        self._spawn(
            "kube-controller-manager",
            [
                f"--kubeconfig={kubeconfig}",
                f"--controllers={self.controllers}",
                f"--service-account-private-key-file={self.workdir / 'sa.key'}",
                f"--root-ca-file={self.workdir / 'ca.crt'}",
                "--use-service-account-credentials=false",
                "--leader-elect=false",
                "--secure-port=0",
                "--concurrent-gc-syncs=5",
            ],
        )
        # Ready when the service-account controller has made the default namespace's ServiceAccount.
        self._wait(
            "kube-controller-manager",
            lambda: self._get("/api/v1/namespaces/default/serviceaccounts/default") == 200,
            60,
        )

    def _get(self, path: str) -> int:
        return _get(self.url + path, token=self.token, ca=self.ca_pem)

    def open(self, path: str, timeout: float = 5) -> Any:
        """A GET of `path` as the admin (a response to use as a context manager; HTTPError on 4xx/5xx)."""
        return _open(self.url + path, token=self.token, ca=self.ca_pem, timeout=timeout)

    # -- clients ------------------------------------------------------------------------------------

    def _kubeconfig(self, path: Path, token: str, name: str = "real") -> Path:
        ca = base64.b64encode(self.ca_pem).decode()
        path.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "current-context": name,
                    "clusters": [
                        {"name": name, "cluster": {"server": self.url, "certificate-authority-data": ca}}
                    ],
                    "users": [{"name": name, "user": {"token": token}}],
                    "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
                }
            )
        )
        return path

    def write_kubeconfig(self, path: Path) -> Path:
        """A kubeconfig for the cluster admin (group system:masters)."""
        return self._kubeconfig(path, self.token)

    def api_client(self, path: Path) -> client.ApiClient:
        api: client.ApiClient = config.new_client_from_config(str(self.write_kubeconfig(path)))  # type: ignore[no-untyped-call]
        return api

    def service_account_kubeconfig(self, namespace: str, name: str, path: Path, hours: int = 4) -> Path:
        """A kubeconfig that authenticates as a ServiceAccount, with a token from the TokenRequest API."""
        core: Any = client.CoreV1Api(self.api_client(path.with_suffix(".admin")))
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                "spec": {"expirationSeconds": hours * 3600}}  # fmt: skip
        answer = core.create_namespaced_service_account_token(name, namespace, body)
        return self._kubeconfig(path, answer.status.token, name=f"{namespace}-{name}")

    def install(self, crds: Sequence[Mapping[str, Any]], timeout: float = 30) -> None:
        """Create (or replace) CRDs and wait until each is Established."""
        ext: Any = client.ApiextensionsV1Api(self.api_client(self.workdir / "admin.kubeconfig"))
        for crd in crds:
            try:
                ext.create_custom_resource_definition(crd)
            except ApiException as exc:
                if exc.status != 409:
                    raise
        for crd in crds:
            name = crd["metadata"]["name"]
            deadline = time.monotonic() + timeout
            while not _established(ext.read_custom_resource_definition(name)):
                if time.monotonic() > deadline:
                    raise ControlPlaneError(f"CRD {name} not Established in {timeout} s")
                time.sleep(0.1)

    def requests(self) -> Iterator[Request]:
        """Every audited request so far (admin and controller-manager traffic included)."""
        path = self.workdir / "audit.log"
        if not path.exists():
            return
        with path.open() as lines:
            for line in lines:
                if not line.endswith("\n"):
                    return  # the API server is still writing this one
                event = json.loads(line)
                ref = event.get("objectRef") or {}
                resource = ref.get("resource", "") + (
                    f"/{ref['subresource']}" if ref.get("subresource") else ""
                )
                yield Request(
                    user=event["user"].get("username", ""),
                    user_agent=event.get("userAgent", ""),
                    verb=event["verb"],
                    group=ref.get("apiGroup", ""),
                    resource=resource,
                    namespace=ref.get("namespace", ""),
                    name=ref.get("name", ""),
                    uri=event["requestURI"],
                    code=(event.get("responseStatus") or {}).get("code", 0),
                    decision=(event.get("annotations") or {}).get("authorization.k8s.io/decision", ""),
                )


def _die_with_parent() -> None:
    """In the child before exec (Linux): SIGTERM when the test process dies, however it dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _established(crd: Any) -> bool:
    conditions = (crd.status.conditions if crd.status else None) or []
    return any(c.type == "Established" and c.status == "True" for c in conditions)


def _open(url: str, *, token: str = "", ca: bytes | None = None, timeout: float = 2) -> Any:
    """urlopen with our CA and bearer token (when given)."""
    context = ssl.create_default_context(cadata=ca.decode()) if ca else None
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    return urllib.request.urlopen(request, timeout=timeout, context=context)


def _get(url: str, *, token: str = "", ca: bytes | None = None) -> int:
    """The status of a GET (0 when nothing answers)."""
    try:
        with _open(url, token=token, ca=ca) as response:
            code: int = response.status
            return code
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0
