"""Tokens of any shape for the Envoy tier (what PyJWT refuses to make: an `iss` list, a numeric `kid`...)."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

from jwt.algorithms import get_default_algorithms


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def sign(claims: Mapping[str, Any], key: Any, alg: str, header: Mapping[str, Any] | None = None) -> str:
    """A JWS of any header and claims (an `iss` list, a `kid` number...: what PyJWT's encode refuses)."""
    algorithm = get_default_algorithms()[alg]
    head = {"alg": alg, "typ": "JWT", **(header or {})}
    signing_input = f"{b64(json.dumps(head).encode())}.{b64(json.dumps(dict(claims)).encode())}"
    return f"{signing_input}.{b64(algorithm.sign(signing_input.encode(), algorithm.prepare_key(key)))}"


def unsigned(claims: Mapping[str, Any], header: Mapping[str, Any]) -> str:
    head = b64(json.dumps({**header, "alg": "none"}).encode())
    return f"{head}.{b64(json.dumps(dict(claims)).encode())}."
