"""Reading one spec.outputs[] entry (pure): typed fields or a SpecError naming the field."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from jwks_operator.model.errors import SpecError

_DNS_SUBDOMAIN_RE = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
MAX_NAMES = 64  # items of a list of JwtSecret names (the CRD's maxItems)
_LABEL_VALUE_RE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def obj(raw: Any, path: str) -> Mapping[str, Any]:
    """An object (an absent one reads as empty)."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise SpecError(path, "must be an object")
    return raw


def text(raw: Mapping[str, Any], key: str, path: str, *, required: bool = False) -> str | None:
    """A non-empty string field."""
    value = raw.get(key)
    if value is None:
        if required:
            raise SpecError(f"{path}.{key}", "is required")
        return None
    if not isinstance(value, str) or not value:
        raise SpecError(f"{path}.{key}", "must be a non-empty string")
    return value


def name(raw: Mapping[str, Any], key: str, path: str, *, required: bool = False) -> str | None:
    """An object name (a lowercase RFC 1123 subdomain)."""
    value = text(raw, key, path, required=required)
    if value is not None and (len(value) > 253 or not _DNS_SUBDOMAIN_RE.match(value)):
        raise SpecError(f"{path}.{key}", "must be a lowercase RFC 1123 subdomain name")
    return value


def jwtsecret_names(raw: Mapping[str, Any], key: str, path: str) -> tuple[str, ...]:
    """A list of JwtSecret names (or "*"), without repeats, as a hashable tuple (absent: empty)."""
    value = raw.get(key)
    if value is None:
        return ()
    if not isinstance(value, list):
        raise SpecError(f"{path}.{key}", "must be a list")
    if len(value) > MAX_NAMES:
        raise SpecError(f"{path}.{key}", f"must have at most {MAX_NAMES} items")
    for i, item in enumerate(value):
        if item != "*" and (
            not isinstance(item, str) or len(item) > 253 or not _DNS_SUBDOMAIN_RE.match(item)
        ):
            raise SpecError(f"{path}.{key}[{i}]", 'must be a JwtSecret name or "*"')
    return tuple(dict.fromkeys(value))


def flag(raw: Mapping[str, Any], key: str, path: str) -> bool:
    """A boolean field, false when absent."""
    value = raw.get(key, False)
    if not isinstance(value, bool):
        raise SpecError(f"{path}.{key}", "must be a boolean")
    return value


def string_map(raw: Mapping[str, Any], key: str, path: str) -> tuple[tuple[str, str], ...]:
    """A map of strings (label selectors), sorted, as a hashable tuple."""
    value = obj(raw.get(key), f"{path}.{key}")
    for k, v in value.items():
        if not isinstance(v, str) or len(v) > 63 or not _LABEL_VALUE_RE.match(v):
            raise SpecError(f"{path}.{key}.{k}", "must be a label value (63 characters at most)")
    return tuple(sorted((str(k), str(v)) for k, v in value.items()))
