"""The benchmark tables' columns, and what each means (docs/performance.md's Columns section)."""

from __future__ import annotations

from benchmarks.results import VERBS

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
    "connections",
    "CPU s",
    "ms/object",
    "ms/object main/API/fetch",
    "API server CPU s",
    "floor API server CPU s",
    "peak RSS MiB",
    "bytes/object",
)
STEADY_COLUMNS = (
    "N",
    "fetches/period",
    "304 %",
    "connections/period",
    "API calls (writes)",
    "CPU s/period",
    "rotation s",
    "forced s",
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
        "per object, against a fresh cluster of the same backend: the floor the API server sets (it fetches "
        "each URL once, so one floor run serves both profiles)"
    ),
    "vs floor": "all Ready s / floor all Ready s",
    "API calls": (
        "the operator's requests to the API server during the initial sync (from its start), by verb; "
        "Kopf's included"
    ),
    "writes/object": "creates, updates, patches and deletes per JwtSecret during the initial sync",
    "fetches 200/304": "the operator's requests to the providers during the initial sync, by status",
    "connections": (
        "connections the providers accepted during the initial sync, each a full TLS handshake (realistic: "
        "kept alive, so about one per fetch thread and provider; stress: one per request)"
    ),
    "CPU s": (
        "user+system CPU seconds of the operator process (all threads) from the first create to the last "
        "object Ready (its start-up, imports and login, excluded)"
    ),
    "ms/object": "the operator's CPU per JwtSecret in the initial sync: CPU s / N, fetch threads included",
    "ms/object main/API/fetch": (
        "of it, per JwtSecret: the event loop's thread (Kopf and the engine), the API threads and the fetch "
        "threads (the operator counts the last two in jwks_operator_thread_cpu_seconds_total); the rest is "
        "other threads (metrics server, fetch watchdog)"
    ),
    "API server CPU s / floor API server CPU s": (
        "CPU seconds of the API server over the same span, with the operator and with the minimal client "
        "(real: kube-apiserver + etcd processes; emulator: its event-loop thread)"
    ),
    "peak RSS MiB": "the operator's peak resident memory (VmHWM) over the whole run",
    "bytes/object": (
        "what each tracked JwtSecret costs in memory: the operator's resident memory (VmRSS) once settled "
        "after the sync minus before the first create, / N; the slope between the two largest N (1,000 and "
        "10,000) is given under the tables"
    ),
    "fetches/period": (
        "steady state (keys unchanged, measured over 2 s periods once the operator's CPU per period stopped "
        "falling after the sync): the operator's provider requests per period; ideal: URLs x 2 s / max-age "
        "(stress: URLs; realistic: none in the seconds measured)"
    ),
    "304 %": "share of those answered 304 Not Modified (conditional requests)",
    "connections/period": "connections the providers accepted per period in the steady state",
    "API calls (writes)": "the operator's API requests during the steady state (of which writes); ideal 0",
    "CPU s/period": "operator CPU seconds per period in the steady state",
    "rotation s": (
        "a new key at one provider (a quarter of the URLs): seconds from it until every affected ConfigMap "
        "lists it"
    ),
    "forced s": (
        "realistic: when the harness had set the refresh-requested-at annotation on one JwtSecret per "
        "affected URL (seconds after the rotation; the URL's source refreshes every JwtSecret that reads it)"
    ),
    "last fetch s": (
        "when the operator fetched the last affected URL with the new key (the rest of rotation s is writing)"
    ),
    "floor publish s": (
        "seconds the harness takes to change as many ConfigMaps (one merge patch each, 8 threads, raw "
        "HTTP/JSON) on the minimal client's cluster: the least the writes of a rotation take on this backend"
    ),
    "target s": (
        "stress: floor publish s + max-age + 1 s; realistic: forced s + floor publish s + 1 s (1 s after "
        "the forced request, plus the writes' floor)"
    ),
    "rotation writes/object": "the operator's API writes for the rotation, per affected JwtSecret",
    "naive fetches/period": (
        "stress only: the per-object baseline (a Kopf timer per object, or each gateway fetching for "
        "itself): one unconditional GET per URL-sourced JwtSecret per period, measured by running such "
        "clients"
    ),
    "naive round s": "wall time of one round of those GETs (> period: the provider could not keep up)",
    "reduction": (
        "naive fetches/period / the operator's fetches/period; by design at most URL-sourced objects / URLs "
        "(1x below 100 URL-sourced objects, 9x at N=1000, 90x at N=10000): more means the operator fell "
        "behind its refresh schedule"
    ),
}
