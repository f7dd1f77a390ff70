"""`python -m benchmarks [--backend emulator|real]`: N = 100, 1000, 10000; prints the tables and writes
the backend's section of docs/performance.md. `--quick`: N = 50 only, writes nothing (a smoke test)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from benchmarks.backends import ROOT
from benchmarks.bench import run
from benchmarks.real_backend import versions
from benchmarks.report import document, tables
from benchmarks.results import Result, Settings

SIZES = (100, 1000, 10000)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument(
        "--backend",
        choices=("emulator", "real"),
        default="emulator",
        help="the test emulator (default), or a real control plane built from source (make control-plane)",
    )
    parser.add_argument("--quick", action="store_true", help="N=50 only, 3 steady periods, write nothing")
    parser.add_argument("--sizes", type=int, nargs="+", help=f"object counts (default {SIZES})")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "performance.md")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--concurrency", type=int, default=8, help="the operator's --concurrency")
    parser.add_argument("--profile", type=Path, help="run the operator under cProfile, .prof files here")
    args = parser.parse_args(argv)
    sizes = args.sizes or ((50,) if args.quick else SIZES)
    settings = Settings(
        steady_periods=3 if args.quick else 5,
        concurrency=args.concurrency,
        profile_dir=args.profile,
        backend=args.backend,
    )
    results: list[Result] = []
    for n in sizes:
        results.append(run(n, settings, progress=lambda text: print(text, file=sys.stderr, flush=True)))
        print(tables(results[-1:]), flush=True)
    if len(results) > 1:
        print(tables(results), flush=True)
    if not (args.quick or args.no_write):
        previous = args.output.read_text() if args.output.exists() else ""
        args.output.write_text(
            document(results, settings, previous, versions() if settings.backend == "real" else "")
        )
        print(f"wrote {args.output}", file=sys.stderr)
    return 0 if all(r.latency and r.latency.ready == r.n for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
