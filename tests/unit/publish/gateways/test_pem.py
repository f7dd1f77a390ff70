"""Key material for gateways that want PEM, one algorithm per key, or an HMAC secret as text."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed448

from jwks_operator.keys.keyset import ALGORITHMS
from jwks_operator.publish.gateways.pem import algorithm_for, hmac_text, public_pem
from tests.material import ec_key, ed_key, public_jwk, rsa_key
from tests.material import public_pem as oracle_pem


def oct_key(secret: bytes, **extra: Any) -> dict[str, Any]:
    return {"kty": "oct", "k": base64.urlsafe_b64encode(secret).rstrip(b"=").decode(), **extra}


@pytest.mark.parametrize(
    "key",
    [rsa_key(), rsa_key(3072), ec_key(), ec_key("P-384"), ec_key("P-521"), ed_key()],
    ids=["rsa2048", "rsa3072", "p256", "p384", "p521", "ed25519"],
)
def test_public_pem_is_the_keys_subject_public_key_info(key: Any) -> None:
    pem = public_pem(public_jwk(key, kid="k", use="sig", x5c=["x"]))
    assert pem == oracle_pem(key)
    assert pem.startswith("-----BEGIN PUBLIC KEY-----\n")
    loaded = serialization.load_pem_public_key(pem.encode())
    assert loaded.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) == key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def test_public_pem_of_ed448_and_of_a_key_that_names_its_alg() -> None:
    key = ed448.Ed448PrivateKey.generate()
    assert public_pem(public_jwk(key)) == oracle_pem(key)
    assert public_pem(public_jwk(rsa_key(), alg="PS384")) == oracle_pem(rsa_key())


def test_public_pem_refuses_secrets_and_broken_keys() -> None:
    with pytest.raises(ValueError, match="oct key has no public key PEM"):
        public_pem(oct_key(b"x" * 32))
    with pytest.raises(ValueError, match="lacks n, e"):
        public_pem({"kty": "RSA", "n": "AQAB"})
    with pytest.raises(ValueError, match="lacks crv, x, y"):
        public_pem({"kty": "EC", "crv": "P-256", "x": "", "y": "AA"})
    with pytest.raises(ValueError, match="unreadable EC key"):
        public_pem({"kty": "EC", "crv": "P-256", "x": "AAAA", "y": "AAAA"})
    with pytest.raises(ValueError, match="a None key"):
        public_pem({"n": "x", "e": "AQAB"})


def test_algorithm_for_takes_the_first_in_table_order() -> None:
    rsa = public_jwk(rsa_key())
    assert algorithm_for(rsa, (), ALGORITHMS) == "RS256"
    assert algorithm_for(rsa, ("PS512", "RS384"), ALGORITHMS) == "RS384"
    assert algorithm_for(rsa, ("PS512",), ALGORITHMS) == "PS512"
    assert algorithm_for(rsa, ("ES256",), ALGORITHMS) is None
    assert algorithm_for(rsa, (), {"PS256"}) == "PS256"
    assert algorithm_for(rsa, ("RS256",), {"PS256"}) is None
    assert algorithm_for({**rsa, "alg": "PS384"}, (), ALGORITHMS) == "PS384"
    assert algorithm_for({**rsa, "alg": "PS384"}, (), {"RS256"}) is None
    assert algorithm_for(public_jwk(ec_key("P-384")), (), ALGORITHMS) == "ES384"
    assert algorithm_for(public_jwk(ed_key()), (), ALGORITHMS) == "EdDSA"
    assert algorithm_for(oct_key(b"x" * 64), ("HS512", "HS384"), ALGORITHMS) == "HS384"


def test_hmac_text() -> None:
    text = "päss-wörd-of-32-bytes-at-least!!"
    assert hmac_text(oct_key(text.encode())) == text
    assert hmac_text(oct_key(b"\xff\xfe" + b"x" * 30)) is None
    assert hmac_text(public_jwk(rsa_key())) is None
    assert hmac_text({"kty": "oct"}) is None
    assert hmac_text({"kty": "oct", "k": "A"}) is None
