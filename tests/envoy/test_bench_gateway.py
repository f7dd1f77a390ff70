"""`python -m benchmarks.gateway --quick` runs end to end: one rotation reaches both gateways. No time is
asserted (the machine may be busy)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from benchmarks.gateway import COLUMNS

from tests.harness import ROOT


@pytest.mark.timeout(300)
def test_the_gateway_rotation_benchmark_runs() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.gateway", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr[-5000:]}"
    rows = [line.strip("|").split("|") for line in done.stdout.splitlines() if line.startswith("| ")]
    assert [c.strip() for c in rows[0]] == list(COLUMNS)
    assert [(r[0].strip(), r[1].strip()) for r in rows[2:]] == [("istio", "1"), ("envoy-gateway", "1")]
