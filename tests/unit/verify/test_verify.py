"""The verification rules gateways apply, as implemented by jwks_operator.verify."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

import jwt
import pytest

from jwks_operator.keys.keyset import KeySet
from jwks_operator.keys.static import key_from_hmac
from jwks_operator.publish.outputs import render
from jwks_operator.resource.spec import parse_spec
from jwks_operator.verify.verifier import (
    DirectoryVerifier,
    KeySource,
    MissingPolicyError,
    Policy,
    PublishedDataError,
    Verifier,
    strip_bearer,
    verify_with,
)
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
    from jwks_operator.publish.outputs import aggregate

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
    ("exp", "1" + "0" * 400, "exp claim must be a finite number"),
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
    ("aud", '[{"aud": "api"}, "api"]', "aud claim must be a string or a list of strings"),
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
    assert url_verifier().verify(with_claim(name, value), now=NOW).reason.startswith(reason)
    no_checks = KeySource((public_jwk(RSA, kid="r1"),), Policy())  # the shape is checked regardless
    assert verify_with(no_checks, with_claim(name, value), leeway=0, now=NOW).reason.startswith(reason)


def test_well_formed_registered_claims_still_pass() -> None:
    assert url_verifier().verify(with_claim("exp", str(NOW + 60.5)), now=NOW)
    assert url_verifier().verify(with_claim("aud", '["x", "api"]'), now=NOW)
    issuers = json.dumps(["https://other", "https://idp"])
    assert url_verifier().verify(with_claim("iss", issuers), now=NOW), "iss may be an array"
    assert not url_verifier().verify(with_claim("iss", '["https://other"]'), now=NOW)
    assert (
        url_verifier().verify(with_claim("aud", "[]"), now=NOW).reason
        == "audience [] is not one of ['api', 'admin']"
    )
    assert url_verifier().verify(with_claim("nbf", str(NOW - 1)), now=NOW)


HEADERS: list[tuple[str, dict[str, Any], str]] = [
    ("crit naming an unknown extension", {"crit": ["x"], "x": 1}, "crit header: extension 'x' is not"),
    ("crit naming b64 (RFC 7797)", {"crit": ["b64"], "b64": True}, "crit header: extension 'b64' is not"),
    ("crit naming exp", {"crit": ["exp"], "exp": 1}, "crit header: extension 'exp' is not"),
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
    result = url_verifier().verify(token, now=NOW)
    assert not result.valid
    assert result.reason.startswith(reason), result.reason


def test_unusable_keys_are_a_reason_not_an_exception() -> None:
    good = public_jwk(RSA, kid="r1", alg="RS256")
    for broken in ({"n": 5}, {"e": None}, {"n": "AQAB"}, {"n": "!!!"}):
        source = KeySource(({**good, **broken},), Policy())
        result = verify_with(source, sign(GOOD), leeway=0, now=NOW)
        assert result.reason.startswith("key 'r1' is unusable: "), result.reason
        assert verify_with(KeySource(({**good, **broken}, good), Policy()), sign(GOOD), leeway=0, now=NOW)


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
    """What the operator publishes for URL_SPEC with RSA, the policy.json members replaced (None: dropped)."""
    data = render(parse_spec(URL_SPEC), KeySet((public_jwk(RSA, kid="r1", alg="RS256"),)))
    doc = {**json.loads(data["policy.json"]), **policy}
    return {**data, "policy.json": json.dumps({k: v for k, v in doc.items() if v is not None})}


BAD_POLICIES: list[tuple[str, dict[str, Any], str]] = [
    (
        "audiences a string",
        {"audiences": "api"},
        "audiences must be a list of non-empty strings, not a string",
    ),
    ("audiences null", {"audiences": None}, "audiences is missing or null (give [] for any)"),
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
    ("source of a numeric type", {"source": {"type": 1}}, "source.type must be a non-empty string"),
    ("source missing", {"source": None}, "source is missing"),
]


@pytest.mark.parametrize(("case", "policy", "message"), BAD_POLICIES, ids=[p[0] for p in BAD_POLICIES])
def test_policy_json_is_parsed_strictly(case: str, policy: dict[str, Any], message: str) -> None:
    with pytest.raises(PublishedDataError) as raised:
        Verifier.from_data(published(**policy))
    assert str(raised.value).startswith(f"policy.json is not a policy: {message}"), raised.value
    with pytest.raises(PublishedDataError):  # also without a policy required
        Verifier.from_data(published(**policy), require_policy=False)


def test_a_string_of_audiences_is_not_a_set_of_letters() -> None:
    """`"audiences": "proj"` used to become ('p', 'r', 'o', 'j'): a token for audience "p" passed."""
    with pytest.raises(PublishedDataError, match="audiences must be a list"):
        Verifier.from_data(published(audiences="proj")).verify(sign({**GOOD, "aud": "p"}), now=NOW)
    with pytest.raises(PublishedDataError, match="source must be an object"):
        Policy.from_json({"issuers": [], "audiences": [], "algorithms": [], "source": "jwkUrl"})
    with pytest.raises(PublishedDataError, match=r"^policy.json is not a JSON object"):
        Verifier.from_data({**published(), "policy.json": '["api"]'})


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
    without = Verifier.from_data(bare, require_policy=False)
    assert without.verify(foreign, now=NOW)
    assert without.verify(none_token(GOOD), now=NOW).reason == "algorithm 'none' is not allowed"
    assert without.verify(confusion_token(), now=NOW).reason == "no key for algorithm HS256 with kid 'r1'"
    assert not Verifier.from_data(published()).verify(foreign, now=NOW)
    (tmp_path / "jwks.json").write_text(bare["jwks.json"])
    with pytest.raises(MissingPolicyError):
        DirectoryVerifier(tmp_path).verify(foreign, now=NOW)
    assert DirectoryVerifier(tmp_path, require_policy=False).verify(foreign, now=NOW)


def test_a_shared_part_without_its_policy_is_refused_too() -> None:
    from jwks_operator.publish.outputs import aggregate

    data = aggregate({}, "a", published())
    del data["a.policy.json"]
    with pytest.raises(MissingPolicyError, match=r"^no a.policy.json in the published data"):
        Verifier.from_data(data)
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
