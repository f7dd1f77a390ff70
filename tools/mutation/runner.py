"""Run mutants: each in a child forked from a warm process (pytest and the third-party libraries already
imported, never the package itself), the mutated module compiled in memory and found first on
sys.meta_path, against only its target's tests (pytest -x: the first failure kills it). At most
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

from tools.mutation.operators import Site, mutated_tree
from tools.mutation.scope import ROOT, Target

KILLED, SURVIVED, TIMEOUT, INVALID = "killed", "survived", "timeout", "invalid"
_INVALID_EXIT = 97  # the mutant did not compile
_WARM_EXIT = 98
_NEVER_PRELOADED = ("tools", "__main__", "__mp_main__")


@dataclass(frozen=True)
class Job:
    """One run: a target's tests against one mutant (None: the module as it is, the baseline)."""

    target: Target
    site: Site | None
    source: str
    timeout: float


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


def pytest_args(target: Target) -> list[str]:
    """Quiet, first failure stops, no plugin that reorders or caches; only the tests that exist."""
    tests = [t for t in target.tests if (ROOT / t).exists()]
    deselected = [arg for test in target.deselect for arg in ("--deselect", test)]
    return ["-q", "-x", "--no-header", "-p", "no:cacheprovider", "-p", "no:randomly", *tests, *deselected]


def _silence() -> None:
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)


def _child(job: Job) -> NoReturn:
    code = 3
    try:
        os.setpgid(0, 0)
        _silence()
        if job.site is not None:
            path = str(ROOT / job.target.path)
            try:
                compiled = compile(mutated_tree(job.source, job.site), path, "exec")
            except (SyntaxError, ValueError):
                os._exit(_INVALID_EXIT)
            sys.meta_path.insert(0, MutantFinder(job.target.module, path, compiled))
        os.chdir(ROOT)
        code = int(pytest.main(pytest_args(job.target)))
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


class _Refuse(importlib.abc.MetaPathFinder):
    """During the warm-up: the mutated modules cannot be imported (nor what imports them)."""

    def __init__(self, names: set[str]) -> None:
        self.names = names

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname in self.names:
            raise ImportError(f"{fullname} is mutated: imported by each child, never preloaded")
        return None


def _preloadable(name: str) -> bool:
    last = name.rpartition(".")[2]
    return name.split(".")[0] not in _NEVER_PRELOADED and not last.startswith("test_")


def warm_up(targets: Sequence[Target]) -> int:
    """Import, in this process, every module the targets' tests import (learnt from a forked
    collection; test files excepted), so that each mutant's child starts warm. The targets, and every
    module that imports one, fail to import here and stay for each child to import afresh. Returns
    how many modules were preloaded."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            _silence()
            os.chdir(ROOT)
            args = [arg for t in targets for arg in pytest_args(t) if arg.startswith("tests/")]
            pytest.main(["-q", "--collect-only", "-p", "no:cacheprovider", *sorted(set(args))])
            names = [n for n in sys.modules if _preloadable(n)]
            os.write(write, "\n".join(names).encode())
        finally:
            os._exit(_WARM_EXIT)
    os.close(write)
    chunks = []
    while chunk := os.read(read, 1 << 16):
        chunks.append(chunk)
    os.close(read)
    os.waitpid(pid, 0)
    mutated = {t.module for t in targets}
    guard = _Refuse(mutated)
    sys.meta_path.insert(0, guard)
    imported = 0
    try:
        for name in b"".join(chunks).decode().split():
            try:
                importlib.import_module(name)
                imported += 1
            except Exception:  # noqa: S112 - it imports a target, or only imports under pytest
                continue
    finally:
        sys.meta_path.remove(guard)
    loaded = sorted(mutated & set(sys.modules))
    if loaded:
        raise RuntimeError(f"warm-up imported {loaded[0]}: its mutants would never be seen")
    return imported
