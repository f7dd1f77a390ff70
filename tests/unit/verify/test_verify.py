"""The verification rules gateways apply, as implemented by jwks_operator.verify."""

from __future__ import annotations

import base64
import json
import os
import time
from pathlib import Path
from typing import Any

import jwt
import pytest

from jwks_operator.keys.keyset import KeySet
from jwks_operator.keys.static import key_from_hmac
from jwks_operator.publish.outputs import render
from jwks_operator.resource.spec import parse_spec
from jwks_operator.verify import verifier as verifier_module
from jwks_operator.verify.data import json_type, sources_from_data
from jwks_operator.verify.verifier import (
    DirectoryVerifier,
    KeySource,
    MissingPolicyError,
    Policy,
    PublishedDataError,
    Result,
    Verifier,
    strip_bearer,
    verify_with,
)
from tests.material import ec_key, public_jwk, public_pem, rsa_key

NOW = 1_800_000_000
RSA = rsa_key()
OTHER = rsa_key(n=1)
EC = ec_key()
URL_SPEC = {"jwkUrl": "https://idp/jwks", "audiences": ["api", "admin"], "issuers": ["https://idp"]}
SECRET = b"k" * 32


def expect(result: Result, valid: bool, reason: str = "", *, prefix: bool = False) -> Result:
    """Assert a verdict and its reason together: a valid result has claims and no reason; an invalid one
    has no claims and exactly `reason` (or a reason starting with it, when `prefix`)."""
    assert result.valid is valid, result
    assert bool(result) is valid
    if valid:
        assert (result.reason, bool(result.claims)) == ("", True), result
    else:
        assert result.claims == {}, result
        assert result.reason.startswith(reason) if prefix else result.reason == reason, result.reason
    return result


def url_verifier(**spec: Any) -> Verifier:
    keys = KeySet((public_jwk(RSA, kid="r1", alg="RS256", use="sig"), public_jwk(EC, kid="e1", use="sig")))
    return Verifier.from_data(render(parse_spec({**URL_SPEC, **spec}), keys))


def sign(
    claims: dict[str, Any], key: Any = RSA, alg: str = "RS256", kid: str | None = "r1", **hdr: Any
) -> str:
    headers = {"kid": kid, **hdr} if kid else hdr
    return jwt.encode(claims, key, algorithm=alg, headers=headers)  # a key object: no PEM parsed per call


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


WITHOUT_IAT = {k: v for k, v in GOOD.items() if k != "iat"}
ISSUERS = "['https://idp']"
AUDIENCES = "['api', 'admin']"
EXPIRED = "token expired (exp is in the past)"
NOT_YET = "token not yet valid (nbf is in the future)"
NOT_LISTED = "algorithm HS256 is not in the allow-list ['ES256', 'RS256']"
FUTURE_IAT = "token issued in the future (iat)"
NO_AUD = {k: v for k, v in GOOD.items() if k != "aud"}
CASES: list[tuple[str, str, bool, str]] = [
    ("good RS256", sign(GOOD), True, ""),
    ("good ES256", sign(GOOD, EC, "ES256", "e1"), True, ""),
    ("no kid: every fitting key is tried", sign(GOOD, kid=None), True, ""),
    ("aud list with one match", sign({**GOOD, "aud": ["other", "admin"]}), True, ""),
    ("no exp is allowed", sign({k: v for k, v in GOOD.items() if k != "exp"}), True, ""),
    ("no iat is allowed", sign(WITHOUT_IAT), True, ""),
    ("expired", sign({**GOOD, "exp": NOW - 31}), False, EXPIRED),
    ("expired within leeway", sign({**GOOD, "exp": NOW - 5}), True, ""),
    # the default leeway is 30 s: exp at exactly now - 30 is expired, a second later it is not
    ("exp at now - leeway", sign({**GOOD, "exp": NOW - 30}), False, EXPIRED),
    ("exp just inside the leeway", sign({**GOOD, "exp": NOW - 29}), True, ""),
    ("not yet valid", sign({**GOOD, "nbf": NOW + 300}), False, NOT_YET),
    ("nbf at now + leeway", sign({**GOOD, "nbf": NOW + 30}), True, ""),
    ("nbf past the leeway", sign({**GOOD, "nbf": NOW + 31}), False, NOT_YET),
    ("issued in the future", sign({**GOOD, "iat": NOW + 300}), False, FUTURE_IAT),
    ("iat at now + leeway", sign({**GOOD, "iat": NOW + 30}), True, ""),
    ("iat past the leeway", sign({**GOOD, "iat": NOW + 31}), False, FUTURE_IAT),
    ("exp not a number", sign({**GOOD, "exp": "1"}), False, "exp claim must be a number, not a string"),
    ("wrong audience", sign({**GOOD, "aud": "other"}), False, f"audience 'other' is not one of {AUDIENCES}"),
    ("missing audience", sign(NO_AUD), False, f"audience None is not one of {AUDIENCES}"),
    ("wrong issuer", sign({**GOOD, "iss": "e"}), False, f"issuer 'e' is not one of {ISSUERS}"),
    ("wrong key, same kid", sign(GOOD, OTHER), False, "signature verification failed"),
    ("unknown kid", sign(GOOD, kid="nope"), False, "no key with kid 'nope'"),
    ("alg none", none_token(GOOD), False, "algorithm 'none' is not allowed"),
    ("HS/RS confusion", confusion_token(), False, NOT_LISTED),
    ("kid of an EC key with RS256", sign(GOOD, kid="e1"), False, "no key for algorithm RS256 with kid 'e1'"),
    ("garbage", "not.a.jwt", False, "malformed token: Invalid header padding"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "token", "valid", "reason"), CASES, ids=[c[0] for c in CASES])
def test_rules(case: str, token: str, valid: bool, reason: str) -> None:
    result = expect(url_verifier().verify(token, now=NOW), valid, reason)
    if valid:
        assert result.claims["sub"] == "u"


def test_the_default_leeway_is_30_seconds_everywhere(tmp_path: Path) -> None:
    """Verifier(), Verifier.from_data() and DirectoryVerifier() share the default leeway of 30 s."""
    data = published()
    for name, value in data.items():
        (tmp_path / name).write_text(value)
    verifiers: list[Verifier | DirectoryVerifier] = [
        Verifier(sources_from_data(data)),
        Verifier.from_data(data),
        DirectoryVerifier(tmp_path),
    ]
    for verifier in verifiers:
        expect(verifier.verify(sign({**GOOD, "exp": NOW - 29}), now=NOW), True)
        expect(
            verifier.verify(sign({**GOOD, "exp": NOW - 30}), now=NOW),
            False,
            "token expired (exp is in the past)",
        )
        expect(verifier.verify(sign({**GOOD, "nbf": NOW + 30}), now=NOW), True)
        expect(
            verifier.verify(sign({**GOOD, "nbf": NOW + 31}), now=NOW),
            False,
            "token not yet valid (nbf is in the future)",
        )


def test_an_explicit_leeway_moves_the_boundaries() -> None:
    source = url_verifier().sources[0]
    expect(
        verify_with(source, sign({**GOOD, "exp": NOW}), leeway=0, now=NOW),
        False,
        "token expired (exp is in the past)",
    )
    expect(verify_with(source, sign({**GOOD, "exp": NOW + 1}), leeway=0, now=NOW), True)
    expect(verify_with(source, sign({**GOOD, "nbf": NOW}), leeway=0, now=NOW), True)
    expect(
        verify_with(source, sign({**GOOD, "iat": NOW + 1}), leeway=0, now=NOW),
        False,
        "token issued in the future (iat)",
    )


def test_without_now_the_clock_is_read() -> None:
    fresh = {**GOOD, "iat": int(time.time()), "exp": int(time.time()) + 600}
    expect(url_verifier().verify(sign(fresh)), True)
    expect(
        url_verifier().verify(sign({**fresh, "exp": 1_000_000_000})),
        False,
        "token expired (exp is in the past)",
    )


def test_hs_is_never_accepted_for_url_keys_even_if_listed() -> None:
    policy = Policy(algorithms=("RS256", "HS256"), from_url=True)
    source = KeySource((public_jwk(RSA, kid="r1"),), policy)
    reason = "algorithm HS256 is never accepted for keys from a URL"
    expect(Verifier([source]).verify(confusion_token(), now=NOW), False, reason)


def test_allow_list_restricts_algorithms() -> None:
    result = url_verifier(algorithms=["ES256"]).verify(sign(GOOD), now=NOW)
    expect(result, False, "algorithm RS256 is not in the allow-list ['ES256']")


@pytest.mark.parametrize(
    ("alg", "reason"),
    [
        (["RS256"], "algorithm ['RS256'] is not allowed"),  # not a string (nor hashable)
        (256, "algorithm 256 is not allowed"),
        ("RS1", "algorithm 'RS1' is not allowed"),  # a string, but no algorithm of ours
        ("none", "algorithm 'none' is not allowed"),
    ],
)
def test_an_algorithm_outside_the_table_is_refused_without_an_allow_list(alg: Any, reason: str) -> None:
    token = raw_token({"alg": alg, "kid": "r1"}, json.dumps(GOOD))
    expect(
        verify_with(KeySource((public_jwk(RSA, kid="r1"),), Policy()), token, leeway=0, now=NOW),
        False,
        reason,
    )


def test_no_key_for_the_algorithm_names_the_kid_only_when_there_is_one() -> None:
    source = KeySource((public_jwk(RSA, kid="r1"),), Policy())
    token = sign(GOOD, EC, "ES256", None)
    expect(verify_with(source, token, leeway=0, now=NOW), False, "no key for algorithm ES256")


def test_no_audience_policy_accepts_any_audience() -> None:
    verifier = url_verifier(audiences=None, issuers=None)
    expect(verifier.verify(sign({**GOOD, "aud": "anything", "iss": "x"}), now=NOW), True)


def test_hmac_from_a_secret() -> None:
    spec = parse_spec({"static": {"secretRef": {"name": "s", "key": "k"}}, "audiences": ["api"]})
    verifier = Verifier.from_data(render(spec, key_from_hmac(SECRET)))
    expect(verifier.verify(sign(GOOD, SECRET, "HS256", None), now=NOW), True)
    expect(
        verifier.verify(sign(GOOD, b"x" * 32, "HS256", None), now=NOW), False, "signature verification failed"
    )
    reason = "algorithm RS256 is not in the allow-list ['HS256', 'HS384', 'HS512']"
    expect(verifier.verify(sign(GOOD), now=NOW), False, reason)


def test_any_one_source_verifies() -> None:
    hmac_spec = parse_spec({"static": {"secretRef": {"name": "s", "key": "k"}}, "audiences": ["api"]})
    sources = [*url_verifier().sources, KeySource.from_data(render(hmac_spec, key_from_hmac(SECRET)))]
    verifier = Verifier(sources)
    expect(verifier.verify(sign(GOOD), now=NOW), True)
    expect(verifier.verify(sign(GOOD, SECRET, "HS256", None), now=NOW), True)
    expect(
        verifier.verify(sign({**GOOD, "aud": "x"}), now=NOW), False, f"audience 'x' is not one of {AUDIENCES}"
    )


def test_no_keys_configured_is_invalid() -> None:
    expect(Verifier([]).verify(sign(GOOD)), False, "no keys configured")
    expect(Verifier([]).verify(sign(GOOD), now=NOW), False, "no keys configured")


def test_the_most_specific_rejection_is_reported() -> None:
    """A source without the token's kid says least: another source's reason wins, in any order."""
    without_kid = KeySource((public_jwk(EC, kid="e1"),), Policy())
    wrong_audience = url_verifier().sources[0]
    token = sign({**GOOD, "aud": "x"})
    for sources in ([without_kid, wrong_audience], [wrong_audience, without_kid]):
        reason = f"audience 'x' is not one of {AUDIENCES}"
        expect(Verifier(sources).verify(token, now=NOW), False, reason)
    nowhere = Verifier([without_kid, KeySource((public_jwk(OTHER, kid="o1"),), Policy())])
    expect(nowhere.verify(token, now=NOW), False, "no key with kid 'r1'")


def test_rotation_the_matching_key_may_come_second() -> None:
    """Any one fitting key verifies: a signature that fails with the first key is tried with the next."""
    rotated = KeySource((public_jwk(OTHER, kid="r1"), public_jwk(RSA, kid="r1")), Policy())
    expect(verify_with(rotated, sign(GOOD), leeway=0, now=NOW), True)
    no_kid = KeySource((public_jwk(OTHER), public_jwk(RSA)), Policy())
    expect(verify_with(no_kid, sign(GOOD, kid=None), leeway=0, now=NOW), True)
    unusable_first = KeySource(
        ({**public_jwk(RSA, kid="r1"), "n": "!!!"}, public_jwk(RSA, kid="r1")), Policy()
    )
    expect(verify_with(unusable_first, sign(GOOD), leeway=0, now=NOW), True)


def test_rotation_after_another_token_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """A key that fails with another token error (not a signature mismatch) does not stop the search."""
    decode = jwt.decode
    first = jwt.PyJWK(public_jwk(OTHER), algorithm="RS256").key.public_numbers()

    def picky(token: str, key: Any, **kwargs: Any) -> Any:
        if key.public_numbers() == first:
            raise jwt.InvalidTokenError("not for this key")
        return decode(token, key, **kwargs)

    monkeypatch.setattr(jwt, "decode", picky)
    source = KeySource((public_jwk(OTHER), public_jwk(RSA)), Policy())
    expect(verify_with(source, sign(GOOD, kid=None), leeway=0, now=NOW), True)
    alone = KeySource((public_jwk(OTHER),), Policy())
    expect(
        verify_with(alone, sign(GOOD, kid=None), leeway=0, now=NOW), False, "invalid token: not for this key"
    )


def test_rotation_after_a_key_pyjwt_will_not_load(monkeypatch: pytest.MonkeyPatch) -> None:
    """Should PyJWT refuse to load a key that passed the operator's key checks (a rule of its own), the
    key is unusable and the next one is still tried."""
    source = KeySource((public_jwk(OTHER, kid="r1"), public_jwk(RSA, kid="r1")), Policy())
    alone = KeySource(source.keys[:1], Policy())
    assert (source.problems, alone.problems) == ((None, None), (None,))  # checked (and kept) before PyJWT
    load, refused = jwt.PyJWK, source.keys[0]["n"]

    def picky(data: dict[str, Any], algorithm: str | None = None) -> Any:
        if data.get("n") == refused:
            raise jwt.PyJWKError("a rule of its own")
        return load(data, algorithm)

    monkeypatch.setattr(jwt, "PyJWK", picky)
    expect(verify_with(source, sign(GOOD), leeway=0, now=NOW), True)
    expect(
        verify_with(alone, sign(GOOD), leeway=0, now=NOW), False, "key 'r1' is unusable: a rule of its own"
    )


def test_a_header_pyjwt_refuses_for_a_rule_of_its_own_is_malformed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Should PyJWT refuse a header for a rule this module does not know, the token is still refused."""

    def refuse(token: str) -> Any:
        raise jwt.InvalidTokenError("a rule of its own")

    monkeypatch.setattr(jwt, "get_unverified_header", refuse)
    expect(url_verifier().verify(sign(GOOD), now=NOW), False, "malformed token: a rule of its own")


def test_a_header_that_does_not_decode_reads_as_empty() -> None:
    assert verifier_module._decoded_header("!.x.y") == {}
    assert verifier_module._decoded_header(b64(b"[1]") + ".x.y") == {}
    assert verifier_module._decoded_header(b64(b'{"kid": 5}') + ".x.y") == {"kid": 5}


@pytest.mark.parametrize("prefix", ["", "Bearer ", "bearer  ", "Authorization: Bearer "])
def test_bearer_forms(prefix: str) -> None:
    assert strip_bearer(prefix + "abc") == "abc"
    assert strip_bearer(prefix + "a:b") == "a:b", "only the first colon ends the header name"
    expect(url_verifier().verify(prefix + sign(GOOD), now=NOW), True)


def test_directory_verifier_reloads_when_files_change(tmp_path: Path) -> None:
    spec = parse_spec(URL_SPEC)
    for name, value in render(spec, KeySet((public_jwk(OTHER, kid="r1", alg="RS256"),))).items():
        (tmp_path / name).write_text(value)
    verifier = DirectoryVerifier(tmp_path)
    assert verifier.reload_if_changed() is True
    assert verifier.reload_if_changed() is False
    expect(verifier.verify(sign(GOOD), now=NOW), False, "signature verification failed")
    assert verifier.reload_if_changed() is False
    # kubelet-style update: write elsewhere, then swap in (new inode and mtime)
    for name, value in render(spec, KeySet((public_jwk(RSA, kid="r1", alg="RS256"),))).items():
        (tmp_path / f".{name}.new").write_text(value)
        os.replace(tmp_path / f".{name}.new", tmp_path / name)
    expect(verifier.verify(sign(GOOD), now=NOW), True)


def test_directory_verifier_reads_only_json_files(tmp_path: Path) -> None:
    """kubelet's mount holds `..data` folders and symlinks: a folder named like a file is not read."""
    for name, value in published().items():
        (tmp_path / name).write_text(value)
    (tmp_path / "extra.json").mkdir()
    (tmp_path / "notes.txt").write_text("{not json")
    expect(DirectoryVerifier(tmp_path).verify(sign(GOOD), now=NOW), True)


def test_a_mounted_file_that_is_not_utf8_is_named(tmp_path: Path) -> None:
    for name, value in published().items():
        (tmp_path / name).write_text(value)
    (tmp_path / "policy.json").write_bytes(b'{"issuers": ["\xff"]}')
    with pytest.raises(PublishedDataError, match=r"^policy\.json is not UTF-8 text$"):
        DirectoryVerifier(tmp_path).verify(sign(GOOD), now=NOW)


def test_shared_target_parts_each_keep_their_policy() -> None:
    from jwks_operator.publish.outputs import aggregate

    rsa = render(
        parse_spec({**URL_SPEC, "audiences": ["api"]}), KeySet((public_jwk(RSA, kid="r1", alg="RS256"),))
    )
    ec = render(parse_spec({**URL_SPEC, "audiences": ["other"]}), KeySet((public_jwk(EC, kid="e1"),)))
    verifier = Verifier.from_data(aggregate(aggregate({}, "a", rsa), "b", ec))
    assert len(verifier.sources) == 2
    expect(verifier.verify(sign(GOOD), now=NOW), True)
    expect(verifier.verify(sign({**GOOD, "aud": "other"}, EC, "ES256", "e1"), now=NOW), True)
    # rsa's part wants "api"
    expect(
        verifier.verify(sign({**GOOD, "aud": "other"}), now=NOW),
        False,
        "audience 'other' is not one of ['api']",
    )


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
    expect(verify_with(p384, token, leeway=0, now=NOW), False, "no key for algorithm ES256 with kid 'e'")
    both = KeySource((*p384.keys, public_jwk(EC, kid="e")), Policy())
    expect(verify_with(both, token, leeway=0, now=NOW), True)


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def raw_token(header: dict[str, Any], payload: str, key: Any = RSA) -> str:
    """RS256 over a header and a payload written by hand (PyJWT's encoder refuses some of them)."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(payload.encode())}"
    signature = jwt.algorithms.RSAAlgorithm(jwt.algorithms.RSAAlgorithm.SHA256).sign(
        signing_input.encode(), key
    )
    return f"{signing_input}.{b64(signature)}"


def with_claim(name: str, json_value: str) -> str:
    """A good token, signed, whose claim `name` is the JSON text `json_value` (NaN is no JSON literal)."""
    others = json.dumps({k: v for k, v in GOOD.items() if k != name})
    return raw_token({"alg": "RS256", "kid": "r1"}, f'{others[:-1]}, "{name}": {json_value}}}')


MALFORMED_CLAIMS: list[tuple[str, str, str]] = [
    ("exp", "NaN", "exp claim must be a finite number, not NaN"),
    ("exp", "Infinity", "exp claim must be a finite number, not Infinity"),
    ("exp", "-Infinity", "exp claim must be a finite number, not -Infinity"),
    ("exp", "1e400", "exp claim must be a finite number, not Infinity"),
    ("exp", "1" + "0" * 400, "exp claim must be a finite number"),  # an integer: not shown
    ("exp", "true", "exp claim must be a number, not a boolean"),
    ("exp", '"4000000000"', "exp claim must be a number, not a string"),
    ("exp", "null", "exp claim must be a number, not null"),
    ("nbf", "NaN", "nbf claim must be a finite number, not NaN"),
    ("nbf", "-Infinity", "nbf claim must be a finite number, not -Infinity"),
    ("nbf", "[1]", "nbf claim must be a number, not a list"),
    ("iat", "NaN", "iat claim must be a finite number, not NaN"),
    ("iat", "-Infinity", "iat claim must be a finite number, not -Infinity"),
    ("iat", "false", "iat claim must be a number, not a boolean"),
    ("aud", '[5, "api"]', "aud claim must be a string or a list of strings, not a list with a number"),
    (
        "aud",
        '[{"aud": "api"}, "api"]',
        "aud claim must be a string or a list of strings, not a list with an object",
    ),
    ("aud", '{"api": true}', "aud claim must be a string or a list of strings, not an object"),
    (
        "iss",
        '[5, "https://idp"]',
        "iss claim must be a string or a list of strings, not a list with a number",
    ),
    ("iss", "5", "iss claim must be a string or a list of strings, not a number"),
]


@pytest.mark.parametrize(
    ("name", "value", "reason"), MALFORMED_CLAIMS, ids=[f"{c[0]}={c[1][:12]}" for c in MALFORMED_CLAIMS]
)
def test_malformed_registered_claims_are_refused(name: str, value: str, reason: str) -> None:
    """NaN compares false with everything, so a NaN exp never expired and a NaN nbf was always due."""
    expect(url_verifier().verify(with_claim(name, value), now=NOW), False, reason)
    no_checks = KeySource((public_jwk(RSA, kid="r1"),), Policy())  # the shape is checked regardless
    expect(verify_with(no_checks, with_claim(name, value), leeway=0, now=NOW), False, reason)


def test_well_formed_registered_claims_still_pass() -> None:
    expect(url_verifier().verify(with_claim("exp", str(NOW + 60.5)), now=NOW), True)
    expect(url_verifier().verify(with_claim("aud", '["x", "api"]'), now=NOW), True)
    issuers = json.dumps(["https://other", "https://idp"])
    expect(url_verifier().verify(with_claim("iss", issuers), now=NOW), True)  # iss may be an array
    reason = "issuer ['https://other'] is not one of ['https://idp']"
    expect(url_verifier().verify(with_claim("iss", '["https://other"]'), now=NOW), False, reason)
    expect(
        url_verifier().verify(with_claim("aud", "[]"), now=NOW),
        False,
        f"audience [] is not one of {AUDIENCES}",
    )
    expect(url_verifier().verify(with_claim("nbf", str(NOW - 1)), now=NOW), True)


UNKNOWN = "is not understood (RFC 7515 section 4.1.11)"
HEADERS: list[tuple[str, dict[str, Any], str]] = [
    ("crit naming an unknown extension", {"crit": ["x"], "x": 1}, f"crit header: extension 'x' {UNKNOWN}"),
    ("crit naming b64 (RFC 7797)", {"crit": ["b64"], "b64": True}, f"crit header: extension 'b64' {UNKNOWN}"),
    ("crit naming exp", {"crit": ["exp"], "exp": 1}, f"crit header: extension 'exp' {UNKNOWN}"),
    ("crit not a list", {"crit": "x", "x": 1}, "crit header must be a list of extension names"),
    ("crit empty", {"crit": []}, "crit header must be a list of extension names"),
    ("crit of numbers", {"crit": [1]}, "crit header must be a list of extension names"),
    ("kid a number", {"kid": 5}, "kid header must be a string, not a number"),
    ("kid null", {"kid": None}, "kid header must be a string, not null"),
    ("kid a list", {"kid": ["r1"]}, "kid header must be a string, not a list"),
    ("kid an object", {"kid": {"kid": "r1"}}, "kid header must be a string, not an object"),
]


@pytest.mark.parametrize(("case", "header", "reason"), HEADERS, ids=[h[0] for h in HEADERS])
def test_headers_we_cannot_honour_are_refused(case: str, header: dict[str, Any], reason: str) -> None:
    """RFC 7515 section 4.1.11: a recipient that does not understand a crit extension must reject."""
    token = raw_token({"alg": "RS256", "kid": "r1", **header}, json.dumps(GOOD))
    expect(url_verifier().verify(token, now=NOW), False, reason)


def test_unusable_keys_are_a_reason_not_an_exception() -> None:
    good = public_jwk(RSA, kid="r1", alg="RS256")
    for broken in ({"n": 5}, {"e": None}, {"n": "AQAB"}, {"n": "!!!"}):
        source = KeySource(({**good, **broken},), Policy())
        expect(
            verify_with(source, sign(GOOD), leeway=0, now=NOW), False, "key 'r1' is unusable: ", prefix=True
        )
        expect(
            verify_with(KeySource(({**good, **broken}, good), Policy()), sign(GOOD), leeway=0, now=NOW), True
        )


NULL = object()  # in published(): the member is JSON null


SMALL_ORDER_X = b64(b"\x01" + bytes(31))  # the identity point of Ed25519, as a public key


def forged_eddsa_token(claims: dict[str, Any], kid: str = "small") -> str:
    """A token "signed" for the Ed25519 public key SMALL_ORDER_X without any private key: R the identity
    and S = 0 satisfy [S]B = R + [k]A for every message, since [k]A is the identity too."""
    header, payload = json.dumps({"alg": "EdDSA", "kid": kid}), json.dumps(claims)
    signature = b"\x01" + bytes(63)  # R: the identity; S: 0
    return f"{b64(header.encode())}.{b64(payload.encode())}.{b64(signature)}"


@pytest.mark.parametrize("how", ["from_data", "KeySource"])
def test_a_small_order_ed25519_key_given_to_the_library_is_refused_when_loaded(how: str) -> None:
    """The operator never publishes such a key (keys.checks), but the library also reads keys it was given
    directly: it runs the same checks on them, so the forged token does not verify."""
    small = {"kty": "OKP", "crv": "Ed25519", "x": SMALL_ORDER_X, "kid": "small", "alg": "EdDSA", "use": "sig"}
    token = forged_eddsa_token(GOOD)
    if how == "from_data":
        data = {**published(algorithms=[]), "jwks.json": json.dumps({"keys": [small]})}
        result = Verifier.from_data(data).verify(token, now=NOW)
    else:
        result = verify_with(KeySource((small,), Policy()), token, leeway=0, now=NOW)
    assert not result.valid
    assert result.reason == (
        "key 'small' is unusable: Ed25519 public key is a point of small order (signatures could be forged)"
    )


def test_the_operators_key_checks_run_on_keys_given_to_the_library() -> None:
    """A weak RSA key, an encryption key: refused by the library as by the operator (the other keys of
    the source still verify)."""
    weak = public_jwk(rsa_key(bits=1024), kid="r1", alg="RS256")
    for bad, problem in [
        (weak, "RSA key is 1024 bits; at least 2048 are required"),
        ({**public_jwk(RSA, kid="r1"), "use": "enc"}, "use 'enc' is not a signature key"),
    ]:
        result = verify_with(KeySource((bad,), Policy()), sign(GOOD), leeway=0, now=NOW)
        assert result.reason.startswith("key 'r1' is unusable: "), result.reason
        assert problem in result.reason
        both = KeySource((bad, public_jwk(RSA, kid="r1")), Policy())
        assert verify_with(both, sign(GOOD), leeway=0, now=NOW)


def published(**policy: Any) -> dict[str, str]:
    """What the operator publishes for URL_SPEC with RSA, the policy.json members replaced (None: dropped,
    NULL: null)."""
    data = render(parse_spec(URL_SPEC), KeySet((public_jwk(RSA, kid="r1", alg="RS256"),)))
    doc = {**json.loads(data["policy.json"]), **policy}
    kept = {k: None if v is NULL else v for k, v in doc.items() if v is not None}
    return {**data, "policy.json": json.dumps(kept)}


BAD_POLICIES: list[tuple[str, dict[str, Any], str]] = [
    (
        "audiences a string",
        {"audiences": "api"},
        "audiences must be a list of non-empty strings, not a string",
    ),
    ("audiences missing", {"audiences": None}, "audiences is missing or null (give [] for any)"),
    ("audiences null", {"audiences": NULL}, "audiences is missing or null (give [] for any)"),
    ("issuers null", {"issuers": NULL}, "issuers is missing or null (give [] for any)"),
    ("issuers an object", {"issuers": {"https://idp": True}}, "issuers must be a list of non-empty strings"),
    ("algorithms a number", {"algorithms": 256}, "algorithms must be a list of non-empty strings, not a"),
    ("an audience a number", {"audiences": ["api", 1]}, "audiences[1] must be a non-empty string, not a n"),
    ("an empty issuer", {"issuers": [""]}, "issuers[0] must be a non-empty string, not an empty string"),
    (
        "a nested algorithm",
        {"algorithms": [["RS256"]]},
        "algorithms[0] must be a non-empty string, not a list",
    ),
    ("source a string", {"source": "jwkUrl"}, "source must be an object with a type, not a string"),
    ("source a list", {"source": []}, "source must be an object with a type, not a list"),
    ("source without a type", {"source": {"url": "https://idp"}}, "source.type must be a non-empty string"),
    (
        "source of a numeric type",
        {"source": {"type": 1}},
        "source.type must be a non-empty string, not a number",
    ),
    (
        "source of an empty type",
        {"source": {"type": ""}},
        "source.type must be a non-empty string, not an empty string",
    ),
    ("source null", {"source": NULL}, "source is missing"),
    ("source missing", {"source": None}, "source is missing"),
]


@pytest.mark.parametrize(("case", "policy", "message"), BAD_POLICIES, ids=[p[0] for p in BAD_POLICIES])
def test_policy_json_is_parsed_strictly(case: str, policy: dict[str, Any], message: str) -> None:
    with pytest.raises(PublishedDataError) as raised:
        Verifier.from_data(published(**policy))
    assert type(raised.value) is PublishedDataError
    assert str(raised.value).startswith(f"policy.json is not a policy: {message}"), raised.value
    with pytest.raises(PublishedDataError):  # also without a policy required
        Verifier.from_data(published(**policy), require_policy=False)


def test_a_string_of_audiences_is_not_a_set_of_letters() -> None:
    """`"audiences": "proj"` used to become ('p', 'r', 'o', 'j'): a token for audience "p" passed."""
    with pytest.raises(PublishedDataError, match="audiences must be a list"):
        Verifier.from_data(published(audiences="proj")).verify(sign({**GOOD, "aud": "p"}), now=NOW)
    with pytest.raises(PublishedDataError, match="source must be an object"):
        Policy.from_json({"issuers": [], "audiences": [], "algorithms": [], "source": "jwkUrl"})
    with pytest.raises(PublishedDataError, match=r"^policy.json is not a JSON object$"):
        Verifier.from_data({**published(), "policy.json": '["api"]'})
    with pytest.raises(PublishedDataError, match=r"^policy.json is not a JSON object$"):
        Policy.from_json(["api"])  # type: ignore[arg-type]
    with pytest.raises(PublishedDataError, match=r"^a.policy.json is not a JSON object$"):
        Policy.from_json("api", "a.policy.json")  # type: ignore[arg-type]


def test_policy_members_are_read_as_published() -> None:
    policy = Policy.from_json(json.loads(published()["policy.json"]))
    assert policy == Policy(("api", "admin"), ("https://idp",), ("RS256",), from_url=True)
    static = Policy.from_json({"issuers": [], "audiences": [], "algorithms": [], "source": {"type": "jwks"}})
    assert static == Policy()


def test_a_missing_policy_is_an_explicit_choice(tmp_path: Path) -> None:
    """Without policy.json no audience or issuer was checked, silently: now an error unless asked for."""
    bare = {"jwks.json": published()["jwks.json"]}
    foreign = sign({**GOOD, "aud": "someone-else", "iss": "https://evil"})
    with pytest.raises(MissingPolicyError) as raised:
        Verifier.from_data(bare)
    assert str(raised.value) == (
        "no policy.json in the published data, so no audience or issuer would be checked; mount or "
        "publish it with jwks.json, or pass require_policy=False to check signatures and times only"
    )
    assert raised.value.entry == "policy.json"
    without = Verifier.from_data(bare, require_policy=False)
    expect(without.verify(foreign, now=NOW), True)
    expect(without.verify(none_token(GOOD), now=NOW), False, "algorithm 'none' is not allowed")
    expect(without.verify(confusion_token(), now=NOW), False, "no key for algorithm HS256 with kid 'r1'")
    reason = f"audience 'someone-else' is not one of {AUDIENCES}"
    expect(Verifier.from_data(published()).verify(foreign, now=NOW), False, reason)
    (tmp_path / "jwks.json").write_text(bare["jwks.json"])
    with pytest.raises(MissingPolicyError):
        DirectoryVerifier(tmp_path).verify(foreign, now=NOW)
    expect(DirectoryVerifier(tmp_path, require_policy=False).verify(foreign, now=NOW), True)


def test_the_strict_default_holds_for_every_reader() -> None:
    """KeySource.from_data and sources_from_data, like Verifier.from_data, require policy.json by default."""
    bare = {"jwks.json": published()["jwks.json"]}
    with pytest.raises(MissingPolicyError, match=r"^no policy.json in the published data"):
        KeySource.from_data(bare)
    with pytest.raises(MissingPolicyError, match=r"^no policy.json in the published data"):
        sources_from_data(bare)
    assert KeySource.from_data(bare, require_policy=False).policy == Policy()
    assert [s.policy for s in sources_from_data(bare, require_policy=False)] == [Policy()]


def test_a_shared_part_without_its_policy_is_refused_too() -> None:
    from jwks_operator.publish.outputs import aggregate

    data = aggregate({}, "a", published())
    del data["a.policy.json"]
    with pytest.raises(MissingPolicyError, match=r"^no a.policy.json in the published data") as raised:
        Verifier.from_data(data)
    assert raised.value.entry == "a.policy.json"
    assert len(Verifier.from_data(data, require_policy=False).sources) == 1


@pytest.mark.parametrize("kid", [5, None, ["r1"], {"kid": "r1"}, True])
def test_a_key_set_with_a_non_string_kid_is_refused(kid: Any) -> None:
    data = published()
    keys = [public_jwk(EC, kid="e1"), {**public_jwk(RSA, alg="RS256"), "kid": kid}]
    with pytest.raises(
        PublishedDataError, match=r"^jwks.json is not a JWK Set: keys\[1\].kid must be a string"
    ):
        Verifier.from_data({**data, "jwks.json": json.dumps({"keys": keys})})


def test_json_constants_are_not_json() -> None:
    with pytest.raises(PublishedDataError, match=r"^jwks\.json is not valid JSON: NaN is not a JSON value"):
        Verifier.from_data({**published(), "jwks.json": '{"keys": [], "x": NaN}'})


NOT_A_SET = "jwks.json is not a JWK Set: keys must be a list of objects"
BAD_JWKS: list[tuple[str, dict[str, str], str]] = [
    ("no jwks.json", {}, "no jwks.json in the published data"),
    ("not JSON", {"jwks.json": "{"}, "jwks.json is not valid JSON (line 1 column 2)"),
    ("a list", {"jwks.json": "[]"}, "jwks.json is not a JSON object"),
    ("keys an object", {"jwks.json": '{"keys": {"kid": "r1"}}'}, NOT_A_SET),
    ("keys a string", {"jwks.json": '{"keys": "r1"}'}, NOT_A_SET),
    ("a key a number", {"jwks.json": '{"keys": [{}, 1]}'}, NOT_A_SET),
    ("keys a number", {"jwks.json": '{"keys": 5}'}, NOT_A_SET),
]


@pytest.mark.parametrize(("case", "data", "message"), BAD_JWKS, ids=[b[0] for b in BAD_JWKS])
def test_jwks_json_is_read_strictly(case: str, data: dict[str, str], message: str) -> None:
    policy = {"policy.json": published()["policy.json"]}
    for reader in (KeySource.from_data, sources_from_data, Verifier.from_data):
        with pytest.raises(PublishedDataError) as raised:
            reader({**policy, **data})
        assert (type(raised.value), str(raised.value)) == (PublishedDataError, message)


@pytest.mark.parametrize("document", ["{}", '{"keys": null}', '{"keys": []}'])
def test_a_key_set_without_keys_holds_none(document: str) -> None:
    source = KeySource.from_data({"jwks.json": document, "policy.json": published()["policy.json"]})
    assert source.keys == ()
    expect(Verifier([source]).verify(sign(GOOD), now=NOW), False, "no key with kid 'r1'")


@pytest.mark.parametrize(
    ("value", "name"),
    [
        (None, "null"),
        (True, "a boolean"),
        ("x", "a string"),
        ("", "an empty string"),
        (1, "a number"),
        (1.5, "a number"),
        ([], "a list"),
        ({}, "an object"),
        ((), "a value"),  # no JSON value: still a name, never a repr
    ],
)
def test_json_type_names(value: Any, name: str) -> None:
    assert json_type(value) == name
