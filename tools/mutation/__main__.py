"""`python -m tools.mutation [--gate] [--module NAME]... [-j N] [--fresh] [--survivors] [--list] [--kills ID]`

Mutates the security core (tools/mutation/scope.py), runs each mutant against its module's fast unit
tests, and prints per module: mutants, killed, survived, equivalent (equivalents.txt) and the score,
killed / (mutants - equivalent). With --gate, exits 1 unless every score is 100 %, naming each
surviving mutant (file:line, operator, the line as mutated, its id). --kills ID runs every test of
that mutant's module against it and lists those that fail (those that kill it).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from tools.mutation import results, runner, warm
from tools.mutation.operators import Site, sites
from tools.mutation.scope import ROOT, TARGETS, Target, pytest_args

MIN_TIMEOUT = 30.0  # seconds a mutant's tests may take, at least; else TIMEOUT_FACTOR x the baseline
TIMEOUT_FACTOR = 10.0


@dataclass
class Module:
    """One target's mutants and their verdicts."""

    target: Target
    source: str
    sites: list[Site]
    keys: dict[str, str]  # mutant id -> cache key
    verdicts: dict[str, str] = field(default_factory=dict)  # mutant id -> status (or "equivalent")

    def count(self, *statuses: str) -> int:
        return sum(1 for status in self.verdicts.values() if status in statuses)

    @property
    def score(self) -> float:
        judged = len(self.sites) - self.count("equivalent", runner.INVALID)
        return 100.0 * self.count(runner.KILLED, runner.TIMEOUT) / judged if judged else 100.0


def _module(target: Target) -> Module:
    source = (ROOT / target.path).read_text()
    found = sites(source, target.name, target.functions)
    source_hash = hashlib.sha256(source.encode()).hexdigest()
    test_hash = results.tests_hash(target)
    keys = {s.id: results.cache_key(source_hash, test_hash, s.id) for s in found}
    return Module(target, source, found, keys)


def _baselines(modules: Sequence[Module], workers: int) -> dict[str, float]:
    """Each target's tests against the unmutated module: they must pass; their time sets the timeout.
    The calls they make to the cached test helpers are then made here (warm.replay)."""
    results.CACHE.parent.mkdir(parents=True, exist_ok=True)
    calls = [str(results.CACHE.parent / f"calls-{n}.json") for n in range(len(modules))]
    jobs = [
        runner.Job(m.target, None, m.source, timeout=600.0, record_to=path)
        for m, path in zip(modules, calls, strict=True)
    ]
    seconds: dict[str, float] = {}
    for outcome in runner.run(jobs, workers):
        if outcome.status != runner.SURVIVED:
            args = " ".join(pytest_args(outcome.job.target))
            raise SystemExit(f"the tests of {outcome.job.target.name} fail unmutated: run pytest {args}")
        seconds[outcome.job.target.path] = outcome.seconds
    warm.replay(calls)
    return seconds


def evaluate(modules: Sequence[Module], workers: int, fresh: bool, survivors_only: bool = False) -> int:
    """Fill in every verdict, from the cache or by running; returns how many mutants were run.
    `survivors_only` (while writing tests): run only what survived last time, take the rest as it was."""
    equivalents = results.load_equivalents()
    cache = {} if fresh else results.load_cache()
    last = results.load_cache(results.LAST)
    todo: list[tuple[Module, Site]] = []
    for module in modules:
        for site in module.sites:
            if site.id in equivalents:
                module.verdicts[site.id] = "equivalent"
            elif module.keys[site.id] in cache:
                module.verdicts[site.id] = cache[module.keys[site.id]]
            elif survivors_only and last.get(site.id, runner.SURVIVED) != runner.SURVIVED:
                module.verdicts[site.id] = last[site.id]
            else:
                todo.append((module, site))
    if not todo:
        return 0
    started = time.monotonic()
    preloaded = warm.preload([m.target for m in modules])
    needed = list({id(m): m for m, _ in todo}.values())
    baseline = _baselines(needed, workers)
    print(f"{len(todo)} mutants to run ({preloaded} modules preloaded; baselines {_seconds(baseline)})")
    by_site = {id(site): module for module, site in todo}
    jobs = [
        runner.Job(m.target, s, m.source, max(MIN_TIMEOUT, TIMEOUT_FACTOR * baseline[m.target.path]))
        for m, s in todo
    ]
    cache = results.load_cache()
    for done, outcome in enumerate(runner.run(jobs, workers), 1):
        mutant = outcome.job.site
        if mutant is None:  # only baselines have none
            continue
        module = by_site[id(mutant)]
        module.verdicts[mutant.id] = outcome.status
        cache[module.keys[mutant.id]] = outcome.status
        last[mutant.id] = outcome.status
        if done % 25 == 0 or done == len(jobs):
            results.save_cache(cache)
            results.save_cache(last, results.LAST)
            elapsed = time.monotonic() - started
            print(f"  {done}/{len(jobs)} run, {elapsed:.0f} s", flush=True)
    return len(todo)


def _seconds(baseline: dict[str, float]) -> str:
    return ", ".join(f"{os.path.basename(path)} {s:.1f} s" for path, s in baseline.items())


COLUMNS = ("mutants", "killed", "survived", "equivalent")


def table(modules: Sequence[Module]) -> str:
    """module, mutants, killed (timeouts included), survived, equivalent, score; and the totals."""
    rows = [["module", *COLUMNS, "score"]]
    totals: Counter[str] = Counter()
    for m in modules:
        counts = {
            "mutants": len(m.sites),
            "killed": m.count(runner.KILLED, runner.TIMEOUT),
            "survived": m.count(runner.SURVIVED),
            "equivalent": m.count("equivalent"),
        }
        totals.update(counts)
        rows.append([m.target.name, *(str(counts[c]) for c in COLUMNS), f"{m.score:.1f} %"])
    judged = totals["mutants"] - totals["equivalent"]
    score = 100.0 * totals["killed"] / judged if judged else 100.0
    rows.append(["total", *(str(totals[c]) for c in COLUMNS), f"{score:.1f} %"])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(row[0].ljust(widths[0]) if i == 0 else row[i].rjust(widths[i]) for i in range(len(row)))
        for row in rows
    )


def survivors(modules: Sequence[Module]) -> list[str]:
    """One line per surviving mutant: file:line, operator, the line as mutated, and its id."""
    return [
        f"{m.target.path}:{s.line}  {s.operator}: {s.original}  ->  {s.mutated}  [{s.id}]"
        for m in modules
        for s in m.sites
        if m.verdicts.get(s.id) == runner.SURVIVED
    ]


def explain(modules: Sequence[Module], ids: Sequence[str]) -> int:
    """Run each named mutant against all its module's tests, on the terminal; 1 for an unknown id."""
    found = {s.id: (m, s) for m in modules for s in m.sites}
    unknown = [i for i in ids if i not in found]
    if unknown:
        print(f"no mutant {', '.join(unknown)} (python -m tools.mutation --list shows them)")
        return 1
    warm.preload([found[i][0].target for i in ids])
    for mutant in ids:
        module, site = found[mutant]
        print(
            f"\n{module.target.path}:{site.line}  {site.operator}: {site.original}  ->  {site.mutated}",
            flush=True,
        )
        job = runner.Job(module.target, site, module.source, timeout=600.0, explain=True)
        for outcome in runner.run([job], 1):
            print(f"{mutant}: {outcome.status}", flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.mutation", description=__doc__.split("\n\n")[1])
    parser.add_argument("--gate", action="store_true", help="exit 1 unless every score is 100 %%")
    parser.add_argument("--module", action="append", default=[], help="only targets whose path has NAME")
    cores = min(2, os.cpu_count() or 1)
    parser.add_argument("-j", "--jobs", type=int, default=cores, help="children at once (at most 2)")
    parser.add_argument("--fresh", action="store_true", help="ignore the cached verdicts (still updated)")
    parser.add_argument(
        "--survivors", action="store_true", help="run only the mutants that survived their last run"
    )
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("--kills", action="append", default=[], help="the tests that fail with mutant ID")
    args = parser.parse_args(argv)
    targets = [t for t in TARGETS if not args.module or any(name in t.path for name in args.module)]
    if not targets:
        parser.error(f"no target matches {args.module}")
    modules = [_module(t) for t in targets]
    if args.list:
        for m in modules:
            for s in m.sites:
                print(f"{m.target.path}:{s.line}  {s.operator}: {s.mutated}  [{s.id}]")
        return 0
    if args.kills:
        return explain(modules, args.kills)
    started = time.monotonic()
    if args.gate and args.survivors:
        parser.error("--gate judges every mutant: --survivors would take old verdicts")
    ran = evaluate(modules, max(1, min(args.jobs, 2)), args.fresh, args.survivors)
    print(f"{ran} mutants run in {time.monotonic() - started:.0f} s, the others from the cache")
    print(table(modules))
    stale = set(results.load_equivalents()) - {s.id for m in modules for s in m.sites}
    if stale and not args.module:
        print(f"note: {len(stale)} equivalents.txt entries match no mutant: {', '.join(sorted(stale))}")
    invalid = sum(m.count(runner.INVALID) for m in modules)
    if invalid:
        print(f"note: {invalid} mutants did not compile (left out of the scores): a bug of tools/mutation")
    pending = results.load_pending()
    lines = survivors(modules)
    unlisted = [line for line in lines if _id(line) not in pending]
    owed = [line for line in lines if _id(line) in pending]
    if owed:
        print(f"\n{len(owed)} surviving mutants owed a test (tools/mutation/pending.txt):")
        print("\n".join(owed))
    if unlisted:
        print(f"\n{len(unlisted)} surviving mutants:")
        print("\n".join(unlisted))
    judged = {s.id for m in modules for s in m.sites}
    killed = sorted(i for i in pending if i in judged and i not in {_id(line) for line in lines})
    if killed:
        print(f"\n{len(killed)} pending.txt entries are killed now: take them out: {', '.join(killed)}")
    if args.gate and (unlisted or (killed and not args.module)):
        print("\nmutation gate: FAILED (kill them with a test, or list a true equivalent in equivalents.txt)")
        return 1
    return 0


def _id(line: str) -> str:
    """The mutant id at the end of a survivors() line."""
    return line.rsplit("[", 1)[1].rstrip("]")


if __name__ == "__main__":
    sys.exit(main())
