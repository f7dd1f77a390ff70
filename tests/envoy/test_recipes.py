"""docs/integrations.md's Envoy recipes, run by real Envoy against a ConfigMap volume updated as the kubelet
updates one (new files in a timestamped folder, then an atomic swap of the `..data` symlink).

- The statement: `local_jwks.filename` is read once. The kubelet's update (with or without the data
  source's `watched_directory`) and a file-based LDS reload of the unchanged listener leave the old keys
  in force; a restart reads the new ones.
- The recipe: the docs' Envoy configuration (its ConfigMap's `envoy.yaml`) and the docs' sidecar command
  (its Pod), as written but for their ports and the mount's path: the new key is accepted and the retired
  one refused, with no restart.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread
from typing import Any

import jwt
import pytest
import yaml

from jwks_operator.keys.keyset import KeySet
from jwks_operator.publish.outputs import render
from jwks_operator.resource.spec import parse_spec
from tests.harness import ROOT
from tests.harness.client import wait_for
from tests.harness.envoy import Envoy, GatewayConfig, envoy_binary
from tests.harness.operator import free_port
from tests.material import ec_key, private_pem, public_jwk

ISSUER = "https://securetoken.google.com/my-firebase-project"  # the docs' provider
AUDIENCE = "my-firebase-project"
KEYS = {"old": ec_key("P-256", 10), "new": ec_key("P-256", 11)}
PATIENCE = 30.0


class ConfigMapVolume:
    """A ConfigMap volume as the kubelet keeps it: <dir>/..<timestamp>/<files>, <dir>/..data -> that
    folder, <dir>/<file> -> ..data/<file>; an update writes a new folder and swaps ..data atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.path.mkdir(parents=True)
        self.updates = 0

    def write(self, data: Mapping[str, str]) -> None:
        self.updates += 1
        folder = self.path / f"..2026_01_01_00_00_{self.updates:02d}.{os.getpid()}"
        folder.mkdir()
        for name, text in data.items():
            (folder / name).write_text(text)
        link = self.path / "..data_tmp"
        link.symlink_to(folder.name)
        old = os.readlink(self.path / "..data") if (self.path / "..data").is_symlink() else None
        os.replace(link, self.path / "..data")
        for name in data:
            if not (self.path / name).is_symlink():
                (self.path / name).symlink_to(f"..data/{name}")
        if old is not None:
            for child in (self.path / old).iterdir():
                child.unlink()
            (self.path / old).rmdir()


def published(*names: str) -> dict[str, str]:
    """The ConfigMap data the operator publishes for these keys (jwks.json, jwks, policy.json)."""
    spec = parse_spec({"jwkUrl": "https://idp.test/jwks", "audiences": [AUDIENCE], "issuers": [ISSUER]})
    keys = KeySet(tuple(public_jwk(KEYS[n], kid=n, alg="ES256", use="sig") for n in names))
    return dict(render(spec, keys))


def token(name: str) -> str:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "iat": now, "exp": now + 300}
    return jwt.encode(claims, private_pem(KEYS[name]), "ES256", headers={"kid": name})


def file_filter(mount: Path, watched: bool) -> GatewayConfig:
    """jwt_authn reading the mounted jwks.json by file name (the recipe the docs used to give)."""
    local: dict[str, Any] = {"filename": str(mount / "jwks.json")}
    if watched:
        local["watched_directory"] = {"path": str(mount)}
    provider = {"issuer": ISSUER, "audiences": [AUDIENCE], "local_jwks": local, "forward": True}
    config = {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
        "providers": {"firebase": provider},
        "rules": [{"match": {"prefix": "/"}, "requires": {"provider_name": "firebase"}}],
    }
    return GatewayConfig(({"name": "envoy.filters.http.jwt_authn", "typed_config": config},))


@pytest.mark.parametrize("watched", [False, True], ids=["filename", "filename+watched_directory"])
def test_a_file_mounted_jwks_is_read_once_and_needs_a_restart(tmp_path: Path, watched: bool) -> None:
    volume = ConfigMapVolume(tmp_path / "jwks")
    volume.write(published("old"))
    config = file_filter(volume.path, watched)
    with Envoy(tmp_path / "envoy") as envoy:
        envoy.start(config)
        assert (envoy.request(token("old")).status, envoy.request(token("new")).status) == (200, 401)
        volume.write(published("new"))
        assert envoy.push(config) is False, "an LDS reload of the same listener keeps it as it was"
        time.sleep(1)  # give a file watch, if there were one, time to act (nothing may change: no bound)
        assert (envoy.request(token("old")).status, envoy.request(token("new")).status) == (200, 401)
        envoy.stop()
        envoy.start(config)
        assert (envoy.request(token("old")).status, envoy.request(token("new")).status) == (401, 200)


def documented() -> tuple[dict[str, Any], dict[str, Any]]:
    """docs/integrations.md's Envoy bootstrap (ConfigMap envoy-config, envoy.yaml) and its Pod."""
    text = (ROOT / "docs" / "integrations.md").read_text()
    docs = [
        d for body in re.findall(r"```yaml\n(.*?)```", text, re.DOTALL) for d in yaml.safe_load_all(body) if d
    ]
    config = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "envoy-config")
    pod = next(d for d in docs if d["kind"] == "Pod" and d["metadata"]["name"] == "envoy")
    return yaml.safe_load(config["data"]["envoy.yaml"]), pod


def moved(value: Any, ports: Mapping[int, int], paths: Mapping[str, str]) -> Any:
    """The documented value with its ports and paths moved (every other byte as written)."""
    if isinstance(value, dict):
        return {k: ports.get(v, v) if k == "port_value" else moved(v, ports, paths) for k, v in value.items()}
    if isinstance(value, list):
        return [moved(v, ports, paths) for v in value]
    if isinstance(value, str):
        for old, new in [*((str(a), str(b)) for a, b in ports.items()), *paths.items()]:
            value = (
                re.sub(rf"(?<![\w./]){re.escape(old)}(?![\w])", new, value)
                if old.isdigit()
                else value.replace(old, new)
            )
        return value
    return value


@contextlib.contextmanager
def app(port: int) -> Iterator[None]:
    """The application behind Envoy: 200 to anything."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"the application"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()


def status(port: int, name: str) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request(
            "GET", "/", headers={"Authorization": f"Bearer {token(name)}", "Connection": "close"}
        )
        return connection.getresponse().status
    except OSError:
        return 0
    finally:
        connection.close()


def test_the_documented_sidecar_recipe_rotates_without_a_restart(tmp_path: Path) -> None:
    bootstrap, pod = documented()
    containers = {c["name"]: c for c in pod["spec"]["containers"]}
    mount = next(m["mountPath"] for m in containers["jwks"]["volumeMounts"] if m["name"] == "jwks")
    volume = ConfigMapVolume(tmp_path / "jwks")
    volume.write(published("old"))
    ports = {10000: free_port(), 8081: free_port(), 8080: free_port()}
    paths = {mount: str(volume.path)}
    config = tmp_path / "envoy.yaml"
    config.write_text(yaml.safe_dump(moved(bootstrap, ports, paths)))
    sidecar = [
        sys.executable if part == "python3" else part
        for part in moved(containers["jwks"]["command"], ports, paths)
    ]
    listener = ports[10000]
    with (
        app(ports[8080]),
        subprocess.Popen(sidecar, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as server,
        subprocess.Popen(
            [
                str(envoy_binary()),
                "-c",
                str(config),
                "--concurrency",
                "1",
                "--disable-hot-restart",
                "--log-level",
                "warning",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ) as envoy,
    ):
        try:
            wait_for(lambda: status(listener, "old") == 200, PATIENCE, "the old key accepted")
            assert status(listener, "new") == 401
            volume.write(published("old", "new"))  # the provider adds a key; the operator publishes both
            wait_for(lambda: status(listener, "new") == 200, PATIENCE, "the new key accepted")
            volume.write(published("new"))  # the old key retired (after retainRemovedFor)
            wait_for(lambda: status(listener, "old") == 401, PATIENCE, "the retired key refused")
            assert status(listener, "new") == 200
        finally:
            envoy.terminate()
            server.terminate()
