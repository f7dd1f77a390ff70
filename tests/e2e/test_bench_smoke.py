"""`python -m benchmarks --quick` runs end to end: both profiles (realistic first), both tables each with
every column, all objects Ready, each rotation published. No timing is asserted (the machine may be
busy)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from benchmarks.report import STEADY_COLUMNS, SYNC_COLUMNS

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.e2e, pytest.mark.emulator_only]  # benchmarks run their own emulator


def rows(output: str, first_column: str) -> list[dict[str, str]]:
    """The rows of the Markdown table whose header starts with `first_column`, as dicts."""
    lines = [line for line in output.splitlines() if line.startswith("|")]
    headers = [i for i, line in enumerate(lines) if line.split("|")[1].strip() == first_column]
    assert headers, f"no table in:\n{output}"
    found: list[dict[str, str]] = []
    for start in headers:
        names = [c.strip() for c in lines[start].strip("|").split("|")]
        for line in lines[start + 2 :]:
            cells = [c.strip() for c in line.strip("|").split("|")]
            if cells[0] == first_column or len(cells) != len(names):
                break
            found.append(dict(zip(names, cells, strict=True)))
    return found


@pytest.mark.timeout(600)
def test_quick_benchmark_runs_and_reports_every_column() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=580,
        check=False,
    )
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr[-5000:]}"
    assert done.stdout.index("realistic profile") < done.stdout.index("stress profile"), done.stdout
    found = rows(done.stdout, "N")
    sync = [r for r in found if list(r) == list(SYNC_COLUMNS)]
    assert [(r["N"], r["Ready"]) for r in sync] == [("50", "50/50")] * 2, done.stdout  # both profiles
    steady = [r for r in found if list(r) == list(STEADY_COLUMNS)]
    assert len(steady) == 2, f"no steady-state tables in:\n{done.stdout}"
    assert all(value for row in steady for value in row.values())
    realistic, stress = steady
    assert realistic["forced s"] != "-"  # the rotation forced by the annotation, seen everywhere
    assert realistic["rotation s"] != "-"
    assert realistic["naive fetches/period"] == "-"  # the naive baseline: stress only
    assert (stress["forced s"], stress["rotation s"] != "-") == ("-", True)
    assert "Memory per tracked JwtSecret" in done.stdout
