"""A warm parent for the mutants' children: what their tests import is imported once here, and the
cached test helpers (tests.material's keys) are filled once here, so that no child pays for either.

`preload` learns from a forked collection which modules the tests import and imports them, the
mutated modules (and whatever imports one) excepted: those fail to import here, on purpose. The
baselines record the calls made to `functools.cache` functions of the tests' helper modules
(`record_cached_calls`, `save_calls`); `replay` makes the same calls here, when their arguments are
literals."""

from __future__ import annotations

import ast
import functools
import gc
import importlib
import importlib.abc
import importlib.machinery
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tools.mutation.scope import ROOT, Target, pytest_args

_WARM_EXIT = 98
_NEVER_PRELOADED = ("tools", "__main__", "__mp_main__")
Call = tuple[str, str, str, str]  # module, function, repr(args), repr(kwargs)


def silence() -> None:
    """A child's standard streams to /dev/null (pytest's report is not read; its exit code is)."""
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)


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


def preload(targets: Sequence[Target]) -> int:
    """Import, in this process, every module the targets' tests import (learnt from a forked
    collection; test files excepted), so that each mutant's child starts warm. The targets, and every
    module that imports one, fail to import here and stay for each child to import afresh. Returns
    how many modules were preloaded."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            silence()
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
    sys.dont_write_bytecode = False  # pytest's rewritten tests, read back by every child, not redone
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


def _helpers() -> list[tuple[str, str, Any]]:
    """The functools.cache functions defined in the tests' helper modules now imported."""
    found = []
    for name, module in list(sys.modules.items()):
        if name.split(".")[0] != "tests" or not isinstance(module, ModuleType):
            continue
        for attr, value in vars(module).items():
            if isinstance(value, functools._lru_cache_wrapper) and getattr(value, "__module__", "") == name:
                found.append((name, attr, value))
    return found


def record_cached_calls() -> list[Call]:
    """In a baseline's child: every later call of a helper's cached function is recorded in the list."""
    calls: list[Call] = []
    for module, attr, cached in _helpers():

        def recorder(*args: Any, _c: Any = cached, _m: str = module, _a: str = attr, **kwargs: Any) -> Any:
            calls.append((_m, _a, repr(args), repr(kwargs)))
            return _c(*args, **kwargs)

        setattr(sys.modules[module], attr, functools.update_wrapper(recorder, cached))
    return calls


def save_calls(path: str, calls: Sequence[Call]) -> None:
    Path(path).write_text(json.dumps(sorted(set(calls))))


def replay(paths: Sequence[str]) -> int:
    """Make here the recorded calls whose arguments are literals, then freeze what is in memory (the
    children's garbage collections skip it, and leave its pages shared); returns how many were made."""
    made = 0
    for path in paths:
        try:
            calls = json.loads(Path(path).read_text())
        except (OSError, ValueError):
            continue
        finally:
            Path(path).unlink(missing_ok=True)
        for module, attr, args, kwargs in calls:
            function = getattr(sys.modules.get(module), attr, None)
            try:
                positional, named = ast.literal_eval(args), ast.literal_eval(kwargs)
            except (ValueError, SyntaxError):
                continue
            if callable(function):
                function(*positional, **named)
                made += 1
    gc.freeze()
    return made
