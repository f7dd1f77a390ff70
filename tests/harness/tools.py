"""The real `kubectl` and `helm` (from .tools/bin, installed there on first use by tools/install_tools.py)."""

from __future__ import annotations

import functools
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@functools.cache
def tool(name: str) -> Path:
    """helm or kubectl from .tools/bin, installed there on first use (tools/install_tools.py)."""
    subprocess.run(
        [sys.executable, str(ROOT / "tools" / "install_tools.py")], check=True, capture_output=True, text=True
    )
    return ROOT / ".tools" / "bin" / name


def run(
    name: str, *args: str, stdin: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run helm or kubectl; the caller checks the return code."""
    return subprocess.run(
        [str(tool(name)), *args], input=stdin, capture_output=True, text=True, check=False, timeout=timeout
    )


def kubectl(kubeconfig: Path, *args: str, stdin: str | None = None, check: bool = True) -> str:
    """`kubectl --kubeconfig K ARGS`; its stdout, or AssertionError with stderr when it fails and `check`."""
    result = run("kubectl", "--kubeconfig", str(kubeconfig), *args, stdin=stdin)
    if check and result.returncode:
        raise AssertionError(
            f"kubectl {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}"
        )
    return result.stdout + ("" if check else result.stderr)
