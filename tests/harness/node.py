"""A real node beside the real control plane: containerd + runc (Debian's) and a kubelet, plus a
kube-scheduler, in the namespaces tests/harness/netns.py made.

The API server listens on NODE_IP (an address on the namespace's loopback), its certificate naming the
`kubernetes` Service's IP; with no kube-proxy, `expose()` writes a DNAT rule per Service port (the
namespace's own iptables). Pods get addresses from Debian's bridge CNI (cni0, in the namespace only).
Images come from OCI archives imported with `ctr -n k8s.io images import` (imagePullPolicy Never).
The kubelet's cgroups live under a cgroup root of this run's own, removed on stop.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from tools.node import NODE_ROOT, PAUSE_IMAGE

from tests.harness.control_plane import SERVICE_CIDR, ControlPlaneError, RealCluster
from tests.harness.operator import free_port
from tests.harness.tools import kubectl

NODE_IP = "10.87.0.1"
POD_CIDR = "10.88.0.0/16"
SERVICE_IP = "10.96.0.1"
NODE_NAME = "node"
CONTROLLERS = (
    "garbagecollector,namespace,serviceaccount,serviceaccount-token,deployment,replicaset,"
    "endpointslice,endpoint,root-ca-certificate-publisher-controller"
)
CGROUP_ROOT = Path("/sys/fs/cgroup")


class NodeCluster(RealCluster):
    """RealCluster on NODE_IP, with kube-scheduler, containerd and a kubelet (one node)."""

    address = NODE_IP  # the API server's address is the `kubernetes` Service's endpoint, reachable from Pods
    authorization = "Node,RBAC"
    controllers = CONTROLLERS  # Deployments and Service endpoints too

    def __init__(self, workdir: Path, crds: Sequence[Mapping[str, Any]] = (), **kw: Any) -> None:
        super().__init__(workdir, crds, **kw)
        built = NODE_ROOT / self.bins["kube-apiserver"].parent.name
        self.bins.update(
            {
                "kube-scheduler": built / "kube-scheduler",
                "kubelet": built / "kubelet",
                "containerd": Path("/usr/bin/containerd"),
            }
        )
        self.cgroup = f"jwks-node-{uuid.uuid4().hex[:8]}"
        self.socket = workdir / "containerd" / "containerd.sock"
        self.rules: list[list[str]] = []

    def __enter__(self) -> NodeCluster:
        super().__enter__()
        try:
            self._start_scheduler()
            self._start_containerd()
            self.import_image(NODE_ROOT / "images" / "pause.tar")
            self._start_kubelet()
            # Service addresses are routable from this namespace (its nat OUTPUT rules then apply).
            subprocess.run(["ip", "route", "add", SERVICE_CIDR, "dev", "lo"], check=True, capture_output=True)
            self.expose(SERVICE_IP, 443, NODE_IP, self.port)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the kubelet, every Pod, containerd, then the control plane; remove our cgroups."""
        self._stop("kubelet")
        self._stop_pods()
        self._stop("containerd")
        self._kill_leftovers()
        # The image store (about 600 MiB unpacked) goes; the logs stay for failures.
        shutil.rmtree(self.workdir / "containerd" / "root", ignore_errors=True)
        self._stop("kube-scheduler")
        super().stop()
        _remove_cgroups(self.cgroup)

    # -- control plane on NODE_IP ---------------------------------------------------------------------

    def _files(self) -> None:
        super()._files()
        serving = self._ca.issue_cert("127.0.0.1", NODE_IP, SERVICE_IP, "localhost", "kubernetes.default.svc")
        serving.cert_chain_pems[0].write_to_path(str(self.workdir / "serving.crt"))
        serving.private_key_pem.write_to_path(str(self.workdir / "serving.key"))

    def _start_scheduler(self) -> None:
        kubeconfig = self.write_kubeconfig(self.workdir / "scheduler.kubeconfig")
        self._spawn(
            "kube-scheduler",
            [f"--kubeconfig={kubeconfig}", "--leader-elect=false", "--secure-port=0"],
        )

    # -- containerd and the kubelet -------------------------------------------------------------------

    def _start_containerd(self) -> None:
        w = self.workdir
        cni = w / "cni"
        cni.mkdir(parents=True, exist_ok=True)
        (cni / "10-bridge.conflist").write_text(json.dumps(_cni_config(w / "cni-ipam")))
        cri = {
            "sandbox_image": PAUSE_IMAGE,
            "restrict_oom_score_adj": True,  # the VM refuses the sandbox's -998
            "enable_selinux": False,
            "containerd": {
                "snapshotter": "overlayfs",
                "default_runtime_name": "runc",
                "runtimes": {
                    "runc": {
                        "runtime_type": "io.containerd.runc.v2",
                        "options": {"BinaryName": "/usr/sbin/runc", "SystemdCgroup": False},
                    }
                },
            },
            "cni": {"bin_dir": "/usr/lib/cni", "conf_dir": str(cni)},
        }
        config = {
            "version": 2,
            "root": str(w / "containerd" / "root"),
            "state": str(w / "containerd" / "state"),
            "grpc": {"address": str(self.socket)},
            "ttrpc": {"address": str(w / "containerd" / "ttrpc.sock")},
            "plugins": {
                "io.containerd.grpc.v1.cri": cri,
                "io.containerd.internal.v1.opt": {"path": str(w / "containerd" / "opt")},
            },
        }
        path = w / "containerd.toml"
        path.write_text(_toml(config))
        self._spawn("containerd", [f"--config={path}"])
        self._wait("containerd", lambda: self.ctr("version", check=False).returncode == 0, 30)

    def ctr(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """`ctr -n k8s.io ARGS` on this node's containerd."""
        done = subprocess.run(
            ["ctr", f"--address={self.socket}", "-n", "k8s.io", *args],
            capture_output=True, text=True, check=False, timeout=300,
        )  # fmt: skip
        if check and done.returncode:
            raise ControlPlaneError(f"ctr {' '.join(args[:3])} failed: {done.stderr.strip()}")
        return done

    def import_image(self, archive: Path) -> None:
        """Import an OCI archive into the node's image store (the kubelet's Pods use it, never a registry)."""
        self.ctr("images", "import", "--no-unpack=false", str(archive))

    def _make_cgroups(self) -> None:
        """This run's cgroup root in every hierarchy (cpuset's needs its parent's cpus and mems)."""
        for hierarchy in CGROUP_ROOT.iterdir():
            if not (hierarchy / "cgroup.procs").exists() or hierarchy.name == "unified":
                continue
            (hierarchy / self.cgroup).mkdir(exist_ok=True)
            if hierarchy.name == "cpuset":
                for name in ("cpuset.cpus", "cpuset.mems"):
                    (hierarchy / self.cgroup / name).write_text((hierarchy / name).read_text())

    def _start_kubelet(self) -> None:
        w = self.workdir
        self._make_cgroups()
        (w / "resolv.conf").write_text("nameserver 127.0.0.1\n")
        config = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": False}},
            "authorization": {"mode": "AlwaysAllow"},
            "address": NODE_IP,
            "port": free_port(),
            "readOnlyPort": 0,
            "healthzPort": 0,
            "cgroupDriver": "cgroupfs",
            "cgroupRoot": f"/{self.cgroup}",
            "failCgroupV1": False,
            "failSwapOn": False,
            "containerRuntimeEndpoint": f"unix://{self.socket}",
            "resolvConf": str(w / "resolv.conf"),
            "evictionHard": {"memory.available": "1Mi", "nodefs.available": "0%", "imagefs.available": "0%"},
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "syncFrequency": "5s",
            "fileCheckFrequency": "5s",
            "nodeStatusUpdateFrequency": "5s",
            "localStorageCapacityIsolation": False,
            "protectKernelDefaults": False,
            "serializeImagePulls": False,
        }
        path = w / "kubelet.yaml"
        path.write_text(yaml.safe_dump(config))
        kubeconfig = self.write_kubeconfig(w / "kubelet.kubeconfig")
        self._spawn(
            "kubelet",
            [
                f"--config={path}",
                f"--kubeconfig={kubeconfig}",
                f"--root-dir={w / 'kubelet'}",
                f"--hostname-override={NODE_NAME}",
                f"--node-ip={NODE_IP}",
                "--v=1",
            ],
        )
        self._wait("kubelet", self._node_ready, 120)
        # The node lifecycle controller would lift the kubelet's registration taint; it does not run here.
        kubectl(
            kubeconfig, "taint", "nodes", NODE_NAME, "node.kubernetes.io/not-ready:NoSchedule-", check=False
        )

    def _node_ready(self) -> bool:
        try:
            with self.open(f"/api/v1/nodes/{NODE_NAME}") as answer:
                node = json.load(answer)
        except OSError:
            return False
        conditions = node.get("status", {}).get("conditions", [])
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    # -- Services without kube-proxy ------------------------------------------------------------------

    def expose(self, address: str, port: int, target: str, target_port: int) -> None:
        """DNAT `address:port` to `target:target_port` (from Pods and from this namespace)."""
        for chain in ("PREROUTING", "OUTPUT"):
            rule = ["-t", "nat", "-A", chain, "-d", f"{address}/32", "-p", "tcp", "--dport", str(port),
                    "-j", "DNAT", "--to-destination", f"{target}:{target_port}"]  # fmt: skip
            subprocess.run(["iptables", *rule], check=True, capture_output=True)
            self.rules.append(rule)

    def unexpose_all(self) -> None:
        """Remove every rule `expose` wrote."""
        while self.rules:
            rule = self.rules.pop()
            subprocess.run(["iptables", *["-D" if a == "-A" else a for a in rule]], check=False)

    # -- stop -----------------------------------------------------------------------------------------

    def _stop_pods(self) -> None:
        if self.processes.get("containerd") is None or not self.socket.exists():
            return
        for task in self.ctr("tasks", "ls", "-q", check=False).stdout.split():
            self.ctr("tasks", "kill", "-s", "SIGKILL", task, check=False)
            _wait_until(lambda t=task: t not in self._running_tasks(), 10)  # type: ignore[misc]
            self.ctr("tasks", "delete", task, check=False)

    def _running_tasks(self) -> str:
        return self.ctr("tasks", "ls", check=False).stdout

    def _started_here(self) -> Iterator[tuple[int, bytes]]:
        """(pid, command line) of each running process whose command line names this workdir."""
        mark = str(self.workdir).encode()
        for pid in _pids():
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if mark in cmdline and pid != os.getpid():
                yield pid, cmdline

    def _kill_leftovers(self) -> None:
        """SIGKILL every process whose command line names this workdir (containerd's shims)."""
        for pid, _ in self._started_here():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def leftovers(self) -> list[str]:
        """Command lines of processes still running that this node started (for the tests' checks)."""
        return [cmdline.replace(b"\0", b" ").decode(errors="replace") for _, cmdline in self._started_here()]


def _pids() -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]


def _wait_until(check: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return False


def cgroup_dirs(name: str) -> list[Path]:
    """This run's cgroup directories (one per controller hierarchy that has it)."""
    return [d / name for d in CGROUP_ROOT.iterdir() if (d / name).is_dir()] if CGROUP_ROOT.is_dir() else []


def _remove_cgroups(name: str) -> None:
    """Kill what is left in this run's cgroups and remove them, deepest first."""
    for top in cgroup_dirs(name):
        dirs = sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts))
        dirs.append(top)
        for d in dirs:
            procs = d / "cgroup.procs"
            for pid in procs.read_text().split() if procs.exists() else []:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGKILL)
        for d in dirs:
            _wait_until(lambda d=d: _rmdir(d), 10)  # type: ignore[misc]


def _rmdir(path: Path) -> bool:
    try:
        path.rmdir()
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return True


def _cni_config(ipam_dir: Path) -> dict[str, Any]:
    return {
        "cniVersion": "0.4.0",
        "name": "jwks-node",
        "plugins": [
            {
                "type": "bridge",
                "bridge": "cni0",
                "isGateway": True,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": POD_CIDR}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": str(ipam_dir),
                },
            }
        ],
    }


def _toml(value: Mapping[str, Any], prefix: str = "") -> str:
    """A small TOML writer for containerd's config: scalars first, then tables."""
    lines, tables = [], []
    for key, item in value.items():
        if isinstance(item, Mapping):
            tables.append((key, item))
        else:
            lines.append(f"{key} = {json.dumps(item)}")
    out = "\n".join(lines) + "\n" if lines else ""
    for key, item in tables:
        name = (
            f"{prefix}.{json.dumps(key) if '.' in key else key}"
            if prefix
            else (json.dumps(key) if "." in key else key)
        )
        out += f"\n[{name}]\n" + _toml(item, name)
    return out
