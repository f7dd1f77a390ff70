"""Prometheus metrics (prometheus-client), in a registry of their own."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

PREFIX = "jwks_operator"
FETCH_RESULTS = ("ok", "not_modified", "error")  # the values of jwks_operator_fetches_total{result}


class Metrics:
    """Every metric the operator exports; per-object series are removed with their JwtSecret."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.fetches = Counter(
            f"{PREFIX}_fetches",
            "JWK Set fetches by result (ok, not_modified, error).",
            ["url", "result"],
            registry=r,
        )
        self.fetch_seconds = Histogram(
            f"{PREFIX}_fetch_duration_seconds",
            "Time to fetch a JWK Set.",
            ["url"],
            registry=r,
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.next_refresh = Gauge(
            f"{PREFIX}_next_refresh_timestamp_seconds",
            "When a JWK URL is fetched next (Unix time; +Inf when it is never refetched).",
            ["url"],
            registry=r,
        )
        self.last_success = Gauge(
            f"{PREFIX}_last_success_timestamp_seconds",
            "Last successful fetch of a JWK URL (Unix time).",
            ["url"],
            registry=r,
        )
        self.failures = Gauge(
            f"{PREFIX}_consecutive_failures",
            "Failed fetches of a JWK URL since its last success.",
            ["url"],
            registry=r,
        )
        self.objects = ObjectCollector()
        r.register(self.objects)
        self.api_writes = Counter(
            f"{PREFIX}_api_writes",
            "Kubernetes API writes by kind and verb.",
            ["kind", "verb"],
            registry=r,
        )
        self.thread_cpu = Counter(
            f"{PREFIX}_thread_cpu_seconds",
            "CPU seconds of the operator's worker threads, by pool: fetch (provider requests and parsing) "
            "and api (Kubernetes API calls); the rest of the process's CPU is its event loop.",
            ["pool"],
            registry=r,
        )
        self.events_dropped = Counter(
            f"{PREFIX}_events_dropped",
            "Events not recorded because too many were waiting for the API server.",
            registry=r,
        )
        self.jwtsecrets = Gauge(f"{PREFIX}_jwtsecrets", "JwtSecrets being tracked.", registry=r)
        self.leader = Gauge(
            f"{PREFIX}_leader",
            "1 when this replica reconciles (standalone, or elected by Kopf peering), 0 on standby.",
            registry=r,
        )

    def set_object(
        self,
        namespace: str,
        name: str,
        keys: int,
        conditions: Iterable[tuple[str, str]],
        outputs: Iterable[tuple[str, bool]] = (),
    ) -> None:
        """Export a JwtSecret's key count, its (type, status) conditions and its (output, ready) outputs."""
        self.objects.state[(namespace, name)] = (keys, tuple(conditions), tuple(outputs))

    def forget_object(self, namespace: str, name: str) -> None:
        """Drop the series of a deleted JwtSecret."""
        self.objects.state.pop((namespace, name), None)

    def forget_url(self, url: str) -> None:
        """Drop every series labelled with a URL nobody reads any more: counts and durations too (200
        deleted URLs left 3,400 series behind, #14)."""
        series: list[tuple[Counter | Gauge | Histogram, tuple[str, ...]]] = [
            (self.fetches, (url, result)) for result in FETCH_RESULTS
        ]
        series += [
            (m, (url,)) for m in (self.fetch_seconds, self.next_refresh, self.last_success, self.failures)
        ]
        for metric, labels in series:
            with contextlib.suppress(KeyError):
                metric.remove(*labels)

    def serve(self, port: int) -> None:
        """Serve /metrics on `port` (a daemon thread)."""
        start_http_server(port, registry=self.registry)


ObjectState = tuple[int, tuple[tuple[str, str], ...], tuple[tuple[str, bool], ...]]


class ObjectCollector(Collector):
    """Per-JwtSecret series, built at scrape time from one small tuple per object.

    A labelled Gauge child per series would cost about 7 KB per JwtSecret (key count, and three
    conditions with three statuses each): 70 MB at 10,000 objects, for data the engine already has.
    """

    def __init__(self) -> None:
        self.state: dict[tuple[str, str], ObjectState] = {}

    def collect(self) -> Iterator[Metric]:
        keys = GaugeMetricFamily(
            f"{PREFIX}_keys_published", "Keys published per JwtSecret.", labels=["namespace", "jwtsecret"]
        )
        condition = GaugeMetricFamily(
            f"{PREFIX}_condition",
            "JwtSecret conditions (1 for the current status).",
            labels=["namespace", "jwtsecret", "type", "status"],
        )
        output = GaugeMetricFamily(
            f"{PREFIX}_output_ready",
            "1 when a gateway output of spec.outputs holds the current keys, else 0.",
            labels=["namespace", "jwtsecret", "output"],
        )
        snapshot = list(self.state.items())  # a copy: scrapes run in a thread of their own
        for (namespace, name), (count, conditions, outputs) in snapshot:
            for output_id, ready in outputs:
                output.add_metric([namespace, name, output_id], 1.0 if ready else 0.0)
            keys.add_metric([namespace, name], count)
            for kind, status in conditions:
                for value in ("True", "False", "Unknown"):
                    condition.add_metric([namespace, name, kind, value], 1.0 if value == status else 0.0)
        yield keys
        yield condition
        yield output
