"""CPU time and peak memory of a process, read from /proc (Linux; no psutil)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Usage:
    """User+system CPU seconds so far, peak resident set size (VmHWM) and resident set size now (VmRSS), in
    MiB."""

    cpu: float
    peak_rss_mib: float
    rss_mib: float = 0.0


def usage(pid: int) -> Usage:
    """The process's CPU seconds (user+sys, its own threads), VmHWM and VmRSS."""
    cpu = _cpu(Path(f"/proc/{pid}/stat").read_text())
    memory = {"VmHWM:": 0.0, "VmRSS:": 0.0}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        fields = line.split()
        if fields and fields[0] in memory:
            memory[fields[0]] = int(fields[1]) / 1024
    return Usage(cpu, memory["VmHWM:"], memory["VmRSS:"])


def thread_cpu_of(pid: int, tid: int) -> float:
    """CPU seconds (user+sys) of one thread of another process (its main thread: tid = pid)."""
    return _cpu(Path(f"/proc/{pid}/task/{tid}/stat").read_text())


def thread_cpu(tid: int) -> float:
    """CPU seconds (user+sys) of one thread of this process."""
    return _cpu(Path(f"/proc/self/task/{tid}/stat").read_text())


def _cpu(stat: str) -> float:
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "; fields[0] is field 3
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime: fields 14 and 15


def machine() -> dict[str, str]:
    """CPU model, logical cores, RAM and OS kernel, for the report."""
    model = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    ram = "unknown"
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    return {
        "CPU": model,
        "cores": str(os.cpu_count() or "unknown"),
        "RAM": ram,
        "kernel": os.uname().release,
    }
