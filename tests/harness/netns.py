"""The node tier's own network and mount namespaces, and the host settings it must leave as it found.

`isolate()` moves this (single-threaded) test process into a new network namespace and a new private
mount namespace; every child (API server, containerd, kubelet, the Pods' sandboxes) inherits them, so
every Pod, bridge, route, iptables rule and per-network sysctl (ip_forward) exists only there and
vanishes with the last process. In the mount namespace, tmpfs over /run and /var/log hold containerd's
shim sockets, the Pods' network namespaces and logs; and the kubelet's kernel tunables
(kernel.panic, kernel.panic_on_oops, vm.overcommit_memory...) are files holding the values it wants,
bound over /proc/sys, so it reads them as set and never writes the host's.

`host_settings()` reads, from the host's own namespaces, what the tier could change: those sysctls,
the network interfaces, and the iptables rules; the tier asserts them equal before and after.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

CLONE_NEWNS = 0x00020000
CLONE_NEWNET = 0x40000000
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
# What the kubelet's container manager sets (setupKernelTunables, protectKernelDefaults false).
KUBELET_TUNABLES = {
    "vm/overcommit_memory": "1",
    "vm/panic_on_oom": "0",
    "kernel/panic": "10",
    "kernel/panic_on_oops": "1",
    "kernel/keys/root_maxkeys": "1000000",
    "kernel/keys/root_maxbytes": "25000000",
}
HOST_SYSCTLS = (*KUBELET_TUNABLES, "net/ipv4/ip_forward", "net/bridge/bridge-nf-call-iptables")
_libc = ctypes.CDLL(None, use_errno=True)


class NamespaceError(RuntimeError):
    """The tier could not make its namespaces (it needs root and a single-threaded process)."""


@dataclass(frozen=True)
class Host:
    """Handles on the host's namespaces, kept open while the tier runs in its own."""

    net_fd: int
    mnt_fd: int

    def run(self, *command: str) -> str:
        """Run `command` in the host's network and mount namespaces; its stdout."""
        pid = os.getpid()
        done = subprocess.run(
            ["nsenter", f"--net=/proc/{pid}/fd/{self.net_fd}", f"--mount=/proc/{pid}/fd/{self.mnt_fd}",
             "--", *command],
            capture_output=True, text=True, check=True, pass_fds=(self.net_fd, self.mnt_fd),
        )  # fmt: skip
        return done.stdout


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise NamespaceError(f"node tier: {what} failed: {os.strerror(errno)}")


def _mount(source: str, target: str, fstype: str | None, flags: int) -> None:
    _check(
        _libc.mount(source.encode(), target.encode(), fstype.encode() if fstype else None, flags, None),
        f"mount {target}",
    )


def isolate(workdir: Path, node_ip: str) -> Host:
    """Enter new network and mount namespaces (see the module docstring); the host's handles."""
    if os.geteuid() != 0:
        raise NamespaceError("node tier: needs root (namespaces, containerd, kubelet)")
    if threading.active_count() != 1:
        raise NamespaceError("node tier: the test process must be single-threaded to change namespaces")
    host = Host(os.open("/proc/self/ns/net", os.O_RDONLY), os.open("/proc/self/ns/mnt", os.O_RDONLY))
    _check(_libc.unshare(CLONE_NEWNET | CLONE_NEWNS), "unshare(network, mount)")
    _mount("none", "/", None, MS_REC | MS_PRIVATE)  # nothing mounted here reaches the host
    for path in ("/run", "/var/log"):
        _mount("tmpfs", path, "tmpfs", 0)
    Path("/var/log/pods").mkdir()
    tunables = workdir / "tunables"
    tunables.mkdir(parents=True, exist_ok=True)
    for name, value in KUBELET_TUNABLES.items():
        target = Path("/proc/sys") / name
        if target.exists() and target.read_text().strip() != value:
            holder = tunables / name.replace("/", ".")
            holder.write_text(f"{value}\n")
            _mount(str(holder), str(target), None, MS_BIND)
    for command in (["ip", "link", "set", "lo", "up"], ["ip", "addr", "add", f"{node_ip}/32", "dev", "lo"]):
        subprocess.run(command, check=True, capture_output=True)
    return host


def host_settings(host: Host | None = None) -> dict[str, str]:
    """The host's sysctls of HOST_SYSCTLS, its interfaces and iptables rules (from `host`'s namespaces)."""

    def run(*command: str) -> str:
        if host is not None:
            return host.run(*command)
        return subprocess.run(command, capture_output=True, text=True, check=True).stdout

    settings = {
        name: run("cat", f"/proc/sys/{name}").strip()
        for name in HOST_SYSCTLS
        if Path("/proc/sys", name).exists()
    }
    settings["interfaces"] = " ".join(
        sorted(line.split(":")[1].strip().split("@")[0] for line in run("ip", "-o", "link").splitlines())
    )
    for table in ("filter", "nat"):
        rules = run("iptables", "-t", table, "-S") if _has_iptables() else ""
        settings[f"iptables-{table}"] = rules
    return settings


def _has_iptables() -> bool:
    return any(Path(d, "iptables").exists() for d in ("/usr/sbin", "/sbin"))
