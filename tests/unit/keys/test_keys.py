"""Key validation: what is accepted, what is dropped and why, and that nothing private survives."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ed448

from jwks_operator.keys import keyset as keys
from jwks_operator.keys import static as static_keys
from jwks_operator.model.errors import KeySetError
from tests.material import (
    SECRET_JWK_MEMBERS,
    certificate_pem,
    ec_key,
    ed_key,
    private_jwk,
    private_pem,
    public_jwk,
    public_pem,
    rsa_key,
)

PRIVATE = SECRET_JWK_MEMBERS


def test_public_rsa_key_is_accepted_with_public_members_only() -> None:
    jwk = public_jwk(rsa_key(), kid="a", alg="RS256", use="sig", extra="dropped")
    out = keys.validate_jwk(jwk)
    assert out == {k: jwk[k] for k in ("kid", "alg", "use", "key_ops", "kty", "n", "e")}


@pytest.mark.parametrize(
    ("jwk", "reason"),
    [
        ({"kty": "RSA"}, "missing or invalid member 'n'"),
        ("not an object", "must be a JSON object"),
        ({"kty": "XYZ"}, "unsupported kty"),
        ({"kty": "oct", "k": "AAAA"}, "only accepted from a Secret"),
        ({"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}, "invalid EC key material"),
    ],
)
def test_malformed_jwks_are_rejected_with_a_reason(jwk: Any, reason: str) -> None:
    with pytest.raises(keys.InvalidKey, match=reason):
        keys.validate_jwk(jwk)


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda: public_jwk(rsa_key(1024), kid="weak"), "1024 bits; at least 2048"),
        (lambda: public_jwk(rsa_key(), alg="ES256"), "does not match kty RSA"),
        (lambda: public_jwk(rsa_key(), alg="none"), "does not match kty RSA"),
        (lambda: public_jwk(rsa_key(), alg="HS256"), "does not match kty RSA"),
        (lambda: public_jwk(ec_key("P-256"), alg="ES384"), "requires crv P-384"),
        (lambda: public_jwk(ec_key("secp256k1")), "unsupported EC curve"),
        (lambda: public_jwk(rsa_key(), use="enc"), "not a signature key"),
        (lambda: public_jwk(rsa_key(), key_ops=["encrypt"]), "key_ops does not allow verify"),
        (lambda: private_jwk(rsa_key(), kid="leak"), r"private key members \(d, p, q, dp, dq, qi\)"),
        (lambda: private_jwk(ec_key()), r"private key members \(d\)"),
        (lambda: private_jwk(ed_key()), r"private key members \(d\)"),
        (lambda: {**public_jwk(rsa_key()), "oth": []}, r"private key members \(oth\)"),
        (lambda: {**public_jwk(ed_key()), "crv": "X25519"}, "unsupported OKP curve"),
        (lambda: public_jwk(rsa_key(), kid=7), "kid must be a string"),
    ],
)
def test_unsafe_keys_are_rejected(make: Any, reason: str) -> None:
    with pytest.raises(keys.InvalidKey, match=reason):
        keys.validate_jwk(make())


def test_unsupported_curves_are_named_before_the_algorithm() -> None:
    with pytest.raises(
        keys.InvalidKey, match=r"unsupported EC curve 'secp256k1'; expected P-256, P-384 or P-521"
    ):
        keys.validate_jwk(public_jwk(ec_key("secp256k1"), alg="ES256"))
    with pytest.raises(keys.InvalidKey, match=r"unsupported OKP curve 'X25519'; expected Ed25519 or Ed448"):
        keys.validate_jwk({**public_jwk(ed_key()), "crv": "X25519"}, algorithms=["EdDSA"])


def test_algorithm_tables_are_derived_from_one() -> None:
    assert keys.EC_ALG_CURVE == {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}
    assert keys.CURVES_BY_KTY == {"EC": ("P-256", "P-384", "P-521"), "OKP": ("Ed25519", "Ed448")}
    assert keys.MIN_HMAC_BYTES == {"HS256": 32, "HS384": 48, "HS512": 64}
    assert keys.ALGS_BY_KTY["RSA"] == {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}
    assert keys.ALGS_BY_KTY["OKP"] == {"EdDSA"}
    assert sorted(a for algs in keys.ALGS_BY_KTY.values() for a in algs) == sorted(keys.ALGORITHMS)
    assert keys.KTY_BY_ALG["ES384"] == "EC"
    assert "none" not in keys.KTY_BY_ALG


@pytest.mark.parametrize(
    ("jwk", "algorithms"),
    [
        (public_jwk(rsa_key()), keys.ALGS_BY_KTY["RSA"]),
        (public_jwk(rsa_key(), alg="PS384"), {"PS384"}),
        (public_jwk(rsa_key(), alg="ES256"), set()),
        (public_jwk(ec_key("P-384")), {"ES384"}),
        (public_jwk(ec_key("P-384"), alg="ES256"), set()),
        (public_jwk(ed_key()), {"EdDSA"}),
        ({**public_jwk(ed_key()), "crv": "X25519"}, set()),
        ({"kty": "oct", "k": "c2VjcmV0"}, keys.HMAC_ALGS),
        ({"kty": "oct", "k": "c2VjcmV0", "alg": ["HS256"]}, set()),
        ({"kty": "XYZ"}, set()),
    ],
)
def test_key_algorithms(jwk: dict[str, Any], algorithms: set[str]) -> None:
    assert keys.key_algorithms(jwk) == algorithms


def test_algorithm_allow_list_filters_keys() -> None:
    rsa_jwk = public_jwk(rsa_key(), kid="r")
    ec_jwk = public_jwk(ec_key("P-384"), kid="e")
    key_set = keys.build_key_set([rsa_jwk, ec_jwk], algorithms=["ES384"])
    assert [k["kid"] for k in key_set.keys] == ["e"]
    assert key_set.rejected == (keys.Rejection(0, "r", "alg for kty RSA is not in spec.algorithms"),)


def test_duplicate_kid_with_different_material_rejects_both() -> None:
    a = public_jwk(rsa_key(n=0), kid="same")
    b = public_jwk(rsa_key(n=1), kid="same")
    c = public_jwk(ec_key(), kid="other")
    key_set = keys.build_key_set([a, b, c])
    assert [k["kid"] for k in key_set.keys] == ["other"]
    assert {r.index for r in key_set.rejected} == {0, 1}
    assert all("different key material" in r.reason for r in key_set.rejected)


def test_exact_duplicates_are_collapsed() -> None:
    a = public_jwk(rsa_key(), kid="same")
    key_set = keys.build_key_set([a, dict(a)])
    assert len(key_set.keys) == 1
    assert key_set.rejected[0].reason == "duplicate of an earlier key"


def test_too_many_keys_are_cut() -> None:
    jwk = public_jwk(ed_key())
    key_set = keys.build_key_set([dict(jwk, kid=str(i)) for i in range(keys.MAX_KEYS + 2)])
    assert len(key_set.keys) == keys.MAX_KEYS
    assert len(key_set.rejected) == 2


def test_document_parsing_errors_are_clear() -> None:
    with pytest.raises(KeySetError, match="not valid JSON"):
        keys.parse_jwks_document(b"{nope")
    with pytest.raises(KeySetError, match='"keys" array'):
        keys.parse_jwks_document(b'{"kids": []}')
    with pytest.raises(KeySetError, match="nested too deeply"):
        keys.parse_jwks_document(b"[" * 100000 + b"]" * 100000)
    with pytest.raises(KeySetError, match=r"no usable key .*key 0: contains private key members"):
        keys.parse_jwks_document(json.dumps({"keys": [private_jwk(ec_key())]}).encode())


def test_document_keeps_good_keys_and_reports_bad_ones() -> None:
    doc = {"keys": [public_jwk(rsa_key(), kid="good"), private_jwk(ec_key(), kid="bad")]}
    key_set = keys.parse_jwks_document(json.dumps(doc).encode())
    assert [k["kid"] for k in key_set.keys] == ["good"]
    assert key_set.rejected[0].kid == "bad"
    assert key_set.summary() == [{"kid": "good", "kty": "RSA"}]
    published = json.dumps(key_set.document())
    assert not PRIVATE & set(json.loads(published)["keys"][0])


@pytest.mark.parametrize(
    ("key", "alg"),
    [
        (rsa_key(), None),
        (ec_key("P-256"), "ES256"),
        (ec_key("P-384"), "ES384"),
        (ec_key("P-521"), "ES512"),
        (ed_key(), "EdDSA"),
    ],
)
def test_pem_public_keys_and_certificates_convert(key: Any, alg: str | None) -> None:
    for pem in (public_pem(key), certificate_pem(key)):
        key_set = static_keys.keys_from_pem(pem)
        (jwk,) = key_set.keys
        assert jwk.get("alg") == alg
        assert jwk["kid"] == keys.thumbprint(jwk)
        assert jwk["use"] == "sig"
        assert not PRIVATE & set(jwk)
    assert "x5c" in static_keys.keys_from_pem(certificate_pem(key)).keys[0]


def test_pem_with_several_blocks_and_a_private_key() -> None:
    pem = public_pem(rsa_key()) + private_pem(ec_key()) + public_pem(ed_key())
    key_set = static_keys.keys_from_pem(pem, kid="ignored-for-several")
    assert len(key_set.keys) == 2
    assert key_set.rejected == (
        keys.Rejection(
            1, None, "PRIVATE KEY is private key material; give the public key or certificate instead"
        ),
    )
    assert all(k["kid"] != "ignored-for-several" for k in key_set.keys)


def test_pem_single_key_takes_given_kid_and_errors_are_clear() -> None:
    assert static_keys.keys_from_pem(public_pem(ed_key()), kid="mine").keys[0]["kid"] == "mine"
    with pytest.raises(KeySetError, match="no PEM block"):
        static_keys.keys_from_pem("hello")
    with pytest.raises(KeySetError, match=r"spec\.static\.pem has no usable key"):
        static_keys.keys_from_pem(private_pem(rsa_key()))
    with pytest.raises(KeySetError, match="invalid PUBLIC KEY"):
        static_keys.keys_from_pem("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----")


def test_pem_blocks_past_max_keys_are_not_converted() -> None:
    pem = (
        public_pem(ed_key()) * keys.MAX_KEYS
        + "-----BEGIN NOT CONVERTED-----\nAA\n-----END NOT CONVERTED-----\n"
    )
    key_set = static_keys.keys_from_pem(pem)
    assert len(key_set.keys) == 1  # the same key 100 times: repeats are dropped
    assert key_set.rejected[-1] == keys.Rejection(keys.MAX_KEYS, None, "more than 100 keys in one set")


def test_pem_ed448_keys_convert_and_validate() -> None:
    (jwk,) = static_keys.keys_from_pem(public_pem(ed448.Ed448PrivateKey.generate())).keys
    assert (jwk["crv"], jwk["alg"]) == ("Ed448", "EdDSA")
    del jwk["alg"]  # an Ed448 JWK that names no alg is valid too
    assert keys.validate_jwk(jwk)["crv"] == "Ed448"


def test_hmac_kid_must_be_printable() -> None:
    with pytest.raises(KeySetError, match="kid must be at most 256 printable characters"):
        static_keys.key_from_hmac(b"s" * 32, kid="h\n2025-01-01 INFO forged")
    with pytest.raises(KeySetError, match="kid must be at most 256 printable characters"):
        static_keys.key_from_hmac(b"s" * 32, kid="h" * 257)


def test_hmac_secret_length_and_algorithms() -> None:
    secret = b"s" * 32
    key_set = static_keys.key_from_hmac(secret, kid="h")
    (jwk,) = key_set.keys
    assert base64.urlsafe_b64decode(jwk["k"] + "=") == secret
    assert jwk["kid"] == "h"
    assert "alg" not in jwk
    assert static_keys.key_from_hmac(b"s" * 64, algorithms=["HS512"]).keys[0]["alg"] == "HS512"
    with pytest.raises(KeySetError, match="is 31 bytes; at least 32"):
        static_keys.key_from_hmac(b"s" * 31)
    with pytest.raises(KeySetError, match="at least 64 are required for HS512"):
        static_keys.key_from_hmac(secret, algorithms=["HS512"])
    with pytest.raises(KeySetError, match="allows no HS"):
        static_keys.key_from_hmac(secret, algorithms=["RS256"])
    assert secret.decode() not in key_set.summary().__repr__()


RFC7638_KEY = {  # RFC 7638, section 3.1 (its kid and alg left out)
    "kty": "RSA",
    "e": "AQAB",
    "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECP"
    "ebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQ"
    "MicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr"
    "3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
}
RFC7638_THUMBPRINT = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_thumbprint_matches_rfc7638_example() -> None:
    assert keys.thumbprint(RFC7638_KEY) == RFC7638_THUMBPRINT


def test_a_public_key_without_kid_is_published_under_its_thumbprint() -> None:
    """Every output names a kid-less key alike: by its RFC 7638 thumbprint, set by build_key_set; the same
    key given again with that kid is then a repeat."""
    key_set = keys.build_key_set([dict(RFC7638_KEY), {**RFC7638_KEY, "kid": RFC7638_THUMBPRINT}])
    assert key_set.keys == ({**RFC7638_KEY, "kid": RFC7638_THUMBPRINT},)
    assert key_set.rejected == (keys.Rejection(1, RFC7638_THUMBPRINT, "duplicate of an earlier key"),)
    named = keys.build_key_set([{**RFC7638_KEY, "kid": "2011-04-29"}])
    assert named.keys == ({**RFC7638_KEY, "kid": "2011-04-29"},), "a kid given is kept"


def test_an_hmac_key_without_kid_gets_none() -> None:
    """A thumbprint of an HMAC key is a hash of its secret: never published, so such a key keeps no kid;
    two of them are both kept (nothing names them alike)."""
    first = {"kty": "oct", "k": base64.urlsafe_b64encode(b"a" * 32).rstrip(b"=").decode()}
    second = {"kty": "oct", "k": base64.urlsafe_b64encode(b"b" * 32).rstrip(b"=").decode()}
    key_set = keys.build_key_set([first, second], allow_symmetric=True)
    assert key_set.keys == (first, second)
    assert key_set.rejected == ()


def test_an_ec_key_without_y_from_yaml_says_to_quote_it() -> None:
    """kubectl reads a bare `y:` in YAML as the boolean true, so the stored key has no y; the status used
    to say only that y was missing or invalid."""
    whole = public_jwk(ec_key(n=1), kid="whole")
    lost = {k: v for k, v in public_jwk(ec_key(n=2), kid="lost").items() if k != "y"}
    key_set = static_keys.keys_from_jwks([whole, lost])
    assert [k["kid"] for k in key_set.keys] == ["whole"]
    (rejected,) = key_set.rejected
    assert rejected.reason.startswith("missing or invalid member 'y' for kty EC: in YAML write \"y\": quoted")
    with pytest.raises(KeySetError, match=r'no usable key \(key 0: .* write "y": quoted, since kubectl'):
        static_keys.keys_from_jwks([lost])
