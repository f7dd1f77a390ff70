"""JWK members (pure): text safe for status and logs, and the metadata members (RFC 7517 section 4) that
may be published, checked for type, form and size. Anything not checked here is never published."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from typing import Any

MAX_KID_CHARS = 256
MAX_MEMBER_CHARS = 4096  # one key member (n, e, x, y, crv, k): a 16384-bit modulus is 2731 characters
MAX_X5C_CERTS = 10
MAX_CERT_CHARS = 16384  # one base64 certificate of x5c (about 12 KiB of DER)
KEY_OPS = ("sign", "verify", "encrypt", "decrypt", "wrapKey", "unwrapKey", "deriveKey", "deriveBits")
THUMBPRINT_BYTES = {"x5t": 20, "x5t#S256": 32}  # SHA-1 and SHA-256 of the first certificate's DER
_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")


class InvalidKey(ValueError):
    """One key is unusable; the message is the reason (never contains key material)."""


def printable(text: str, limit: int | None = 120) -> str:
    """`text` with every control, format and line/paragraph separator character escaped (`\\n`, `\\x1b`,
    `\\u2028`), cut to `limit` characters (None: never cut): what a JWK or spec author wrote can then never
    start a fake log line or hide text in a status."""
    if text.isprintable() and (limit is None or len(text) <= limit):
        return text
    kept = text if limit is None else text[: limit + 1]
    escaped = "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in kept)
    return escaped if limit is None or len(escaped) <= limit else escaped[: limit - 3] + "..."


def quoted(value: Any, limit: int = 40) -> str:
    """A value from a JWK, for a reason: a string quoted and made printable, anything else by its JSON type
    (never its repr: a list nested 900 deep must not become a reason)."""
    if isinstance(value, str):
        return f"'{printable(value, limit)}'"
    if value is None:
        return "None"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return "a list" if isinstance(value, list) else "an object"


def b64url_decode(value: str, member: str) -> bytes:
    """Decode unpadded (or padded) base64url strictly: another alphabet is not base64url."""
    body = value.rstrip("=")
    if len(value) - len(body) > 2 or not _BASE64URL.fullmatch(body) or len(body) % 4 == 1:
        raise InvalidKey(f"member {member!r} is not base64url")
    try:
        return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except (ValueError, binascii.Error):
        raise InvalidKey(f"member {member!r} is not base64url") from None


def check_key_members(jwk: Mapping[str, Any], kty: str, members: tuple[str, ...]) -> None:
    """The key members of a kty: each a non-empty string of bounded length."""
    for member in members:
        value = jwk.get(member)
        if not isinstance(value, str) or not value:
            raise InvalidKey(f"missing or invalid member {member!r} for kty {kty}")
        if len(value) > MAX_MEMBER_CHARS:
            raise InvalidKey(f"member {member!r} is longer than {MAX_MEMBER_CHARS} characters")


def check_metadata(jwk: Mapping[str, Any]) -> tuple[dict[str, Any], list[bytes]]:
    """The metadata members worth publishing, checked (kid, alg, use, key_ops, x5t, x5t#S256, x5c), and
    the DER certificates of x5c; raise InvalidKey with the reason. x5u and unknown members are dropped."""
    out: dict[str, Any] = {}
    for member in ("kid", "alg", "use"):
        if member in jwk:
            if not isinstance(jwk[member], str):
                raise InvalidKey(f"{member} must be a string")
            out[member] = jwk[member]
    kid = out.get("kid")
    if kid is not None and len(kid) > MAX_KID_CHARS:
        raise InvalidKey(f"kid is longer than {MAX_KID_CHARS} characters")
    if kid is not None and not kid.isprintable():
        raise InvalidKey("kid contains control or separator characters")
    if out.get("use", "sig") != "sig":
        raise InvalidKey(f"use {quoted(out['use'])} is not a signature key")
    if "key_ops" in jwk:
        out["key_ops"] = _key_ops(jwk["key_ops"])
    for member, size in THUMBPRINT_BYTES.items():
        if member in jwk:
            if not _is_thumbprint(jwk[member], size):
                raise InvalidKey(f"{member} must be the base64url of a {size}-byte certificate thumbprint")
            out[member] = jwk[member]
    ders: list[bytes] = []
    if "x5c" in jwk:
        out["x5c"], ders = _x5c(jwk["x5c"])
    return out, ders


def _is_thumbprint(value: Any, size: int) -> bool:
    if not isinstance(value, str) or len(value) > 64:
        return False
    try:
        return len(b64url_decode(value, "")) == size
    except InvalidKey:
        return False


def _key_ops(value: Any) -> list[str]:
    if not isinstance(value, list) or len(value) > len(KEY_OPS):
        raise InvalidKey(f"key_ops must be a list of distinct operations among {', '.join(KEY_OPS)}")
    if not all(isinstance(op, str) and op in KEY_OPS for op in value) or len(set(value)) != len(value):
        raise InvalidKey(f"key_ops must be a list of distinct operations among {', '.join(KEY_OPS)}")
    if "verify" not in value:
        raise InvalidKey("key_ops does not allow verify")
    return list(value)


def _x5c(value: Any) -> tuple[list[str], list[bytes]]:
    """x5c (RFC 7517 section 4.7): 1 to MAX_X5C_CERTS base64 (not base64url) DER certificates."""
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_X5C_CERTS:
        raise InvalidKey(f"x5c must be a list of 1 to {MAX_X5C_CERTS} base64 certificates")
    ders = []
    for index, cert in enumerate(value):
        if not isinstance(cert, str) or len(cert) > MAX_CERT_CHARS:
            raise InvalidKey(
                f"x5c[{index}] must be a base64 certificate of at most {MAX_CERT_CHARS} characters"
            )
        try:
            ders.append(base64.b64decode(cert, validate=True))
        except (ValueError, binascii.Error):
            raise InvalidKey(f"x5c[{index}] is not base64") from None
    return list(value), ders
