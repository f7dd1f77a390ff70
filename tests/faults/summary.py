"""The fault suite's tally, printed as one line at the end of the run (see conftest.py)."""

from __future__ import annotations

import collections

SUMMARY: collections.Counter[str] = collections.Counter()
KEYS = ("faults injected", "specs tried", "objects repaired", "keys lost")


def line() -> str:
    """`fault suite: faults injected=N, specs tried=N, objects repaired=N, keys lost=N`."""
    return "fault suite: " + ", ".join(f"{key}={SUMMARY[key]}" for key in KEYS)
