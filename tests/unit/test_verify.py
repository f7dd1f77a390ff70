"""The verification rules gateways apply, as implemented by jwks_operator.verify."""

from __future__ import annotations

import ast
import base64
import json
import os
from pathlib import Path
from typing import Any

import jwt
import pytest

import jwks_operator
from jwks_operator.keys import KeySet
from jwks_operator.outputs import render
from jwks_operator.spec import parse_spec
from jwks_operator.static_keys import key_from_hmac
from jwks_operator.verify import DirectoryVerifier, KeySource, Policy, Verifier, strip_bearer, verify_with
from tests.material import ec_key, private_pem, public_jwk, public_pem, rsa_key

NOW = 1_800_000_000
RSA = rsa_key()
OTHER = rsa_key(n=1)
EC = ec_key()
URL_SPEC = {"jwkUrl": "https://idp/jwks", "audiences": ["api", "admin"], "issuers": ["https://idp"]}
SECRET = b"k" * 32


def url_verifier(**spec: Any) -> Verifier:
    keys = KeySet((public_jwk(RSA, kid="r1", alg="RS256", use="sig"), public_jwk(EC, kid="e1", use="sig")))
    return Verifier.from_data(render(parse_spec({**URL_SPEC, **spec}), keys))


def sign(
    claims: dict[str, Any], key: Any = RSA, alg: str = "RS256", kid: str | None = "r1", **hdr: Any
) -> str:
    headers = {"kid": kid, **hdr} if kid else hdr
    material = key if isinstance(key, bytes) else private_pem(key)
    return jwt.encode(claims, material, algorithm=alg, headers=headers)


GOOD = {"aud": "api", "iss": "https://idp", "sub": "u", "exp": NOW + 60, "iat": NOW}


def none_token(claims: dict[str, Any]) -> str:
    def b64(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{b64({'alg': 'none', 'kid': 'r1'})}.{b64(claims)}."


def confusion_token() -> str:
    """HS256 signed with the RSA public key's PEM as the HMAC secret (the classic confusion attack)."""
    import hashlib
    import hmac

    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    signing_input = (
        f"{b64(json.dumps({'alg': 'HS256', 'kid': 'r1'}).encode())}.{b64(json.dumps(GOOD).encode())}"
    )
    mac = hmac.new(public_pem(RSA).encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


CASES: list[tuple[str, str, bool, str]] = [
    ("good RS256", sign(GOOD), True, ""),
    ("good ES256", sign(GOOD, EC, "ES256", "e1"), True, ""),
    ("no kid: every fitting key is tried", sign(GOOD, kid=None), True, ""),
    ("aud list with one match", sign({**GOOD, "aud": ["other", "admin"]}), True, ""),
    ("no exp is allowed", sign({k: v for k, v in GOOD.items() if k != "exp"}), True, ""),
    ("expired", sign({**GOOD, "exp": NOW - 31}), False, "token expired"),
    ("expired within leeway", sign({**GOOD, "exp": NOW - 5}), True, ""),
    ("not yet valid", sign({**GOOD, "nbf": NOW + 300}), False, "not yet valid"),
    ("issued in the future", sign({**GOOD, "iat": NOW + 300}), False, "issued in the future"),
    ("exp not a number", sign({**GOOD, "exp": "tomorrow"}), False, "exp claim must be a number"),
    ("wrong audience", sign({**GOOD, "aud": "other"}), False, "audience 'other' is not one of"),
    ("missing audience", sign({k: v for k, v in GOOD.items() if k != "aud"}), False, "audience None"),
    ("wrong issuer", sign({**GOOD, "iss": "https://evil"}), False, "issuer 'https://evil'"),
    ("wrong key, same kid", sign(GOOD, OTHER), False, "signature verification failed"),
    ("unknown kid", sign(GOOD, kid="nope"), False, "no key with kid 'nope'"),
    ("alg none", none_token(GOOD), False, "algorithm 'none' is not allowed"),
    ("HS/RS confusion", confusion_token(), False, "algorithm HS256 is not in the allow-list"),
    ("kid of an EC key with RS256", sign(GOOD, kid="e1"), False, "no key for algorithm RS256 with kid 'e1'"),
    ("garbage", "not.a.jwt", False, "malformed token"),
]


@pytest.mark.parametrize(("case", "token", "valid", "reason"), CASES, ids=[c[0] for c in CASES])
def test_rules(case: str, token: str, valid: bool, reason: str) -> None:
    result = url_verifier().verify(token, now=NOW)
    assert result.valid is valid, result.reason
    assert reason in result.reason
    if valid:
        assert result.claims["sub"] == "u"


def test_hs_is_never_accepted_for_url_keys_even_if_listed() -> None:
    policy = Policy(algorithms=("RS256", "HS256"), from_url=True)
    source = KeySource((public_jwk(RSA, kid="r1"),), policy)
    result = Verifier([source]).verify(confusion_token(), now=NOW)
    assert result.reason == "algorithm HS256 is never accepted for keys from a URL"


def test_allow_list_restricts_algorithms() -> None:
    result = url_verifier(algorithms=["ES256"]).verify(sign(GOOD), now=NOW)
    assert result.reason == "algorithm RS256 is not in the allow-list ['ES256']"


def test_no_audience_policy_accepts_any_audience() -> None:
    verifier = url_verifier(audiences=None, issuers=None)
    assert verifier.verify(sign({**GOOD, "aud": "anything", "iss": "x"}), now=NOW)


def test_hmac_from_a_secret() -> None:
    spec = parse_spec({"static": {"secretRef": {"name": "s", "key": "k"}}, "audiences": ["api"]})
    verifier = Verifier.from_data(render(spec, key_from_hmac(SECRET)))
    assert verifier.verify(sign(GOOD, SECRET, "HS256", None), now=NOW)
    assert (
        verifier.verify(sign(GOOD, b"x" * 32, "HS256", None), now=NOW).reason
        == "signature verification failed"
    )
    assert not verifier.verify(sign(GOOD), now=NOW)


def test_any_one_source_verifies() -> None:
    hmac_spec = parse_spec({"static": {"secretRef": {"name": "s", "key": "k"}}, "audiences": ["api"]})
    sources = [*url_verifier().sources, KeySource.from_data(render(hmac_spec, key_from_hmac(SECRET)))]
    verifier = Verifier(sources)
    assert verifier.verify(sign(GOOD), now=NOW)
    assert verifier.verify(sign(GOOD, SECRET, "HS256", None), now=NOW)
    assert verifier.verify(sign({**GOOD, "aud": "x"}), now=NOW).reason.startswith("audience 'x'")
    assert Verifier([]).verify(sign(GOOD)).reason == "no keys configured"


@pytest.mark.parametrize("prefix", ["", "Bearer ", "bearer  ", "Authorization: Bearer "])
def test_bearer_forms(prefix: str) -> None:
    assert strip_bearer(prefix + "abc") == "abc"
    assert url_verifier().verify(prefix + sign(GOOD), now=NOW)


def test_directory_verifier_reloads_when_files_change(tmp_path: Path) -> None:
    spec = parse_spec(URL_SPEC)
    for name, value in render(spec, KeySet((public_jwk(OTHER, kid="r1", alg="RS256"),))).items():
        (tmp_path / name).write_text(value)
    verifier = DirectoryVerifier(tmp_path)
    assert not verifier.verify(sign(GOOD), now=NOW)
    assert not verifier.reload_if_changed()
    # kubelet-style update: write elsewhere, then swap in (new inode and mtime)
    for name, value in render(spec, KeySet((public_jwk(RSA, kid="r1", alg="RS256"),))).items():
        (tmp_path / f".{name}.new").write_text(value)
        os.replace(tmp_path / f".{name}.new", tmp_path / name)
    assert verifier.verify(sign(GOOD), now=NOW)


def test_shared_target_parts_each_keep_their_policy() -> None:
    from jwks_operator.outputs import aggregate

    rsa = render(
        parse_spec({**URL_SPEC, "audiences": ["api"]}), KeySet((public_jwk(RSA, kid="r1", alg="RS256"),))
    )
    ec = render(parse_spec({**URL_SPEC, "audiences": ["other"]}), KeySet((public_jwk(EC, kid="e1"),)))
    verifier = Verifier.from_data(aggregate(aggregate({}, "a", rsa), "b", ec))
    assert len(verifier.sources) == 2
    assert verifier.verify(sign(GOOD), now=NOW)
    assert verifier.verify(sign({**GOOD, "aud": "other"}, EC, "ES256", "e1"), now=NOW)
    assert not verifier.verify(sign({**GOOD, "aud": "other"}), now=NOW)  # rsa's part wants "api"


def test_cli_with_a_directory(tmp_path: Path) -> None:
    import subprocess
    import sys

    for name, value in render(
        parse_spec(URL_SPEC), KeySet((public_jwk(RSA, kid="r1", alg="RS256"),))
    ).items():
        (tmp_path / name).write_text(value)
    fresh = {**GOOD, "exp": 4_000_000_000, "iat": 1_700_000_000}

    def run(token: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "jwks_operator", "verify", "--dir", str(tmp_path), "--token", token]
        return subprocess.run(command, capture_output=True, text=True, check=False)

    ok = run(f"Authorization: Bearer {sign(fresh)}")
    assert ok.returncode == 0
    assert json.loads(ok.stdout)["sub"] == "u"
    bad = run(sign({**fresh, "iss": "https://evil"}))
    assert (bad.returncode, bad.stdout.strip()) == (
        1,
        "invalid: issuer 'https://evil' is not one of ['https://idp']",
    )


def test_a_key_of_another_curve_is_not_tried() -> None:
    token = sign(GOOD, EC, "ES256", "e")
    p384 = KeySource((public_jwk(ec_key("P-384"), kid="e"),), Policy())
    assert verify_with(p384, token, leeway=0, now=NOW).reason == "no key for algorithm ES256 with kid 'e'"
    both = KeySource((*p384.keys, public_jwk(EC, kid="e")), Policy())
    assert verify_with(both, token, leeway=0, now=NOW)


def test_the_library_imports_no_producer_module() -> None:
    """jwks_operator.verify ships to gateways' sidecars and tests: its constants come from names and keys,
    and keys (pure tables and parsing) imports only errors."""

    def imported(module: str) -> set[str]:
        tree = ast.parse((Path(jwks_operator.__file__).parent / f"{module}.py").read_text())
        return {
            str(node.module) for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level
        }

    assert imported("verify") == {"names", "keys"}
    assert imported("keys") == {"errors"}
    assert imported("names") == set()
    assert imported("errors") == set()
