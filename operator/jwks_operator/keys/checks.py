"""Cryptographic checks (pure) of a loaded public key: what a well-formed JWK can still get wrong.

An RSA modulus that is even or has a small prime factor is factored at once (so anyone can sign); a
modulus over 16384 bits costs every verification dearly. An Ed25519/Ed448 public key of small order
(the identity, or a point whose multiples are few) lets a forged signature verify. An x5c certificate
must certify the very key of the JWK, and x5t/x5t#S256 must be its thumbprints.
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Mapping, Sequence
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed448, ed25519, rsa

from jwks_operator.keys.members import InvalidKey, b64url_decode

MIN_RSA_BITS = 2048
MAX_RSA_BITS = 16384
SMALL_PRIMES_BELOW = 1 << 16  # an RSA modulus with a prime factor below this is refused

_ED25519_P = 2**255 - 19
# The y coordinates of the 8 Ed25519 points of small order (libsodium's list): 1 (the identity, order 1),
# p-1 (order 2), 0 (order 4, x = ±sqrt(-1)) and the two of the 4 points of order 8. The sign bit of x is
# not part of y, so these 5 values cover all 8 points.
_ED25519_SMALL_ORDER_Y = frozenset(
    {
        0,
        1,
        _ED25519_P - 1,
        int.from_bytes(
            bytes.fromhex("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05"), "little"
        ),
        int.from_bytes(
            bytes.fromhex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"), "little"
        ),
    }
)
_ED448_P = 2**448 - 2**224 - 1
# Edwards448 has cofactor 4: the identity (y = 1), (0, -1) of order 2 and (±1, 0) of order 4.
_ED448_SMALL_ORDER_Y = frozenset({0, 1, _ED448_P - 1})


@functools.cache
def small_primes_product() -> int:
    """The product of every prime below SMALL_PRIMES_BELOW (6542 primes, a 94,000-bit number): one gcd
    with it trial-divides a modulus by all of them."""
    sieve = bytearray([1]) * SMALL_PRIMES_BELOW
    sieve[:2] = b"\x00\x00"
    for i in range(2, math.isqrt(SMALL_PRIMES_BELOW) + 1):
        if sieve[i]:
            sieve[i * i :: i] = bytes(len(range(i * i, SMALL_PRIMES_BELOW, i)))
    primes = [i for i, prime in enumerate(sieve) if prime]
    while len(primes) > 1:  # pairwise, so the big multiplications are few
        primes = [math.prod(primes[i : i + 2]) for i in range(0, len(primes), 2)]
    return primes[0]


def check_public_key(key: Any) -> None:
    """Raise InvalidKey when a loaded public key is weak or degenerate (RSA size and factors, Ed25519/Ed448
    small-order points); EC points are checked on their curve by cryptography when loaded."""
    if isinstance(key, rsa.RSAPublicKey):
        _check_rsa(key)
    elif isinstance(key, ed25519.Ed25519PublicKey):
        _check_edwards("Ed25519", key.public_bytes_raw(), 255, _ED25519_P, _ED25519_SMALL_ORDER_Y)
    elif isinstance(key, ed448.Ed448PublicKey):
        _check_edwards("Ed448", key.public_bytes_raw(), 455, _ED448_P, _ED448_SMALL_ORDER_Y)


def _check_rsa(key: rsa.RSAPublicKey) -> None:
    if key.key_size < MIN_RSA_BITS:
        raise InvalidKey(f"RSA key is {key.key_size} bits; at least {MIN_RSA_BITS} are required")
    if key.key_size > MAX_RSA_BITS:
        raise InvalidKey(f"RSA key is {key.key_size} bits; at most {MAX_RSA_BITS} are accepted")
    n = key.public_numbers().n
    if n % 2 == 0:
        raise InvalidKey("RSA modulus is even")
    if math.gcd(n, small_primes_product()) != 1:
        raise InvalidKey(f"RSA modulus has a prime factor below {SMALL_PRIMES_BELOW}")


def _check_edwards(curve: str, raw: bytes, y_bits: int, p: int, small_order: frozenset[int]) -> None:
    """RFC 8032 encoding: y little-endian, the top bit of the last byte the sign of x."""
    y = int.from_bytes(raw, "little") & ((1 << y_bits) - 1)
    if y >= p:
        raise InvalidKey(f"{curve} public key is not canonically encoded")
    if y in small_order:
        raise InvalidKey(f"{curve} public key is a point of small order (signatures could be forged)")


def check_certificates(ders: Sequence[bytes], key: Any, metadata: Mapping[str, Any]) -> None:
    """x5c (DER certificates, already base64-decoded): each a certificate, the first one certifying `key`;
    x5t and x5t#S256, when given with x5c, the first certificate's SHA-1 and SHA-256 thumbprints."""
    if not ders:
        return
    certs = []
    for index, der in enumerate(ders):
        try:
            certs.append(x509.load_der_x509_certificate(der))
        except ValueError:
            raise InvalidKey(f"x5c[{index}] is not a DER certificate") from None
    try:
        certified = _spki(certs[0].public_key())
    except UnsupportedAlgorithm:
        raise InvalidKey("x5c[0] holds a public key of an unsupported type") from None
    except ValueError:  # e.g. an EC point off its curve
        raise InvalidKey("x5c[0] holds a public key that is not valid") from None
    if certified != _spki(key):
        raise InvalidKey("x5c[0] certifies a different key than the JWK's")
    for member, digest in (("x5t", hashlib.sha1), ("x5t#S256", hashlib.sha256)):
        if member in metadata and b64url_decode(metadata[member], member) != digest(ders[0]).digest():
            raise InvalidKey(f"{member} is not the thumbprint of x5c[0]")


def _spki(key: Any) -> bytes:
    encoded: bytes = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return encoded
