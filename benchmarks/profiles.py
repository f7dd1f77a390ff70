"""The benchmark's workload profiles (what the providers send, how a rotation reaches the operator) and the
arithmetic of their figures: rotation targets, expected fetches, memory per object. Pure: no I/O."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

MIB = 1024 * 1024


@dataclass(frozen=True)
class Profile:
    """A workload: the providers' Cache-Control max-age (s), whether they keep connections alive, and
    whether a rotation is forced through the refresh-requested-at annotation (else the operator sees it
    when the cached set expires)."""

    name: str
    max_age: int
    keep_alive: bool
    forced: bool
    summary: str

    def expected_per_period(self, urls: int, period: float) -> float:
        """Provider requests per `period` in the steady state: each URL once per max-age."""
        return urls * min(1.0, period / self.max_age) if self.max_age > 0 else float(urls)

    def rotation_target(self, floor_publish: float | None, forced_after: float | None = None) -> float | None:
        """Seconds from a rotation at the provider to every affected ConfigMap updated, at most: the publish
        floor + 1 s after the forced request (`forced_after` s after the rotation) when forced, else the
        publish floor + max-age + 1 s. None without a floor (or, forced, without the request's time)."""
        if floor_publish is None:
            return None
        if self.forced:
            return None if forced_after is None else forced_after + floor_publish + 1.0
        return floor_publish + self.max_age + 1.0


# Providers' real cache lifetimes (docs/performance.md cites them): Google's JWK Sets send
# `max-age` of about 6 hours (21155-24873 s seen on oauth2/v3/certs, 21600 on its service-account keys,
# which Firebase Auth uses); the realistic profile sends 6 hours.
REALISTIC = Profile(
    "realistic",
    max_age=6 * 3600,
    keep_alive=True,
    forced=True,
    summary="max-age=21600 (6 h), connections kept alive; rotation forced with the refresh annotation",
)
STRESS = Profile(
    "stress",
    max_age=2,
    keep_alive=False,
    forced=False,
    summary="max-age=2, one connection per request; rotation seen at expiry",
)
PROFILES = {p.name: p for p in (REALISTIC, STRESS)}
DEFAULT = ("realistic", "stress")  # the realistic profile first: the headline


def select(names: Iterable[str] | None) -> list[Profile]:
    """The profiles named, in the order given, each once (default: realistic, then stress); ValueError for
    an unknown name."""
    chosen: list[Profile] = []
    for name in names or DEFAULT:
        if name not in PROFILES:
            raise ValueError(f"--profile-name: unknown profile {name!r} (known: {', '.join(PROFILES)})")
        if PROFILES[name] not in chosen:
            chosen.append(PROFILES[name])
    return chosen


def bytes_per_object(rss_before: float, rss_after: float, n: int) -> float | None:
    """Resident memory (MiB in) the sync added, per object, in bytes; None for no objects."""
    return (rss_after - rss_before) * MIB / n if n > 0 else None


def slope(points: Sequence[tuple[int, float]]) -> float | None:
    """Bytes per object between the two largest N of (N, MiB added by the sync) points (1,000 and 10,000
    in a full run): the cost of one more tracked object, the fixed part left out. None with fewer than two
    sizes."""
    by_n = sorted(dict(points).items())
    if len(by_n) < 2:
        return None
    (n0, m0), (n1, m1) = by_n[-2], by_n[-1]
    return (m1 - m0) * MIB / (n1 - n0)
