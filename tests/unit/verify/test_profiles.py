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
from jwks_operator.verify.verifier import KeySource, Policy, Verifier, verify_with
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


def token(claims: dict[str, Any] | str, key: Any = RSA, alg: str = "RS256", **header: Any) -> str:
    """Any header and claims, or any payload text (PyJWT's encode refuses an `iss` list or a `crit`
    header)."""
    algorithm = get_default_algorithms()[alg]
    fields = {k: v for k, v in {"alg": alg, "kid": "r1", **header}.items() if v is not None}
    head = b64(json.dumps(fields).encode())
    payload = claims if isinstance(claims, str) else json.dumps(claims)
    signing_input = f"{head}.{b64(payload.encode())}"
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


NOT_AN_OBJECT = "Invalid payload string: must be a json object"


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        ("not json", "Expecting value: line 1 column 1 (char 0)"),
        ('["a", "list"]', NOT_AN_OBJECT),
        ('"a string"', NOT_AN_OBJECT),
    ],
)
def test_a_signed_payload_that_is_no_claims_object_is_refused_when_crit_is_ignored(
    payload: str, problem: str
) -> None:
    """The profiles that ignore `crit` check its token's signature and payload themselves (PyJWT's decode
    refuses crit): a well signed payload that is not a JSON object is refused with a reason, as it is
    without crit, never accepted nor an exception."""
    found = verdicts(token(payload, crit=["exp2"], exp2=1))
    assert found.pop("seed") == "crit header: extension 'exp2' is not understood (RFC 7515 section 4.1.11)"
    assert set(found.values()) == {f"invalid token: {problem}"}
    without_crit = verdicts(token(payload)).values()
    assert all(reason.startswith("invalid token: Invalid payload string: ") for reason in without_crit)


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


def test_istio_needs_a_sub_that_is_not_empty() -> None:
    """An empty `sub` names no request principal: refused by istio as a missing one (PyJWT itself refuses a
    `sub` that is not a string, for every profile)."""
    found = verdicts(token({**GOOD, "sub": ""}))
    assert found.pop("istio") == "no sub claim: istio needs one for a request principal (<iss>/<sub>)"
    assert set(found.values()) == {"ok"}


def test_without_issuers_a_token_without_iss_passes_every_profile() -> None:
    """Envoy's rule that `iss` be a string applies to an `iss` the token has: none is no problem when no
    issuer is required."""
    no_issuers = render(parse_spec({"jwkUrl": "https://idp/jwks", "audiences": ["api"]}), KEYS)
    without_iss = token({k: v for k, v in GOOD.items() if k != "iss"})
    for name, profile in PROFILES.items():
        result = Verifier.from_data(no_issuers, profile=profile).verify(without_iss, now=NOW)
        assert (result.valid, result.claims.get("sub")) == (True, "alice"), (name, result.reason)
    assert verdicts(without_iss)["envoy"] == "issuer None is not one of ['https://idp']"


def test_envoy_has_no_ed448_key() -> None:
    found = verdicts(token(GOOD, EDWARDS, "EdDSA", kid="x448"))
    assert (found["seed"], found["envoy"]) == ("ok", "key 'x448' is not one envoy can verify with")
    assert found["spacecloud"] == "key 'x448' is not one spacecloud can verify with"
    assert verdicts(token(GOOD, EDWARDS, "EdDSA", kid=None))["envoy"] == "no key for algorithm EdDSA"


def test_a_token_without_kid_and_no_key_the_gateway_can_use_names_no_key() -> None:
    """Without a kid no key is named, so no key is "not one it can verify with": the source has no key
    for the token, the least specific reason, and another source's reason wins in either order."""
    ec_only = KeySource((public_jwk(ec_key(), kid="e1", alg="ES256", use="sig"),), Policy())
    rs256 = token(GOOD, kid=None)
    spacecloud = PROFILES["spacecloud"]
    result = verify_with(ec_only, rs256, leeway=0, now=NOW, profile=spacecloud)
    assert (result.valid, result.reason) == (False, "no key with kid None")
    wrong_audience = Verifier.from_data(DATA).sources[0]
    for sources in ([ec_only, wrong_audience], [wrong_audience, ec_only]):
        result = Verifier(sources, profile=spacecloud).verify(token({**GOOD, "aud": "x"}, kid=None), now=NOW)
        assert (result.valid, result.reason) == (False, "audience 'x' is not one of ['api']")


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
