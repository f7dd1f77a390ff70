"""Key checks at their boundaries and on their less travelled paths (issue #28, mutation testing): the
exact size limits, HMAC (`oct`) keys through validate_jwk, certificates whose key cannot be loaded, and
how build_key_set and parse_jwks_document report what they drop."""

from __future__ import annotations

import base64
import json
import math
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from jwks_operator.keys import checks
from jwks_operator.keys import keyset as keys
from jwks_operator.model.errors import KeySetError
from tests.material import certificate_pem, ec_key, ed_key, public_jwk


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def uint(value: int) -> str:
    return b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


def secret(size: int, **extra: Any) -> dict[str, Any]:
    """An HMAC JWK of `size` bytes."""
    return {"kty": "oct", "k": b64url(b"s" * size), **extra}


def invalid(jwk: Any, **options: Any) -> str:
    with pytest.raises(keys.InvalidKey) as raised:
        keys.validate_jwk(jwk, **options)
    return str(raised.value)


# --- keys.checks ------------------------------------------------------------------------------------------


def test_the_small_primes_product_is_that_of_every_prime_below_2_to_the_16() -> None:
    """Checked whole against a sieve written here, not only by a few of its factors: a sieve that keeps
    a composite or loses a prime gives another number."""
    composite = [False] * (1 << 16)
    for n in range(2, 1 << 8):
        composite[n * n :: n] = [True] * len(range(n * n, 1 << 16, n))
    primes = [n for n in range(2, 1 << 16) if not composite[n]]
    assert len(primes) == 6542
    assert checks.small_primes_product() == math.prod(primes)


def odd_modulus(bits: int) -> int:
    """The smallest number of `bits` bits with no prime factor below 2^16 (a modulus the checks accept)."""
    n = (1 << (bits - 1)) + 1
    while math.gcd(n, checks.small_primes_product()) != 1:
        n += 2
    return n


def test_an_rsa_modulus_of_exactly_16384_bits_is_accepted() -> None:
    n = odd_modulus(16384)
    assert n.bit_length() == 16384
    assert keys.validate_jwk({"kty": "RSA", "e": "AQAB", "n": uint(n)})["n"] == uint(n)
    too_big = odd_modulus(16385)
    assert invalid({"kty": "RSA", "e": "AQAB", "n": uint(too_big)}) == (
        "RSA key is 16385 bits; at most 16384 are accepted"
    )


def test_an_rsa_modulus_of_exactly_2048_bits_is_accepted() -> None:
    n = odd_modulus(2048)
    assert keys.validate_jwk({"kty": "RSA", "e": "AQAB", "n": uint(n)})["n"] == uint(n)
    assert invalid({"kty": "RSA", "e": "AQAB", "n": uint(odd_modulus(2047))}) == (
        "RSA key is 2047 bits; at least 2048 are required"
    )


@pytest.mark.parametrize(
    ("length", "reason"),
    [
        (2732, "RSA key is 16392 bits; at most 16384 are accepted"),  # parsed: 2049 bytes
        (2733, "RSA key is over 16384 bits; at most 16384 are accepted"),  # refused unparsed
    ],
)
def test_an_rsa_modulus_is_measured_before_it_is_parsed(length: int, reason: str) -> None:
    """A 16384-bit modulus is 2731 base64url characters: from 2733 on, `n` is refused unread."""
    assert invalid({"kty": "RSA", "e": "AQAB", "n": "_" * length}) == reason


def certificate_der(key: Any) -> bytes:
    return x509.load_pem_x509_certificate(certificate_pem(key).encode()).public_bytes(
        serialization.Encoding.DER
    )


def with_der(key: Any, der: bytes) -> dict[str, Any]:
    return public_jwk(key, x5c=[base64.b64encode(der).decode()])


ID_EC_PUBLIC_KEY = bytes.fromhex("06072a8648ce3d0201")  # the OID 1.2.840.10045.2.1, DER


def test_an_x5c_certificate_of_an_unknown_key_type_is_refused() -> None:
    key = ec_key()
    der = certificate_der(key)
    unknown = der.replace(ID_EC_PUBLIC_KEY, ID_EC_PUBLIC_KEY[:-1] + b"\x09")  # 1.2.840.10045.2.9
    assert invalid(with_der(key, unknown)) == "x5c[0] holds a public key of an unsupported type"


def test_an_x5c_certificate_whose_key_cannot_be_loaded_is_refused() -> None:
    """A certificate (signature unchecked here) whose EC point is off its curve: InvalidKey, not the
    ValueError of cryptography nor an UnboundLocalError."""
    key = ec_key()
    der = certificate_der(key)
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    off_curve = spki[:-1] + bytes([spki[-1] ^ 1])
    assert (
        invalid(with_der(key, der.replace(spki, off_curve))) == "x5c[0] holds a public key that is not valid"
    )


# --- keys.keyset: HMAC keys through validate_jwk -----------------------------------------------------------


def test_an_hmac_key_is_accepted_only_when_symmetric_keys_are_allowed() -> None:
    assert invalid(secret(32)) == "symmetric (oct) keys are only accepted from a Secret reference"
    assert keys.validate_jwk(secret(32, kid="h"), allow_symmetric=True) == {**secret(32), "kid": "h"}
    rejected = keys.build_key_set([secret(32)]).rejected  # build_key_set refuses them by default
    assert rejected == (
        keys.Rejection(0, None, "symmetric (oct) keys are only accepted from a Secret reference"),
    )


def test_an_hmac_key_with_stray_private_members_keeps_only_its_secret() -> None:
    """`d` means nothing for an oct key: not refused as exposed (its `k` is secret anyway), not published."""
    assert keys.validate_jwk(secret(32, d="x"), allow_symmetric=True) == secret(32)


@pytest.mark.parametrize(
    ("alg", "size"),
    [(None, 32), ("HS256", 32), ("HS384", 48), ("HS512", 64)],
)
def test_an_hmac_secret_must_be_as_long_as_its_hash(alg: str | None, size: int) -> None:
    extra = {"alg": alg} if alg else {}
    assert keys.validate_jwk(secret(size, **extra), allow_symmetric=True)["k"] == secret(size)["k"]
    reason = f"HMAC secret is shorter than {size} bytes required for {alg or 'HS256'}"
    assert invalid(secret(size - 1, **extra), allow_symmetric=True) == reason


def test_an_hmac_secret_must_be_base64url() -> None:
    assert invalid({"kty": "oct", "k": "a+b/" * 11}, allow_symmetric=True) == "member 'k' is not base64url"


def test_x5c_does_not_apply_to_an_hmac_key() -> None:
    x5c = with_der(ec_key(), certificate_der(ec_key()))["x5c"]
    reason = "x5c does not apply to a symmetric (oct) key"
    assert invalid(secret(32, x5c=x5c), allow_symmetric=True) == reason


# --- keys.keyset: what build_key_set and parse_jwks_document report ---------------------------------------


def test_entries_that_are_not_objects_are_rejected_without_a_kid() -> None:
    key_set = keys.build_key_set(["x", 5, public_jwk(ed_key(), kid="k")])
    assert [k["kid"] for k in key_set.keys] == ["k"]
    assert key_set.rejected == (
        keys.Rejection(0, None, "a JWK must be a JSON object"),
        keys.Rejection(1, None, "a JWK must be a JSON object"),
    )


def test_a_kid_that_is_not_a_string_is_not_reported_as_one() -> None:
    key_set = keys.build_key_set([public_jwk(ed_key(), kid=7), public_jwk(ec_key(), kid="e")])
    assert key_set.rejected == (keys.Rejection(0, None, "kid must be a string"),)


def test_keys_without_a_kid_are_kept() -> None:
    a, b = public_jwk(ed_key()), public_jwk(ec_key())
    key_set = keys.build_key_set([a, b])
    assert [(k["kty"], k["x"]) for k in key_set.keys] == [("OKP", a["x"]), ("EC", b["x"])]
    assert key_set.rejected == ()


def test_rejections_are_listed_in_source_order() -> None:
    """Duplicates are found after the invalid keys: the list is sorted back by index."""
    a = public_jwk(ed_key(), kid="a")
    key_set = keys.build_key_set([a, dict(a), {"kty": "XYZ"}])
    assert [(r.index, r.reason) for r in key_set.rejected] == [
        (1, "duplicate of an earlier key"),
        (2, "unsupported kty 'XYZ'; expected RSA, EC or OKP"),
    ]


def test_no_usable_key_names_at_most_three_reasons() -> None:
    with pytest.raises(KeySetError) as raised:
        keys.parse_jwks_document(b'{"keys": [{}, {}, {}, {}]}')
    reason = "unsupported kty None; expected RSA, EC or OKP"
    assert str(raised.value) == (
        f"the JWK Set has no usable key (key 0: {reason}; key 1: {reason}; key 2: {reason})"
    )
    with pytest.raises(KeySetError) as empty:
        keys.parse_jwks_document(b'{"keys": []}')
    assert str(empty.value) == "the JWK Set has no usable key"


@pytest.mark.parametrize("body", [b"[]", b'"keys"', b"{}", b'{"keys": {}}'])
def test_a_document_that_is_not_a_jwk_set_is_refused(body: bytes) -> None:
    with pytest.raises(KeySetError) as raised:
        keys.parse_jwks_document(body)
    assert str(raised.value) == 'JWK Set must be a JSON object with a "keys" array'


def test_a_document_of_exactly_1000_entries_is_read() -> None:
    good = public_jwk(ed_key(), kid="k")
    key_set = keys.parse_jwks_document(
        b'{"keys": [' + b",".join([json.dumps(good).encode()] + [b"{}"] * 999) + b"]}"
    )
    assert [k["kid"] for k in key_set.keys] == ["k"]
    assert len(key_set.rejected) == 999
    with pytest.raises(KeySetError, match=r"^JWK Set has 1001 entries"):
        keys.parse_jwks_document(b'{"keys": [' + b",".join([b"{}"] * 1001) + b"]}")
