"""The results as Markdown tables, and docs/performance.md: one section per backend and profile."""

from __future__ import annotations

import math
import platform
import sys
from collections.abc import Sequence
from datetime import UTC, datetime

from benchmarks.columns import EXPLANATIONS, STEADY_COLUMNS, SYNC_COLUMNS
from benchmarks.procstat import machine
from benchmarks.profiles import PROFILES, slope
from benchmarks.results import VERBS, WRITES, Result, Settings

__all__ = ["STEADY_COLUMNS", "SYNC_COLUMNS", "document", "tables"]


def _f(value: float | None, digits: int = 2) -> str:
    if value is None or math.isnan(value):
        return "-"
    return f"{value:.{digits}f}"


def sync_row(r: Result) -> list[str]:
    lat, low = r.latency, r.minimal
    return [
        str(r.n),
        str(r.urls),
        _f(r.n / r.create_seconds if r.create_seconds else None, 0),
        f"{lat.ready if lat else 0}/{r.n}",
        _f(lat.p50 if lat else None),
        _f(lat.p95 if lat else None),
        _f(lat.max if lat else None),
        _f(lat.all_ready if lat else None),
        _f(low.p95 if low else None),
        _f(low.all_ready if low else None),
        _f(r.floor_ratio) + "x" if r.floor_ratio else "-",
        "/".join(str(r.initial_calls.get(v, 0)) for v in VERBS),
        _f(r.writes_per_object),
        f"{r.initial_fetches.get(200, 0)}/{r.initial_fetches.get(304, 0)}",
        str(r.initial_connections),
        _f(r.initial_cpu, 1),
        _f(r.cpu_ms_per_object, 1),
        "/".join(_f(ms, 1) for ms in r.cpu_split_ms),
        _f(r.server_cpu, 1),
        _f(r.minimal_server_cpu, 1),
        _f(r.peak_rss_mib, 0),
        _f(r.bytes_per_object, 0),
    ]


def steady_row(r: Result) -> list[str]:
    total = sum(r.steady_fetches.values())
    calls = sum(r.steady_calls.values())
    writes = sum(r.steady_calls.get(v, 0) for v in WRITES)
    per_period = r.steady_per_period
    naive = r.naive
    reduction = naive.per_period / per_period if naive and per_period else None
    return [
        str(r.n),
        _f(per_period, 1),
        _f(100 * r.steady_fetches.get(304, 0) / total if total else None, 0),
        _f(r.steady_connections / r.steady_periods if r.steady_periods else None, 1),
        f"{calls} ({writes})",
        _f(r.steady_cpu / r.steady_periods if r.steady_periods else None),
        _f(r.rotation_seconds),
        _f(r.rotation_forced),
        _f(r.rotation_fetched),
        _f(r.floor_publish),
        _f(r.rotation_target, 1),
        _f(r.rotation_writes / r.rotation_affected if r.rotation_affected else None, 1),
        _f(naive.per_period if naive else None, 0),
        _f(max(naive.round_seconds) if naive and naive.round_seconds else None),
        f"{reduction:.0f}x" if reduction else "-",
    ]


def table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown pipe table, padded for reading as text."""
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(columns)]
    lines = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)) + " |",
        "| " + " | ".join("-" * w for w in widths) + " |",
    ]
    lines += ["| " + " | ".join(v.rjust(w) for v, w in zip(r, widths, strict=True)) + " |" for r in rows]
    return "\n".join(lines)


def memory_line(results: Sequence[Result]) -> str:
    """Bytes per tracked JwtSecret at each N, and the slope between the two largest N."""
    points = [(r.n, r.rss_after_mib - r.rss_before_mib) for r in results if r.rss_after_mib]
    per_n = ", ".join(f"N={r.n} {_f(r.bytes_per_object, 0)}" for r in results)
    line = f"Memory per tracked JwtSecret (VmRSS added by the sync / N, bytes): {per_n}"
    marginal = slope(points)
    if marginal is not None:
        (n0, _), (n1, _) = sorted(points)[-2:]
        line += f"; slope between N={n0} and N={n1}: {marginal:.0f} bytes per object"
    return line + "."


def tables(results: Sequence[Result]) -> str:
    """Both tables (of one profile's results), with their headings, the memory line, and any notes."""
    text = (
        "Initial sync\n\n"
        + table(SYNC_COLUMNS, [sync_row(r) for r in results])
        + "\n\n"
        + memory_line(results)
        + "\n\nSteady state and key rotation\n\n"
        + table(STEADY_COLUMNS, [steady_row(r) for r in results])
        + "\n"
    )
    notes = [note for r in results for note in r.notes]
    if notes:
        text += "\nNotes:\n" + "".join(f"- {note}\n" for note in dict.fromkeys(notes))
    return text


def machine_description() -> str:
    facts = {**machine(), "Python": f"{platform.python_implementation()} {sys.version.split()[0]}"}
    return "\n".join(f"- {k}: {v}" for k, v in facts.items())


SETUP = {
    "emulator": """the emulated API server of the test suite (`tests/harness/k8s/`: kmock with CRD
validation, CEL rules and watches; requests are counted by User-Agent and not kept) in the benchmark's
process; readiness is read from its store every 0.1 s (no API requests). The emulator is pure Python
and shares the machine's cores with the operator, the providers and the harness, so absolute times are
pessimistic: compare the operator with the floor, the minimal client against the same emulator.""",
    "real": """etcd, kube-apiserver and kube-controller-manager ({versions}) built from their Go
modules (`make control-plane`, tests/harness/control_plane.py): RBAC on, a blocking JSON audit log of
the ServiceAccount's requests (counted from it by User-Agent), etcd without fsync, the default 5 min
compaction, the garbage-collector, namespace and service-account controllers. The operator and the
minimal client authenticate as deploy/'s ServiceAccount with deploy/'s RBAC (so API priority and
fairness treats them as in a cluster: the `service-accounts` flow schema); the harness is a
`system:masters` admin and sees readiness through a watch. Everything shares the same 2 cores.""",
}
TITLES = {"real": "Real control plane", "emulator": "Emulator"}
BEGIN, END = "<!-- bench:{name} -->", "<!-- /bench:{name} -->"
# What the numbers say, written by hand from both backends' results: kept as it is by every run.
SUMMARY = ("<!-- summary -->", "<!-- /summary -->")


LEGACY = """

The sections below named by backend alone ({backends}) are of the earlier single-profile
benchmark (the stress workload, before the fetcher kept connections alive): their ms/object leaves
the fetch threads out, their target s is max-age + 1 s, and they have no connections, bytes/object or
forced s columns. The next run of that backend replaces them."""


def section_names() -> list[str]:
    """Every section of the document, in its order: each backend's profiles (the headline first), then the
    sections of the single-profile benchmark (named by backend alone), kept until that backend is re-run."""
    return [*(f"{b}-{p}" for b in ("real", "emulator") for p in PROFILES), "emulator", "real"]


def section(results: Sequence[Result], settings: Settings, versions: str = "") -> str:
    """One backend's and profile's part of docs/performance.md, between its markers."""
    profile = settings.profile
    name = f"{settings.backend}-{profile.name}"
    details = "\n".join(
        f"- N={r.n}: settled {r.settle_seconds:.0f} s after the sync; "
        f"operator CPU {r.initial_cpu:.1f} s: its event loop (Kopf and the engine) "
        f"{r.initial_main_cpu:.1f} s, API threads {r.initial_api_cpu:.1f} s, fetch threads "
        f"{r.initial_fetch_cpu:.1f} s ({sum(r.initial_fetches.values())} fetches, "
        f"{r.initial_connections} connections); "
        + ", ".join(f"{k} {v}" for k, v in sorted(r.initial_by_resource.items()))
        + (
            f"; rotation forced on {r.rotation_forced_objects} JwtSecrets (one per URL) for "
            f"{r.rotation_affected} affected"
            if r.rotation_forced_objects
            else ""
        )
        + "; the minimal client: "
        + ", ".join(f"{v} {r.minimal_calls.get(v, 0)}" for v in VERBS if r.minimal_calls.get(v))
        for r in results
    )
    return f"""{BEGIN.format(name=name)}
## {TITLES[settings.backend]}, {profile.name} profile (`make bench BACKEND={settings.backend}`, \
{datetime.now(UTC).strftime("%Y-%m-%d")})

Profile: {profile.summary}.

Setup: {SETUP[settings.backend].format(versions=versions)}

{tables(results)}
The operator's CPU and API calls during the initial sync, by resource (and the minimal client's, by
verb):

{details}
{END.format(name=name)}"""


MACHINE = "## Machine\n\n"


def _machine(previous: str) -> str:
    """The machine a previous document's sections were measured on (kept when nothing was measured)."""
    lines = previous[previous.index(MACHINE) + len(MACHINE) :].splitlines()
    return "\n".join(line for line in lines[: next((i for i, x in enumerate(lines) if not x), len(lines))])


def document(
    runs: Sequence[tuple[Settings, Sequence[Result]]], previous: str = "", versions: str = ""
) -> str:
    """docs/performance.md: the sections of these runs (one per profile, same backend) replaced, the other
    sections kept; the single-profile section of a backend re-run here is dropped."""
    sections: dict[str, str] = {}
    for name in section_names():
        begin, end = BEGIN.format(name=name), END.format(name=name)
        if begin in previous and end in previous:
            sections[name] = previous[previous.index(begin) : previous.index(end) + len(end)]
    for settings, results in runs:
        sections.pop(settings.backend, None)
        sections[f"{settings.backend}-{settings.profile.name}"] = section(results, settings, versions)
    begin, end = SUMMARY
    summary = previous[previous.index(begin) : previous.index(end) + len(end)] if end in previous else ""
    columns = "\n".join(f"- **{name}**: {text}." for name, text in EXPLANATIONS.items())
    body = "\n\n".join(sections[name] for name in section_names() if sections.get(name))
    profiles = "\n".join(f"- **{p.name}**: {p.summary}." for p in PROFILES.values())
    legacy = [name for name in ("emulator", "real") if sections.get(name)]
    if legacy:
        profiles += LEGACY.format(backends=" and ".join(f"`{name}`" for name in legacy))
    return f"""# Performance

Measured by `make bench` (`python -m benchmarks`, `BACKEND=emulator` by default, or `BACKEND=real`);
each run rewrites its backend's sections, one per workload profile (both by default; `--profile-name
realistic` or `stress` for one), and keeps the rest. `python -m benchmarks --quick` runs N=50 only
and writes nothing.

Common setup (`benchmarks/`): 4 local HTTPS JWKS providers (`tests/harness/idp.py`, RSA-2048 keys,
Google's Cache-Control shape, ETag and Last-Modified); the operator as a subprocess (`jwks-operator
run --min-interval 1 --concurrency 8 --allow-private-networks`) trusting a bundle the size of a
container's trust store (certifi's, plus the test CA) through `REQUESTS_CA_BUNDLE`. The JwtSecrets
are created by 8 threads as fast as the API server takes them while the operator runs. Each profile
runs the operator on a fresh cluster with fresh providers; the floor (the minimal client) runs once
per N, on a fresh cluster, and serves both.

Workload profiles (`benchmarks/profiles.py`):

{profiles}

The realistic profile is the headline. Real providers send cache lifetimes of hours: Google's JWK Sets
`Cache-Control: public, max-age=21155` to `24873, must-revalidate, no-transform` (about 6-7 h, seen on
`www.googleapis.com/oauth2/v3/certs`: ericchiang/oidc#1, caojen/google-oauth#8) and `max-age=21600`
on its service-account key endpoints (GoogleCloudPlatform/go-endpoints#119), which Firebase Auth's
keys are (Firebase's documentation says to cache them for the response's `max-age`); Okta's
documentation says to follow its Cache-Control and that it answers `no-cache` as a key nears rotation
(okta/okta-developer-docs#2034); Google IAP's keys `max-age=3000` (50 min). No stored reference gave
Auth0's or Entra ID's values, so they are not quoted here. Real providers also keep HTTP/1.1
connections alive; the realistic providers do, and the operator's fetch threads (one requests.Session
each) reuse them: the `connections` columns count the TLS handshakes the providers saw. With hours
of max-age the operator would see a rotation only at expiry, so the realistic profile forces it the
way a user does: `kubectl annotate jwtsecret ... jwks.dev/refresh-requested-at=...` on one JwtSecret
per affected URL, whose URL source then refreshes every JwtSecret that reads that URL. The stress
profile is the earlier benchmark's workload: `max-age=2` and one connection per request, so the
operator revalidates every URL all along the sync and sees the rotation at expiry.

{summary}

## Machine

{machine_description() if runs or MACHINE not in previous else _machine(previous)}

{body}

## Columns

{columns}
"""
