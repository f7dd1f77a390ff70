"""Durations as the CRD's pattern admits them ("90s", "5m", "1h30m", "1.5h"), a subset of Go's (pure)."""

from __future__ import annotations

import re

PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """Seconds in a duration string; ValueError with the expected form otherwise."""
    if not re.match(PATTERN, text):
        raise ValueError(f"{text!r} is not a duration like 90s, 5m or 1h30m")
    return sum(float(number) * _UNITS[unit] for number, unit in _PART.findall(text))


def format_duration(seconds: float) -> str:
    """A duration the way the CRD's fields take it: 45s, 5m, 1h30m, 24h (whole seconds)."""
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    text = "".join(f"{n}{unit}" for n, unit in ((hours, "h"), (minutes, "m"), (secs, "s")) if n)
    return text or "0s"
