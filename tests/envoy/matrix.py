"""The token matrix: each kind of token, made for each key, and the disagreements table it yields.

A case makes a token for a key (its private key, algorithm and kid) at the moment it is sent, so the time
cases (a token expired 45 s ago: inside Envoy's 60 s of clock skew, outside verify's 30 s leeway) hold
whatever time the tier takes. The table in docs/data-plane.md lists every case where `jwks-operator
verify` and Envoy (through Istio or Envoy Gateway) disagree, with the reason; tests/envoy/test_matrix.py
builds it from what it measured and compares it with the page.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from tests.envoy.tokens import b64, sign, unsigned
from tests.harness.twogateways import AUDIENCE, ISSUER
from tests.material import private_pem


@dataclass(frozen=True)
class Key:
    """A signing key of the matrix: what it is (the table's wording), its private key, alg and kid."""

    name: str
    private: Any
    alg: str
    kid: str

    def sign(self, claims: Mapping[str, Any], header: Mapping[str, Any] | None = None) -> str:
        return sign(claims, private_pem(self.private), self.alg, {"kid": self.kid, **(header or {})})

    def public_pem(self) -> bytes:
        pem: bytes = self.private.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
        return pem


def good() -> dict[str, Any]:
    now = int(time.time())
    return {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "iat": now, "exp": now + 300}


def tampered(token: str) -> str:
    head, _, rest = token.partition(".")
    _, _, signature = rest.partition(".")
    claims = {**good(), "sub": "mallory"}
    return f"{head}.{b64(json.dumps(claims).encode())}.{signature}"


def confused(key: Key) -> str:
    """HS256 with the public key's PEM as the HMAC secret (the classic algorithm confusion)."""
    head = f"{b64(json.dumps({'alg': 'HS256', 'kid': key.kid}).encode())}.{b64(json.dumps(good()).encode())}"
    mac = hmac.new(key.public_pem(), head.encode(), hashlib.sha256).digest()
    return f"{head}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


def _no_kid(key: Key) -> str:
    return sign(good(), private_pem(key.private), key.alg)


def _other_rsa_alg(key: Key) -> str:
    return sign(good(), private_pem(key.private), "PS256", {"kid": key.kid})


def _not_ed448(key: Key) -> bool:
    return key.name != "Ed448"


def _ed448(key: Key) -> bool:
    return key.name == "Ed448"


@dataclass(frozen=True)
class Case:
    """One kind of token: its wording in the table, and how to make it for a key (None: no token). Every
    case applies to every key but Ed448, which no Envoy verifies: its own cases say so once."""

    name: str
    make: Callable[[Key], str | None]
    keys: Callable[[Key], bool] = _not_ed448  # the keys it applies to


def _at(offset: int, claim: str) -> Callable[[Key], str]:
    return lambda key: key.sign({**good(), claim: int(time.time()) + offset})


def _without(claim: str) -> Callable[[Key], str]:
    return lambda key: key.sign({k: v for k, v in good().items() if k != claim})


CASES: tuple[Case, ...] = (
    Case("a valid token", lambda key: key.sign(good())),
    Case("`aud` a list holding the audience", lambda key: key.sign({**good(), "aud": ["other", AUDIENCE]})),
    Case("`aud` another audience", lambda key: key.sign({**good(), "aud": "payroll"})),
    Case("no `aud`", _without("aud")),
    Case("`iss` another issuer", lambda key: key.sign({**good(), "iss": "https://evil.test"})),
    Case("`iss` a list holding the issuer", lambda key: key.sign({**good(), "iss": [ISSUER]})),
    Case("no `sub`", _without("sub")),
    Case("`exp` 120 s ago", _at(-120, "exp")),
    Case("`exp` 45 s ago", _at(-45, "exp")),
    Case("`nbf` in 120 s", _at(120, "nbf")),
    Case("`nbf` in 45 s", _at(45, "nbf")),
    Case("`iat` in 120 s", _at(120, "iat")),
    Case("an unknown `kid`", lambda key: key.sign(good(), {"kid": "nobody"})),
    Case("no `kid`", _no_kid),
    Case("a `kid` that is not a string", lambda key: key.sign(good(), {"kid": 7})),
    Case("a `crit` header", lambda key: key.sign(good(), {"crit": ["exp2"], "exp2": 1})),
    Case("a tampered payload", lambda key: tampered(key.sign(good()))),
    Case("`alg: none`", lambda key: unsigned(good(), {"kid": key.kid})),
    Case("HS256 signed with the public key (HS/RS confusion)", confused),
    Case(
        "PS256 by an RSA key published without `alg`", _other_rsa_alg, lambda key: key.name == "RSA (no alg)"
    ),
    Case("no token", lambda key: None),
    Case("a valid token of an Ed448 key", lambda key: key.sign(good()), _ed448),
    Case("a valid token of an Ed448 key, no `kid`", _no_kid, _ed448),
)


@dataclass(frozen=True)
class Verdict:
    """One row: a case, a key, a gateway; Envoy's answer and verify's."""

    case: str
    key: str
    gateway: str
    envoy_status: int
    envoy_body: str
    verify_valid: bool
    verify_reason: str
    as_gateway: tuple[tuple[str, bool, str], ...] = ()  # `verify --as <profile>`: (profile, valid, reason)

    @property
    def envoy_accepts(self) -> bool:
        return self.envoy_status == 200

    @property
    def agree(self) -> bool:
        return self.envoy_accepts == self.verify_valid

    @property
    def envoy_text(self) -> str:
        return "accepts" if self.envoy_accepts else f"{self.envoy_status} `{self.envoy_body}`"

    @property
    def verify_text(self) -> str:
        return "accepts" if self.verify_valid else f"refuses: {self.verify_reason}"


GATEWAYS = ("istio", "envoy-gateway")
HEADER = (
    "| token | `jwks-operator verify` | Envoy through Istio | Envoy through Envoy Gateway | keys | why |",
    "| --- | --- | --- | --- | --- | --- |",
)


def table(verdicts: Sequence[Verdict], keys: Sequence[str], why: Mapping[str, str]) -> list[str]:
    """The Markdown table of every case where verify and Envoy disagree on some key through some
    gateway; a case that is not explained in `why` reads `UNEXPLAINED` (the test then fails)."""
    lines = list(HEADER)
    for case in CASES:
        rows = [v for v in verdicts if v.case == case.name]
        split = [v for v in rows if not v.agree]
        if not split:
            continue
        affected = sorted({v.key for v in split}, key=keys.index)
        sample = [v for v in rows if v.key == affected[0]]
        verify = sample[0].verify_text
        cells = {g: next(v.envoy_text for v in sample if v.gateway == g) for g in GATEWAYS}
        every = {v.key for v in rows}
        which = "every key" if set(affected) == every and case.keys is _not_ed448 else ", ".join(affected)
        lines.append(
            f"| {case.name} | {verify} | {cells['istio']} | {cells['envoy-gateway']} | {which} "
            f"| {why.get(case.name, 'UNEXPLAINED')} |"
        )
    return lines
