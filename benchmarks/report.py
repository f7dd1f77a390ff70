"""The results as Markdown tables, and docs/performance.md."""

from __future__ import annotations

import math
import platform
import sys
from collections.abc import Sequence
from datetime import UTC, datetime

from benchmarks.procstat import machine
from benchmarks.results import VERBS, Result, Settings

SYNC_COLUMNS = (
    "N",
    "URLs",
    "created/s",
    "Ready",
    "p50 s",
    "p95 s",
    "max s",
    "all Ready s",
    "floor p95 s",
    "floor all Ready s",
    "vs floor",
    "API calls " + "/".join(VERBS),
    "writes/object",
    "fetches 200/304",
    "CPU s",
    "ms/object",
    "API server CPU s",
    "floor API server CPU s",
    "peak RSS MiB",
)
STEADY_COLUMNS = (
    "N",
    "fetches/period",
    "304 %",
    "API calls (writes)",
    "CPU s/period",
    "rotation s",
    "last fetch s",
    "floor publish s",
    "target s",
    "rotation writes/object",
    "naive fetches/period",
    "naive round s",
    "reduction",
)
COLUMNS = (*SYNC_COLUMNS, *STEADY_COLUMNS)

EXPLANATIONS = {
    "N": "JwtSecrets created (about 90% name a JWK URL, 10% carry a static JWK)",
    "URLs": "distinct JWK URLs among them (at most 100, served by 4 local HTTPS providers)",
    "created/s": "how fast the harness created the JwtSecrets (8 threads, raw HTTP/JSON)",
    "Ready": "JwtSecrets that reached Ready=True with observedGeneration == generation",
    "p50 s / p95 s / max s": "time from an object's create returning to it being seen Ready",
    "all Ready s": "from the first create to the last object Ready",
    "floor p95 s / floor all Ready s": (
        "the same, with the minimal client (benchmarks/minimal.py, raw HTTP/JSON, 8 threads) in place of "
        "the operator: one list and one watch of JwtSecrets, then one ConfigMap create and one status patch "
        "per object, against a fresh cluster of the same backend: the floor the API server sets"
    ),
    "vs floor": "all Ready s / floor all Ready s",
    "API calls": (
        "the operator's requests to the API server during the initial sync (from its start), by verb; "
        "Kopf's included"
    ),
    "writes/object": "creates, updates, patches and deletes per JwtSecret during the initial sync",
    "fetches 200/304": "the operator's requests to the providers during the initial sync, by status",
    "CPU s": (
        "user+system CPU seconds of the operator process (all threads) from the first create to the last "
        "object Ready (its start-up, imports and login, excluded)"
    ),
    "ms/object": (
        "the operator's CPU per JwtSecret in the initial sync: (CPU s - its fetch threads' CPU) / N (max-age "
        "is 2 s: every URL is refetched all along the sync; the operator counts its fetch and API threads' "
        "CPU in jwks_operator_thread_cpu_seconds_total)"
    ),
    "API server CPU s / floor API server CPU s": (
        "CPU seconds of the API server over the same span, with the operator and with the minimal client "
        "(real: kube-apiserver + etcd processes; emulator: its event-loop thread)"
    ),
    "peak RSS MiB": "the operator's peak resident memory (VmHWM) over the whole run",
    "fetches/period": (
        "steady state (keys unchanged, max-age = period = 2 s; measured once the operator's CPU per period "
        "stopped falling after the sync): the operator's provider requests per period; ideal = URLs"
    ),
    "304 %": "share of those answered 304 Not Modified (conditional requests)",
    "API calls (writes)": "the operator's API requests during the steady state (of which writes); ideal 0",
    "CPU s/period": "operator CPU seconds per refresh period in the steady state",
    "rotation s": (
        "a new key at one provider (a quarter of the URLs): seconds until every affected ConfigMap lists it"
    ),
    "last fetch s": (
        "when the operator fetched the last affected URL with the new key (at most max-age after the "
        "rotation: the rest of rotation s is writing)"
    ),
    "floor publish s": (
        "seconds the harness takes to change as many ConfigMaps (one merge patch each, 8 threads, raw "
        "HTTP/JSON) on the minimal client's cluster: the least the writes of a rotation take on this backend"
    ),
    "target s": "max-age + 1 s",
    "rotation writes/object": "the operator's API writes for the rotation, per affected JwtSecret",
    "naive fetches/period": (
        "the per-object baseline (a Kopf timer per object, or each gateway fetching for itself): one "
        "unconditional GET per URL-sourced JwtSecret per period, measured by running such clients"
    ),
    "naive round s": "wall time of one round of those GETs (> period: the provider could not keep up)",
    "reduction": (
        "naive fetches/period / the operator's fetches/period; by design at most URL-sourced objects / URLs "
        "(1x below 100 URL-sourced objects, 9x at N=1000, 90x at N=10000): more means the operator fell "
        "behind its refresh schedule"
    ),
}


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
        _f(r.initial_cpu, 1),
        _f(r.cpu_ms_per_object, 1),
        _f(r.server_cpu, 1),
        _f(r.minimal_server_cpu, 1),
        _f(r.peak_rss_mib, 0),
    ]


def steady_row(r: Result) -> list[str]:
    total = sum(r.steady_fetches.values())
    calls = sum(r.steady_calls.values())
    writes = sum(r.steady_calls.get(v, 0) for v in ("create", "update", "patch", "delete"))
    per_period = r.steady_per_period
    naive = r.naive
    reduction = naive.per_period / per_period if naive and per_period else None
    return [
        str(r.n),
        _f(per_period, 1),
        _f(100 * r.steady_fetches.get(304, 0) / total if total else None, 0),
        f"{calls} ({writes})",
        _f(r.steady_cpu / r.steady_periods if r.steady_periods else None),
        _f(r.rotation_seconds),
        _f(r.rotation_fetched),
        _f(r.floor_publish),
        _f(r.period + 1.0, 1),
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


def tables(results: Sequence[Result]) -> str:
    """Both tables, with their headings, and any notes."""
    text = (
        "Initial sync\n\n"
        + table(SYNC_COLUMNS, [sync_row(r) for r in results])
        + "\n\nSteady state and key rotation\n\n"
        + table(STEADY_COLUMNS, [steady_row(r) for r in results])
        + "\n"
    )
    notes = [note for r in results for note in r.notes]
    if notes:
        text += "\nNotes:\n" + "".join(f"- {note}\n" for note in notes)
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
BEGIN, END = "<!-- bench:{name} -->", "<!-- /bench:{name} -->"
# What the numbers say, written by hand from both backends' results: kept as it is by every run.
SUMMARY = ("<!-- summary -->", "<!-- /summary -->")


def section(results: Sequence[Result], settings: Settings, versions: str = "") -> str:
    """One backend's part of docs/performance.md, between its markers."""
    name = settings.backend
    details = "\n".join(
        f"- N={r.n}: settled {r.settle_seconds:.0f} s after the sync; "
        f"operator CPU {r.initial_cpu:.1f} s: its event loop (Kopf and the engine) "
        f"{r.initial_main_cpu:.1f} s, API threads {r.initial_api_cpu:.1f} s, fetch threads "
        f"{r.initial_fetch_cpu:.1f} s ({sum(r.initial_fetches.values())} fetches); "
        + ", ".join(f"{k} {v}" for k, v in sorted(r.initial_by_resource.items()))
        + "; the minimal client: "
        + ", ".join(f"{v} {r.minimal_calls.get(v, 0)}" for v in VERBS if r.minimal_calls.get(v))
        for r in results
    )
    title = "Real control plane" if name == "real" else "Emulator"
    return f"""{BEGIN.format(name=name)}
## {title} (`make bench BACKEND={name}`, {datetime.now(UTC).strftime("%Y-%m-%d")})

Setup: {SETUP[name].format(versions=versions)}

{tables(results)}
The operator's CPU and API calls during the initial sync, by resource (and the minimal client's, by
verb):

{details}
{END.format(name=name)}"""


def document(results: Sequence[Result], settings: Settings, previous: str = "", versions: str = "") -> str:
    """docs/performance.md: this run's backend section replaced, the other backend's kept."""
    sections = {name: "" for name in SETUP}
    for name in SETUP:
        begin, end = BEGIN.format(name=name), END.format(name=name)
        if begin in previous and end in previous:
            sections[name] = previous[previous.index(begin) : previous.index(end) + len(end)]
    sections[settings.backend] = section(results, settings, versions)
    begin, end = SUMMARY
    summary = previous[previous.index(begin) : previous.index(end) + len(end)] if end in previous else ""
    columns = "\n".join(f"- **{name}**: {text}." for name, text in EXPLANATIONS.items())
    body = "\n\n".join(text for text in sections.values() if text)
    return f"""# Performance

Measured by `make bench` (`python -m benchmarks`, `BACKEND=emulator` by default, or `BACKEND=real`);
each run rewrites its backend's section and keeps the other's. `python -m benchmarks --quick` runs
N=50 only and writes nothing.

Common setup (`benchmarks/`): 4 local HTTPS JWKS providers (`tests/harness/idp.py`, RSA-2048 keys,
`Cache-Control: max-age={settings.period}`, ETag and Last-Modified, one connection per request); the
operator as a subprocess (`jwks-operator run --min-interval 1 --concurrency {settings.concurrency}
--allow-private-networks`) trusting a bundle the size of a container's trust store (certifi's, plus
the test CA) through `REQUESTS_CA_BUNDLE`. The JwtSecrets are created by 8 threads as fast as the
API server takes them while the operator runs.

{summary}

## Machine

{machine_description()}

{body}

## Columns

{columns}
"""
