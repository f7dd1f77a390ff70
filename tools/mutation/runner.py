"""Run mutants: each in a child forked from a warm process (tools.mutation.warm: what the tests import
is imported already, never the mutated modules), the mutated module compiled in memory and found first
on sys.meta_path, against only its target's tests (pytest -x: the first failure kills it). At most
`workers` children at a time; one past its timeout is killed with its process group."""

from __future__ import annotations

import contextlib
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from types import CodeType, ModuleType
from typing import NoReturn

import pytest

from tools.mutation import warm
from tools.mutation.operators import Site, mutated_tree
from tools.mutation.scope import ROOT, Target, pytest_args

KILLED, SURVIVED, TIMEOUT, INVALID = "killed", "survived", "timeout", "invalid"
_INVALID_EXIT = 97  # the mutant did not compile


@dataclass(frozen=True)
class Job:
    """One run: a target's tests against one mutant (None: the module as it is, the baseline)."""

    target: Target
    site: Site | None
    source: str
    timeout: float
    record_to: str | None = None  # a baseline's file for the cached calls of the test helpers (warm)
    explain: bool = False  # every test run and the failures listed on the terminal (--kills)


@dataclass(frozen=True)
class Outcome:
    job: Job
    status: str  # KILLED, SURVIVED, TIMEOUT or INVALID; for a baseline, SURVIVED means the tests pass
    seconds: float


class _Loader(importlib.abc.Loader):
    def __init__(self, code: CodeType) -> None:
        self.code = code

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return None

    def exec_module(self, module: ModuleType) -> None:
        exec(self.code, module.__dict__)  # noqa: S102 - the mutated module's own code


class MutantFinder(importlib.abc.MetaPathFinder):
    """Finds one module as the given code (the mutant), every other module as usual."""

    def __init__(self, name: str, path: str, code: CodeType) -> None:
        self.name, self.path, self.code = name, path, code

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != self.name:
            return None
        return importlib.util.spec_from_file_location(fullname, self.path, loader=_Loader(self.code))


def _child(job: Job) -> NoReturn:
    code = 3
    try:
        os.setpgid(0, 0)
        if not job.explain:
            warm.silence()
        if job.site is not None:
            path = str(ROOT / job.target.path)
            try:
                compiled = compile(mutated_tree(job.source, job.site), path, "exec")
            except (SyntaxError, ValueError):
                os._exit(_INVALID_EXIT)
            sys.meta_path.insert(0, MutantFinder(job.target.module, path, compiled))
        os.chdir(ROOT)
        calls = warm.record_cached_calls() if job.record_to else []
        args = pytest_args(job.target)
        if job.explain:
            args = [a for a in args if a not in ("-q", "-x")] + ["-q", "--tb=no", "-rf", "-p", "no:warnings"]
        code = int(pytest.main(args))
        if job.record_to:
            warm.save_calls(job.record_to, calls)
    finally:
        os._exit(code)


def _status(wait_status: int) -> str:
    code = os.waitstatus_to_exitcode(wait_status)
    if code == 0:
        return SURVIVED
    if code == _INVALID_EXIT:
        return INVALID
    if code in (pytest.ExitCode.USAGE_ERROR, pytest.ExitCode.NO_TESTS_COLLECTED):
        raise RuntimeError(f"pytest could not run the tests (exit code {code}): see tools/mutation/scope.py")
    return KILLED  # tests failed, collection failed (the module did not import), or the child crashed


def run(jobs: Iterable[Job], workers: int) -> Iterator[Outcome]:
    """Outcomes as children finish (not in job order)."""
    pending = deque(jobs)
    running: dict[int, tuple[Job, float]] = {}
    while pending or running:
        while pending and len(running) < workers:
            job = pending.popleft()
            pid = os.fork()
            if pid == 0:
                _child(job)
            with contextlib.suppress(OSError):  # the child did it first, or is gone
                os.setpgid(pid, pid)
            running[pid] = (job, time.monotonic())
        pid, wait_status = os.waitpid(-1, os.WNOHANG)
        now = time.monotonic()
        if pid:
            job, start = running.pop(pid)
            yield Outcome(job, _status(wait_status), now - start)
            continue
        for pid, (job, start) in list(running.items()):
            if now - start > job.timeout:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                del running[pid]
                yield Outcome(job, TIMEOUT, now - start)
        time.sleep(0.01)
