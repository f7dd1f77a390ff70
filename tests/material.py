"""Test key material: generated once per session (RSA generation is slow)."""

from __future__ import annotations

import datetime
import functools
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm


@functools.cache
def rsa_key(bits: int = 2048, n: int = 0) -> rsa.RSAPrivateKey:
    """A cached RSA private key (`n` distinguishes several keys of one size)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


@functools.cache
def ec_key(curve: str = "P-256", n: int = 0) -> ec.EllipticCurvePrivateKey:
    curves: dict[str, ec.EllipticCurve] = {
        "P-256": ec.SECP256R1(),
        "P-384": ec.SECP384R1(),
        "P-521": ec.SECP521R1(),
        "secp256k1": ec.SECP256K1(),
    }
    return ec.generate_private_key(curves[curve])


@functools.cache
def ed_key(n: int = 0) -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


# Private and secret JWK members (RFC 7518 6.2.2, 6.3.2, 6.4.1), written out here as the tests'
# oracle, independent of the operator's own table (jwks_operator.keys.SECRET_MEMBERS).
SECRET_JWK_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})


def _jwk(key: Any) -> dict[str, Any]:
    """The JWK of a key object (public or private), as PyJWT writes it."""
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return dict(RSAAlgorithm.to_jwk(key, as_dict=True))
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        return dict(ECAlgorithm.to_jwk(key, as_dict=True))
    return dict(OKPAlgorithm.to_jwk(key, as_dict=True))


def public_jwk(key: Any, **extra: Any) -> dict[str, Any]:
    """The public JWK of a private key, with extra members."""
    return {**_jwk(key.public_key()), **extra}


def private_jwk(key: Any, **extra: Any) -> dict[str, Any]:
    """The private JWK of a key (for hostile inputs)."""
    return {**_jwk(key), **extra}


def public_pem(key: Any) -> str:
    pem: bytes = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return pem.decode()


def private_pem(key: Any) -> str:
    pem: bytes = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return pem.decode()


def certificate_pem(key: Any, common_name: str = "jwks-operator test") -> str:
    """A self-signed certificate for the key."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .sign(key, None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def static_spec(kid: str, **extra: Any) -> dict[str, Any]:
    """A JwtSecret spec with one static EC public key and one audience (plus `extra` fields)."""
    return {"static": {"jwks": {"keys": [public_jwk(ec_key(), kid=kid)]}}, "audiences": ["api"], **extra}
