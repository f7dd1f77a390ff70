"""`verify --as`: each gateway's rules (verify.profiles), where they differ from the seed's. The Envoy tier
checks the envoy profiles against real Envoy on every row of its matrix; these pin each rule."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ed448
from jwt.algorithms import get_default_algorithms

from jwks_operator.app import cli
from jwks_operator.keys.keyset import build_key_set
from jwks_operator.keys.static import key_from_hmac
from jwks_operator.publish.outputs import render
from jwks_operator.resource.spec import parse_spec
from jwks_operator.verify.profiles import PROFILES, SEED
from jwks_operator.verify.verifier import Verifier
from tests.material import ec_key, private_pem, public_jwk, rsa_key

NOW = 1_800_000_000
ISS = "https://idp"
RSA = rsa_key()
EDWARDS = ed448.Ed448PrivateKey.generate()
KEYS = build_key_set(
    [
        public_jwk(RSA, kid="r1", use="sig"),
        public_jwk(ec_key(), kid="e1", alg="ES256", use="sig"),
        public_jwk(EDWARDS, kid="x448", use="sig"),
    ]
)
DATA = render(parse_spec({"jwkUrl": "https://idp/jwks", "audiences": ["api"], "issuers": [ISS]}), KEYS)
GOOD = {"iss": ISS, "aud": "api", "sub": "alice", "iat": NOW, "exp": NOW + 300}


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def token(claims: dict[str, Any], key: Any = RSA, alg: str = "RS256", **header: Any) -> str:
    """Any header and claims (PyJWT's encode refuses an `iss` list or a `crit` header)."""
    algorithm = get_default_algorithms()[alg]
    fields = {k: v for k, v in {"alg": alg, "kid": "r1", **header}.items() if v is not None}
    head = b64(json.dumps(fields).encode())
    signing_input = f"{head}.{b64(json.dumps(claims).encode())}"
    secret = key if isinstance(key, bytes) else private_pem(key)
    signature = algorithm.sign(signing_input.encode(), algorithm.prepare_key(secret))
    return f"{signing_input}.{b64(signature)}"


def verdicts(value: str) -> dict[str, str]:
    """Each profile's verdict: "ok" or the reason."""
    found = {}
    for name, profile in PROFILES.items():
        result = Verifier.from_data(DATA, profile=profile).verify(value, now=NOW)
        found[name] = "ok" if result else result.reason
    return found


def test_every_profile_accepts_a_valid_rs256_token() -> None:
    assert set(verdicts(token(GOOD)).values()) == {"ok"}
    assert SEED is PROFILES["seed"]


def test_crit_is_refused_by_the_seed_only() -> None:
    found = verdicts(token(GOOD, crit=["exp2"], exp2=1))
    assert found.pop("seed") == "crit header: extension 'exp2' is not understood (RFC 7515 section 4.1.11)"
    assert set(found.values()) == {"ok"}
    tampered = token(GOOD, crit=["exp2"], exp2=1)[:-4] + "AAAA"
    assert "ok" not in verdicts(tampered).values()


def test_an_iss_list_is_a_string_for_envoy_and_a_list_for_the_seed_and_space_cloud() -> None:
    found = verdicts(token({**GOOD, "iss": [ISS]}))
    assert (found["seed"], found["spacecloud"]) == ("ok", "ok")
    assert found["envoy"] == "iss claim must be a string for envoy, not a list"
    assert found["istio"] == found["envoy"].replace("envoy", "istio")
    assert found["envoy-gateway"] == found["envoy"].replace("envoy", "envoy-gateway")


def test_clock_skew_is_60_s_for_envoy_30_for_the_seed_none_for_space_cloud() -> None:
    expired_45 = verdicts(token({**GOOD, "exp": NOW - 45}))
    assert (expired_45["seed"], expired_45["envoy"], expired_45["spacecloud"]) == (
        "token expired (exp is in the past)",
        "ok",
        "token expired (exp is in the past)",
    )
    expired_10 = verdicts(token({**GOOD, "exp": NOW - 10}))
    assert (expired_10["seed"], expired_10["spacecloud"]) == ("ok", "token expired (exp is in the past)")
    early = verdicts(token({**GOOD, "nbf": NOW + 45}))
    assert (early["seed"], early["envoy"]) == ("token not yet valid (nbf is in the future)", "ok")


def test_iat_in_the_future_is_refused_but_by_envoy() -> None:
    found = verdicts(token({**GOOD, "iat": NOW + 120}))
    assert (found["seed"], found["spacecloud"]) == ("token issued in the future (iat)",) * 2
    assert found["envoy"] == found["istio"] == found["envoy-gateway"] == "ok"


def test_istio_needs_a_sub_for_the_request_principal() -> None:
    found = verdicts(token({k: v for k, v in GOOD.items() if k != "sub"}))
    assert found.pop("istio") == "no sub claim: istio needs one for a request principal (<iss>/<sub>)"
    assert set(found.values()) == {"ok"}


def test_envoy_has_no_ed448_key() -> None:
    found = verdicts(token(GOOD, EDWARDS, "EdDSA", kid="x448"))
    assert (found["seed"], found["envoy"]) == ("ok", "key 'x448' is not one envoy can verify with")
    assert found["spacecloud"] == "key 'x448' is not one spacecloud can verify with"
    assert verdicts(token(GOOD, EDWARDS, "EdDSA", kid=None))["envoy"] == "no key for algorithm EdDSA"


def test_space_cloud_verifies_rsa_keys_with_rs256_only_and_no_ec_key() -> None:
    found = verdicts(token(GOOD, alg="PS256"))
    assert (found["seed"], found["envoy"]) == ("ok", "ok")
    assert found["spacecloud"] == "no key for algorithm PS256 with kid 'r1'"
    ec = verdicts(token(GOOD, ec_key(), "ES256", kid="e1"))
    assert (ec["seed"], ec["spacecloud"]) == ("ok", "key 'e1' is not one spacecloud can verify with")


def test_space_cloud_verifies_hmac_with_hs256_only() -> None:
    secret = {"static": {"secretRef": {"name": "s", "key": "k"}}, "audiences": ["api"], "issuers": [ISS]}
    for alg, valid in (("HS256", True), ("HS512", False)):
        key_set = key_from_hmac(b"s" * 64, kid="h1")
        data = render(parse_spec(secret), key_set)
        claims = token(GOOD, b"s" * 64, alg, kid="h1")
        assert bool(Verifier.from_data(data, profile=PROFILES["spacecloud"]).verify(claims, now=NOW)) is valid


def test_an_explicit_leeway_wins_over_the_profiles() -> None:
    late = token({**GOOD, "exp": NOW - 45})
    assert not Verifier.from_data(DATA, profile=PROFILES["envoy"], leeway=10).verify(late, now=NOW)
    assert Verifier.from_data(DATA, leeway=50).verify(late, now=NOW)


def test_the_command_line_takes_as(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name, text in DATA.items():
        (tmp_path / name).write_text(text)
    crit = token({**GOOD, "exp": 2**31}, crit=["exp2"], exp2=1)
    assert cli.main(["verify", "--dir", str(tmp_path), "--token", crit]) == 1
    assert "crit header" in capsys.readouterr().out
    assert cli.main(["verify", "--dir", str(tmp_path), "--token", crit, "--as", "envoy"]) == 0
    assert json.loads(capsys.readouterr().out)["sub"] == "alice"
    assert cli.main(["verify", "--dir", str(tmp_path), "--token", crit, "--as", "nginx"]) == 2
    assert "--as: invalid choice: 'nginx' (choose from 'seed', 'envoy', " in capsys.readouterr().err
