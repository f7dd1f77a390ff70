"""Verdicts kept between runs, and the accepted equivalent mutants.

A verdict is cached under (the module's source hash, its tests' hash, the mutant's id, which names
the operator): a re-run runs only the mutants of a module or a test set that changed. The cache is
`.mutation-cache/` (gitignored). Equivalent mutants (no test can tell them from the original) are
listed in equivalents.txt beside this file, one a line: `<mutant id>  # why it is equivalent`.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from tools.mutation.scope import ROOT, Target

CACHE = ROOT / ".mutation-cache" / "results.json"
LAST = ROOT / ".mutation-cache" / "last.json"  # mutant id -> its latest verdict, whatever the hashes
EQUIVALENTS = Path(__file__).with_name("equivalents.txt")
# Survivors known and owed a test (same format): the gate fails on any other survivor, and on a listed one
# that no longer survives (the list only shrinks).
PENDING = Path(__file__).with_name("pending.txt")


def digest(texts: Iterable[bytes]) -> str:
    hasher = hashlib.sha256()
    for text in texts:
        hasher.update(hashlib.sha256(text).digest())
    return hasher.hexdigest()


def tests_hash(target: Target) -> str:
    """The contents (and names) of every file of the target's test set."""
    files = target.test_files()
    return digest(p.relative_to(ROOT).as_posix().encode() + b"\0" + p.read_bytes() for p in files)


def cache_key(source_hash: str, test_hash: str, mutant_id: str) -> str:
    return digest([source_hash.encode(), test_hash.encode(), mutant_id.encode()])


def load_cache(path: Path = CACHE) -> dict[str, str]:
    try:
        loaded = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in loaded.items()} if isinstance(loaded, dict) else {}


def save_cache(results: Mapping[str, str], path: Path = CACHE) -> None:
    """Written whole to a temporary file, then renamed: an interrupted run leaves the old cache."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(dict(sorted(results.items())), indent=0))
    os.replace(temporary, path)


def parse_equivalents(text: str) -> dict[str, str]:
    """{mutant id: why}; ValueError (naming the line) for a line without its reason."""
    found: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        mutant, sep, why = line.partition("  # ")
        if not sep or not why.strip() or " " in mutant.strip():
            raise ValueError(f"equivalents.txt line {number}: expected `<mutant id>  # why`, got {raw!r}")
        found[mutant.strip()] = why.strip()
    return found


def load_equivalents(path: Path = EQUIVALENTS) -> dict[str, str]:
    return parse_equivalents(path.read_text()) if path.exists() else {}


def load_pending(path: Path = PENDING) -> dict[str, str]:
    return parse_equivalents(path.read_text()) if path.exists() else {}
