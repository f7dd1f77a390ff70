"""HTTP freshness (RFC 9111) of JWK Set responses (pure): when may the keys be fetched again."""

from __future__ import annotations

import email.utils
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from jwks_operator.model.durations import format_duration


@dataclass(frozen=True, slots=True)
class RefreshPolicy:
    """Operator-wide or per-object bounds on the refresh interval, in seconds."""

    min_interval: float = 60.0
    max_interval: float = 24 * 3600.0
    fallback_interval: float | None = 3600.0  # None: no caching headers means fetch once
    stale_after: float = 24 * 3600.0  # keys this long past their refresh time make Ready=False


@dataclass(frozen=True, slots=True)
class Freshness:
    """What the response headers say: a lifetime in seconds, or none given."""

    lifetime: float | None
    revalidate_always: bool = False
    header: str | None = None  # what gave it: "s-maxage", "max-age", "Expires", "no-cache", "no-store"

    def next_interval(self, policy: RefreshPolicy) -> float | None:
        """Seconds until the next fetch, clamped to the policy; None means never."""
        if self.revalidate_always:
            return policy.min_interval
        if self.lifetime is None:
            if policy.fallback_interval is None:
                return None
            return _clamp(policy.fallback_interval, policy)
        return _clamp(self.lifetime, policy)

    def basis(self, policy: RefreshPolicy) -> tuple[str, str]:
        """(reason, message): why the keys are refreshed when they are, in words that stay the same from one
        period to the next (no moving time: a revalidation that changes nothing writes nothing)."""
        low, high = format_duration(policy.min_interval), format_duration(policy.max_interval)
        if self.header in ("no-cache", "no-store"):
            return "NoCache", f"the provider sends Cache-Control {self.header}: revalidated every {low}"
        if self.lifetime is None:
            if policy.fallback_interval is None:
                return (
                    "Never",
                    "the provider sends no caching headers, fallbackInterval is Never: fetched once",
                )
            every = format_duration(_clamp(policy.fallback_interval, policy))
            return "Fallback", f"the provider sends no caching headers: fallbackInterval, every {every}"
        given = f"{self.header} {self.lifetime:.0f}s"
        if self.lifetime < policy.min_interval:
            return "MinInterval", f"the provider's {given} is below minInterval: refreshed every {low}"
        if self.lifetime > policy.max_interval:
            return "MaxInterval", f"the provider's {given} is above maxInterval: refreshed every {high}"
        return "ProviderCache", f"refreshed when the provider's {self.header} says (within {low} and {high})"


def _clamp(seconds: float, policy: RefreshPolicy) -> float:
    return min(max(seconds, policy.min_interval), policy.max_interval)


def parse_cache_control(value: str) -> dict[str, str | None]:
    """Directives of a Cache-Control header, lower-cased, quotes stripped."""
    directives: dict[str, str | None] = {}
    for part in value.split(","):
        name, sep, arg = part.strip().partition("=")
        if name:
            directives[name.strip().lower()] = arg.strip().strip('"') if sep else None
    return directives


def delta_seconds(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = int(value)
    except ValueError:
        return None
    return float(seconds) if seconds >= 0 else None


def _http_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def freshness(headers: Mapping[str, str], now: datetime) -> Freshness:
    """RFC 9111 freshness for a shared cache: s-maxage, then max-age, then Expires; minus Age."""
    lower = {k.lower(): v for k, v in headers.items()}
    cc = parse_cache_control(lower.get("cache-control", ""))
    if "no-store" in cc or "no-cache" in cc:
        return Freshness(None, revalidate_always=True, header="no-store" if "no-store" in cc else "no-cache")
    age = delta_seconds(lower.get("age")) or 0.0
    for directive in ("s-maxage", "max-age"):
        if directive in cc:
            lifetime = delta_seconds(cc[directive])
            if lifetime is not None:
                remaining = max(lifetime - age, 0.0)
                return Freshness(remaining, revalidate_always=remaining == 0.0, header=directive)
    if "expires" in lower:
        expires = _http_date(lower["expires"])
        if expires is None:  # an invalid Expires means "already expired"
            return Freshness(0.0, revalidate_always=True, header="Expires")
        date = _http_date(lower.get("date")) or now
        remaining = max((expires - date).total_seconds() - age, 0.0)
        return Freshness(remaining, revalidate_always=remaining == 0.0, header="Expires")
    return Freshness(None)
