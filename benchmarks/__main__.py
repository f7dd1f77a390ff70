"""`python -m benchmarks [--backend emulator|real] [--profile-name realistic stress]`: N = 100, 1000, 10000
under each workload profile (both by default, the realistic one first); prints the tables and writes the
backend's sections of docs/performance.md. `--quick`: N = 50 only, writes nothing (a smoke test)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from benchmarks.backends import ROOT
from benchmarks.bench import run
from benchmarks.profiles import DEFAULT, PROFILES, select
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
    parser.add_argument(
        "--profile-name",
        nargs="+",
        choices=tuple(PROFILES),
        default=list(DEFAULT),
        help="workload profiles (default: realistic stress): see benchmarks/profiles.py",
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
    profiles = select(args.profile_name)
    by_profile: dict[str, list[Result]] = {p.name: [] for p in profiles}

    def progress(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    for n in sizes:
        for result in run(n, settings, profiles, progress):
            by_profile[result.profile.name].append(result)
            print(f"{result.profile.name} profile\n\n{tables([result])}", flush=True)
    runs = [(replace(settings, profile=p), by_profile[p.name]) for p in profiles]
    if len(sizes) > 1:
        for run_settings, results in runs:
            print(f"{run_settings.profile.name} profile\n\n{tables(results)}", flush=True)
    if not (args.quick or args.no_write):
        previous = args.output.read_text() if args.output.exists() else ""
        args.output.write_text(document(runs, previous, versions() if settings.backend == "real" else ""))
        print(f"wrote {args.output}", file=sys.stderr)
    every = [r for _, results in runs for r in results]
    return 0 if all(r.latency and r.latency.ready == r.n for r in every) else 1


if __name__ == "__main__":
    sys.exit(main())
