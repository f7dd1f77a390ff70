"""JSON types and string formats as kube-openapi's validator sees them (for openapi.py): the type of
a decoded value (validate/type.go), the formats kube-apiserver keeps, and strfmt's checks of some."""

from __future__ import annotations

import datetime
import ipaddress
import re
from collections.abc import Callable, Mapping
from typing import Any

import re2  # type: ignore[import-untyped]  # Go's regexp syntax (RE2), as celpy uses it

# Formats kube-apiserver keeps (apiextensions-apiserver pkg/apiserver/validation/formats.go); others are
# stripped before validation. k8s-short-name and k8s-long-name are kept from compatibility version 1.34,
# and a 1.34 server's is 1.33.
# fmt: off
_FORMATS = {  # normalized: without "-"
    "bsonobjectid", "uri", "email", "hostname", "ipv4", "ipv6", "cidr", "mac", "uuid", "uuid3", "uuid4",
    "uuid5", "isbn", "isbn10", "isbn13", "creditcard", "ssn", "hexcolor", "rgbcolor", "byte", "password",
    "date", "duration", "datetime",
}
# fmt: on


# The JSON type and go-openapi format of each Python type (bool before int: a bool is an int).
_GO_TYPES: tuple[tuple[type, str, str], ...] = (
    (bool, "boolean", ""), (int, "integer", "int64"), (float, "number", "float64"),
    (str, "string", ""), (list, "array", ""), (dict, "object", ""),
)  # fmt: skip


def go_type(value: Any) -> tuple[str, str]:
    """(JSON type, go-openapi format) of a decoded value (validate/type.go schemaInfoForType)."""
    return next(((name, fmt) for cls, name, fmt in _GO_TYPES if isinstance(value, cls)), ("null", ""))


def kept_format(schema: Mapping[str, Any]) -> str:
    """The schema's `format`, or "" when the API server strips it."""
    fmt = str(schema.get("format") or "")
    return fmt if fmt.replace("-", "") in _FORMATS else ""


def _is_date(text: str) -> bool:
    """time.Parse("2006-01-02", text)."""
    if not re2.search(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$", text):
        return False
    try:
        datetime.date.fromisoformat(text)
    except ValueError:
        return False
    return True


def _is_date_time(text: str) -> bool:
    """strfmt.IsDateTime."""
    parts = text.lower().split("t")
    if len(text) < 4 or len(parts) < 2 or not _is_date(parts[0]):
        return False
    match = re2.search(r"^([0-9]{2}):([0-9]{2}):([0-9]{2})(.[0-9]+)?(z|([+-][0-9]{2}:[0-9]{2}))$", parts[1])
    return bool(match) and match[1] <= "23" and match[2] <= "59" and match[3] <= "59"


def _is_ip(text: str, version: int) -> bool:
    """net.ParseIP (leading zeros in IPv4 tolerated), with the "." or ":" strfmt requires."""
    if "%" in text or ("." if version == 4 else ":") not in text:
        return False
    sloppy = re.sub(r"(?<![0-9A-Fa-f:])0+(?=[0-9])", "", text) if version == 4 else text
    try:
        ipaddress.ip_address(sloppy)
    except ValueError:
        return False
    return True


_UUID = r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?%s[0-9a-f]{3}-?%s[0-9a-f]{3}-?[0-9a-f]{12}$"
_BASE64 = r"^(?:[A-Za-z0-9+\/]{4})*(?:[A-Za-z0-9+\/]{2}==|[A-Za-z0-9+\/]{3}=|[A-Za-z0-9+\/]{4})$"
# strfmt's checks of the formats kube-apiserver keeps; the other kept formats are not checked here.
_FORMAT_CHECKS: dict[str, Callable[[str], bool]] = {
    "datetime": _is_date_time,
    "date": _is_date,
    "uuid": lambda t: bool(re2.search(_UUID % ("[0-9a-f]", "[0-9a-f]"), t)),
    "uuid3": lambda t: bool(re2.search(_UUID % ("3", "[0-9a-f]"), t)),
    "uuid4": lambda t: bool(re2.search(_UUID % ("4", "[89ab]"), t)),
    "uuid5": lambda t: bool(re2.search(_UUID % ("5", "[89ab]"), t)),
    "byte": lambda t: bool(re2.search(_BASE64, t)),
    "password": lambda _: True,
    "ipv4": lambda t: _is_ip(t, 4),
    "ipv6": lambda t: _is_ip(t, 6),
}


def format_ok(fmt: str, value: str) -> bool:
    """Whether a string is of its (kept) format; formats not checked here accept anything."""
    check = _FORMAT_CHECKS.get(fmt.replace("-", ""))
    return check is None or check(value)
