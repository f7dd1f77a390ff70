"""Hostile JWK Sets (issue #14): what one tenant's keys must not do to the operator that serves every
namespace (exhaust its memory, overflow its status or ConfigMap, inject log lines) nor to the gateways
that trust what it publishes (small-order or factorable keys, certificates of another key, NaN)."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import tracemalloc
from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed448, ed25519

from jwks_operator.keys import checks as keys_checks
from jwks_operator.keys import keyset as keys
from jwks_operator.keys import members as keys_members
from jwks_operator.model.errors import KeySetError
from jwks_operator.resource.status import Outcome, build_status
from jwks_operator.runtime.logs import TextFormatter
from tests.material import certificate_pem, ec_key, ed_key, public_jwk, rsa_key

NOW = datetime(2025, 1, 1, tzinfo=UTC)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def uint(value: int) -> str:
    return b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


def modulus() -> int:
    return int.from_bytes(base64.urlsafe_b64decode(public_jwk(rsa_key())["n"] + "=="), "big")


def der(key: Any) -> bytes:
    return x509.load_pem_x509_certificate(certificate_pem(key).encode()).public_bytes(
        serialization.Encoding.DER
    )


def with_certificate(key: Any, **extra: Any) -> dict[str, Any]:
    """The public JWK of a key with x5c (its own self-signed certificate) and both thumbprints."""
    cert = der(key)
    return public_jwk(
        key,
        x5c=[base64.b64encode(cert).decode()],
        x5t=b64url(hashlib.sha1(cert).digest()),
        **{"x5t#S256": b64url(hashlib.sha256(cert).digest())},
        **extra,
    )


def nested(depth: int) -> Any:
    return json.loads("[" * depth + "]" * depth)


# --- 1. Only checked members of known types and sizes are published ------------------------------------


def test_a_document_of_deeply_nested_metadata_stays_small_in_memory() -> None:
    """The review's 66 KB document (30 keys, x5t nested 900 deep) rendered a 49 MB jwks.json (twice in the
    ConfigMap, indented): 99 MiB at the peak here, 95 -> 384 MiB in the operator."""
    doc = {"keys": [dict(public_jwk(rsa_key()), kid=f"k{i}", x5t=nested(900)) for i in range(30)]}
    body = json.dumps(doc, separators=(",", ":")).encode()
    assert 60_000 < len(body) < 70_000
    tracemalloc.start()
    try:
        with pytest.raises(KeySetError, match=r"no usable key .*x5t must be the base64url of a 20-byte"):
            keys.parse_jwks_document(body)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * 2**20


def test_checked_metadata_is_published_and_nothing_else() -> None:
    key = ec_key()
    jwk = with_certificate(
        key,
        kid="k1",
        alg="ES256",
        use="sig",
        key_ops=["verify"],
        x5u="https://attacker.example/cert",
        issuer="x",
        extra=[1],
    )
    out = keys.validate_jwk(jwk)
    assert set(out) == {"kty", "crv", "x", "y", *keys.METADATA_MEMBERS}
    assert out["x5c"] == jwk["x5c"]
    assert out["x5c"] is not jwk["x5c"]  # a copy, not the parsed document's list
    assert out["key_ops"] == ["verify"]


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        ({"x5t": nested(3)}, "x5t must be the base64url of a 20-byte"),
        ({"x5t": 20}, "x5t must be the base64url of a 20-byte"),
        ({"x5t": b64url(b"x" * 21)}, "x5t must be the base64url of a 20-byte"),
        ({"x5t": base64.b64encode(b"\xfb" * 20).decode()}, "x5t must be the base64url"),
        ({"x5t#S256": b64url(b"x" * 20)}, "x5t#S256 must be the base64url of a 32-byte"),
        ({"x5t#S256": "A" * 100_000}, "x5t#S256 must be the base64url of a 32-byte"),
        ({"key_ops": "verify"}, "key_ops must be a list of distinct operations"),
        ({"key_ops": ["verify", "verify"]}, "key_ops must be a list of distinct operations"),
        ({"key_ops": ["verify", "x" * 10_000]}, "key_ops must be a list of distinct operations"),
        ({"key_ops": [["verify"]]}, "key_ops must be a list of distinct operations"),
        ({"key_ops": ["sign"]}, "key_ops does not allow verify"),
        ({"kid": "k" * 257}, "kid is longer than 256 characters"),
        ({"kid": {"a": 1}}, "kid must be a string"),
        ({"alg": ["ES256"]}, "alg must be a string"),
        ({"x5c": "MIIB"}, "x5c must be a list of 1 to 10 base64 certificates"),
        ({"x5c": []}, "x5c must be a list of 1 to 10"),
        ({"x5c": ["MIIB"] * 11}, "x5c must be a list of 1 to 10"),
        ({"x5c": [nested(5)]}, r"x5c\[0\] must be a base64 certificate of at most 16384"),
        ({"x5c": ["A" * 16388]}, r"x5c\[0\] must be a base64 certificate of at most 16384"),
        ({"x5c": ["not base64!"]}, r"x5c\[0\] is not base64"),
        ({"x5c": [base64.b64encode(b"garbage").decode()]}, r"x5c\[0\] is not a DER certificate"),
    ],
)
def test_malformed_metadata_rejects_the_key(extra: dict[str, Any], reason: str) -> None:
    with pytest.raises(keys.InvalidKey, match=reason):
        keys.validate_jwk({**public_jwk(ec_key()), **extra})


def test_key_members_are_bounded() -> None:
    with pytest.raises(keys.InvalidKey, match="member 'e' is longer than 4096 characters"):
        keys.validate_jwk({**public_jwk(rsa_key()), "e": "A" * 5000})


# --- 2. Keys that are well-formed but unsafe ------------------------------------------------------------


def test_a_small_order_ed25519_key_would_verify_a_forged_signature() -> None:
    """Why small-order keys are refused: with the identity point as public key, R = identity and S = 0 verify
    any message."""
    identity = b"\x01" + b"\x00" * 31
    ed25519.Ed25519PublicKey.from_public_bytes(identity).verify(identity + b"\x00" * 32, b'{"sub":"admin"}')
    with pytest.raises(keys.InvalidKey, match="Ed25519 public key is a point of small order"):
        keys.validate_jwk({"kty": "OKP", "crv": "Ed25519", "x": b64url(identity)})


ED25519_P = 2**255 - 19
ORDER_8 = ("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
           "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a")  # fmt: skip
SMALL_ORDER_ED25519 = [
    *(y.to_bytes(32, "little") for y in (0, 1, ED25519_P - 1)),
    *(bytes.fromhex(h) for h in ORDER_8),
]


@pytest.mark.parametrize("sign", [0, 0x80])
@pytest.mark.parametrize("encoding", SMALL_ORDER_ED25519, ids=lambda e: e.hex()[:8])
def test_every_small_order_ed25519_point_is_rejected(encoding: bytes, sign: int) -> None:
    x = encoding[:31] + bytes([encoding[31] | sign])
    with pytest.raises(keys.InvalidKey, match="point of small order"):
        keys.validate_jwk({"kty": "OKP", "crv": "Ed25519", "x": b64url(x)})


@pytest.mark.parametrize("y", [ED25519_P, ED25519_P + 1, 2**255 - 1])
def test_non_canonical_ed25519_encodings_are_rejected(y: int) -> None:
    with pytest.raises(keys.InvalidKey, match="not canonically encoded"):
        keys.validate_jwk({"kty": "OKP", "crv": "Ed25519", "x": b64url(y.to_bytes(32, "little"))})


@pytest.mark.parametrize("y", [0, 1, 2**448 - 2**224 - 2])
def test_small_order_ed448_points_are_rejected(y: int) -> None:
    with pytest.raises(keys.InvalidKey, match="Ed448 public key is a point of small order"):
        keys.validate_jwk({"kty": "OKP", "crv": "Ed448", "x": b64url(y.to_bytes(57, "little"))})


def test_ordinary_edwards_keys_are_accepted() -> None:
    for _ in range(20):
        keys.validate_jwk(public_jwk(ed25519.Ed25519PrivateKey.generate()))
        keys.validate_jwk(public_jwk(ed448.Ed448PrivateKey.generate()))


@pytest.mark.parametrize(
    ("n", "reason"),
    [
        (lambda: modulus() * 2, "RSA modulus is even"),
        (lambda: modulus() * 3, "RSA modulus has a prime factor below 65536"),
        (lambda: modulus() * 65521, "RSA modulus has a prime factor below 65536"),  # the largest prime < 2^16
        (lambda: modulus() * 997 * 1009, "RSA modulus has a prime factor below 65536"),
        (lambda: (1 << 16384) + 1, "RSA key is 16385 bits; at most 16384"),
        (lambda: (1 << 20000) + 1, "RSA key is over 16384 bits"),
    ],
)
def test_factorable_or_huge_rsa_moduli_are_rejected(n: Any, reason: str) -> None:
    with pytest.raises(keys.InvalidKey, match=reason):
        keys.validate_jwk({"kty": "RSA", "e": "AQAB", "n": uint(n())})


def test_the_small_primes_are_all_of_them() -> None:
    product = keys_checks.small_primes_product()
    assert product % 65521 == 0
    assert product % 2 == 0
    assert product % 65537 != 0
    assert product.bit_length() > 90_000  # the 6542 primes below 2^16


@pytest.mark.parametrize("key", [rsa_key(), ec_key("P-384"), ed_key()], ids=["RSA", "EC", "OKP"])
def test_x5c_must_certify_the_jwk_key(key: Any) -> None:
    assert keys.validate_jwk(with_certificate(key))["x5c"]
    other = {**public_jwk(key), "x5c": with_certificate(rsa_key(n=1))["x5c"]}
    with pytest.raises(keys.InvalidKey, match=r"x5c\[0\] certifies a different key than the JWK's"):
        keys.validate_jwk(other)


def test_x5t_must_be_the_thumbprint_of_the_first_certificate() -> None:
    key = ec_key()
    for member in ("x5t", "x5t#S256"):
        jwk = with_certificate(key)
        jwk[member] = with_certificate(ec_key(n=1))[member]
        with pytest.raises(keys.InvalidKey, match=f"{member} is not the thumbprint of x5c"):
            keys.validate_jwk(jwk)


def test_a_chain_with_garbage_after_the_first_certificate_is_rejected() -> None:
    jwk = with_certificate(ec_key())
    jwk["x5c"] = [*jwk["x5c"], base64.b64encode(b"\x30\x03\x02\x01\x00").decode()]
    with pytest.raises(keys.InvalidKey, match=r"x5c\[1\] is not a DER certificate"):
        keys.validate_jwk(jwk)


@pytest.mark.parametrize("constant", [b"NaN", b"Infinity", b"-Infinity"])
def test_nan_and_infinity_never_reach_jwks_json(constant: bytes) -> None:
    jwk = json.dumps(public_jwk(ed_key(), kid="a")).encode()
    body = b'{"keys": [' + jwk[:-1] + b', "x5t": ' + constant + b"}]}"
    with pytest.raises(KeySetError, match=f"not valid JSON: {constant.decode()} is not JSON"):
        keys.parse_jwks_document(body)


def test_the_rendered_set_is_strict_json() -> None:
    with pytest.raises(KeySetError, match="cannot be published as strict JSON"):
        _ = keys.KeySet(({"kty": "OKP", "x": float("nan")},)).rendered


# --- 3. Sizes: status and ConfigMap ----------------------------------------------------------------------


def test_a_document_of_junk_entries_is_refused_unread() -> None:
    junk = b'{"keys":[' + b",".join([b"{}"] * 250_000) + b"]}"
    with pytest.raises(KeySetError, match=r"JWK Set has 250000 entries .*more than 1000 refuse it"):
        keys.parse_jwks_document(junk)


def test_rejected_keys_in_status_are_a_summary() -> None:
    """250k junk keys made a 15 MB status patch (HTTP 413, retried forever); the document is refused now
    (above), and what a set may still reject is listed in a summary of bounded size."""
    good = public_jwk(ed_key(), kid="good")
    key_set = keys.build_key_set([good, *({"kid": f"junk{i}"} for i in range(5000))])
    assert len(key_set.rejected) == 5000
    status = build_status(Outcome("u", 1, "ConfigMap", "x", key_set), None, NOW)
    assert len(json.dumps(status)) < 4096
    rejected = status["rejectedKeys"]
    assert len(rejected) == 11
    assert rejected[0] == {
        "index": 1,
        "kid": "junk0",
        "reason": "unsupported kty None; expected RSA, EC or OKP",
    }
    assert rejected[-1] == {"reason": "4990 more rejected key(s) not listed"}
    degraded = next(c for c in status["conditions"] if c["type"] == "Degraded")
    assert degraded["message"].startswith("5000 key(s) rejected: key 1 (kid junk0)")


def test_the_published_set_is_compact() -> None:
    key_set = keys.build_key_set([public_jwk(ec_key(), kid="e"), public_jwk(rsa_key(), kid="r")])
    assert key_set.rendered.count("\n") == 1
    assert key_set.rendered.endswith("}\n")
    assert " " not in key_set.rendered
    assert json.loads(key_set.rendered) == key_set.document()


def test_a_set_over_the_rendered_cap_is_refused_so_the_last_good_keys_stay() -> None:
    """100 keys with 8 KB x5c made a 1.7 MB ConfigMap (the set stored twice, indented): over 1 MiB."""
    chain = [with_certificate(ec_key(n=i), kid=f"k{i}") for i in range(60)]
    for jwk in chain:
        jwk["x5c"] = jwk["x5c"] * 10  # the chain's further certificates are only parsed
    with pytest.raises(
        KeySetError, match=r"60 key\(s\) would publish a jwks.json of \d+ bytes, over the 262144"
    ):
        keys.build_key_set(chain)
    body = json.dumps({"keys": chain}).encode()
    assert len(body) < 1024 * 1024  # within fetch's cap: only the rendered cap refuses it
    with pytest.raises(KeySetError, match="over the 262144-byte cap"):
        keys.parse_jwks_document(body)
    assert len(keys.build_key_set(chain[:40]).rendered) <= keys.MAX_RENDERED_BYTES


# --- 4. Text from a JWK is printable where it is shown ---------------------------------------------------

FAKE_LINE = "x\n2025-01-01 00:00:00,000 INFO jwks_operator: all keys valid\x1b[2K\u2028"


def test_a_kid_cannot_inject_a_log_line() -> None:
    jwk = public_jwk(ec_key(), kid=FAKE_LINE, use="enc")
    key_set = keys.build_key_set([public_jwk(ed_key(), kid="good"), jwk, {"kty": FAKE_LINE}])
    status = build_status(Outcome("u", 1, "ConfigMap", "x", key_set), None, NOW)
    shown = [status["rejectedKeys"][0]["kid"], status["rejectedKeys"][1]["reason"]]
    assert shown[0] == "x\\n2025-01-01 00:00:00,000 INFO jwks_operator: all keys valid\\x1b[2K\\u2028"
    assert shown[1].startswith("unsupported kty 'x\\n2025-01-01")
    degraded = next(c for c in status["conditions"] if c["type"] == "Degraded")
    record = logging.LogRecord("jwks_operator", logging.WARNING, "", 0, "%s", (degraded["message"],), None)
    assert "\n" not in TextFormatter().format(record)
    assert all(text.isprintable() for text in [*shown, degraded["message"]])


def test_a_kid_with_control_characters_is_not_published() -> None:
    with pytest.raises(keys.InvalidKey, match="kid contains control or separator characters"):
        keys.validate_jwk(public_jwk(ec_key(), kid="a\rb"))
    assert keys.validate_jwk(public_jwk(ec_key(), kid="clé-1 (prod)"))["kid"] == "clé-1 (prod)"


def test_rejections_are_made_printable_and_short_whoever_builds_them() -> None:
    rejection = keys.Rejection(3, "k" * 100_000 + "\n", "bad\nline" * 1000)
    assert rejection.kid is not None
    assert len(rejection.kid) <= keys_members.MAX_KID_CHARS
    assert rejection.kid.isprintable()
    assert len(rejection.reason) <= keys.MAX_REASON_CHARS
    assert rejection.reason.isprintable()
    with pytest.raises(keys.InvalidKey) as raised:
        keys.validate_jwk({"kty": nested(900)})
    assert str(raised.value) == "unsupported kty a list; expected RSA, EC or OKP"


def test_the_status_summary_of_stored_keys_is_printable() -> None:
    summary = keys.KeySet(({"kid": "a\nb", "kty": "EC\x00"},)).summary()
    assert summary == [{"kid": "a\\nb", "kty": "EC\\x00"}]


def test_forged_signature_check_is_really_refused_by_a_full_order_key() -> None:
    """Control for the forgery above: an ordinary key refuses R = identity, S = 0."""
    identity = b"\x01" + b"\x00" * 31
    with pytest.raises(InvalidSignature):
        ed_key().public_key().verify(identity + b"\x00" * 32, b'{"sub":"admin"}')
