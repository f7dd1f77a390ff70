"""Field errors and their messages as apimachinery writes them, and the Go formatting they rely on.

- field.Error (pkg/util/validation/field/errors.go): its types, ErrorBody, Error, field paths;
- ErrorList.ToAggregate: the text after "is invalid: " in a 422;
- Go's formatting: strconv.Quote (%q), %v of numbers, encoding/json (values and float64s).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

# field.ErrorType values (apimachinery pkg/util/validation/field/errors.go) and how ErrorBody names them.
REQUIRED, INVALID, TYPE_INVALID = "FieldValueRequired", "FieldValueInvalid", "FieldValueTypeInvalid"
NOT_SUPPORTED, DUPLICATE, FORBIDDEN = "FieldValueNotSupported", "FieldValueDuplicate", "FieldValueForbidden"
TOO_LONG, TOO_MANY, INTERNAL = "FieldValueTooLong", "FieldValueTooMany", "InternalError"
_TITLES = {
    REQUIRED: "Required value",
    INVALID: "Invalid value",
    TYPE_INVALID: "Invalid value",
    NOT_SUPPORTED: "Unsupported value",
    DUPLICATE: "Duplicate value",
    FORBIDDEN: "Forbidden",
    TOO_LONG: "Too long",
    TOO_MANY: "Too many",
    INTERNAL: "Internal error",
}
_VALUELESS = {REQUIRED, FORBIDDEN, TOO_LONG, INTERNAL}
BLOCKING = {NOT_SUPPORTED, REQUIRED, TOO_LONG, TOO_MANY, TYPE_INVALID}  # strategy.go hasBlockingErr
_OMIT = object()


@dataclass(frozen=True)
class FieldError:
    """An apimachinery field.Error: `type` is its reason (a StatusCause type), `field` its path."""

    type: str
    field: str
    value: Any = _OMIT
    detail: str = ""

    @property
    def body(self) -> str:
        """ErrorBody(): the message without the field, as a StatusCause carries it."""
        text = _TITLES[self.type]
        if self.type not in _VALUELESS and self.value is not _OMIT:
            text += f": {_render(self.value)}"
        return f"{text}: {self.detail}" if self.detail else text

    @property
    def message(self) -> str:
        return f"{self.field}: {self.body}"


def aggregate(errors: list[FieldError]) -> str:
    """The text after "is invalid: " in a 422 (ErrorList.ToAggregate: duplicates dropped, `[a, b]`)."""
    texts = list(dict.fromkeys(e.message for e in errors))
    return texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]"


def child_path(path: str | None, name: str) -> str:
    """A field.Path's child: `path.name` (`name` at the root)."""
    return f"{path}.{name}" if path is not None else name


def index_path(path: str | None, key: int | str) -> str:
    """A field.Path's list index or map key: `path[key]`."""
    return f"{path or ''}[{key}]"


# -- Go's formatting -----------------------------------------------------------------------------------


def _render(value: Any) -> str:
    """A bad value as ErrorBody prints it: %v for numbers and booleans, %q for strings, else JSON."""
    if isinstance(value, float):
        return go_float(value, json=False)
    if isinstance(value, str):
        return go_quote(value)
    return go_json(value)  # booleans and ints print as %v does


_QUOTE_ESCAPES = {"\a": r"\a", "\b": r"\b", "\f": r"\f", "\n": r"\n", "\r": r"\r", "\t": r"\t", "\v": r"\v"}


def go_quote(text: str) -> str:
    """strconv.Quote (Go's %q)."""
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch.isprintable():  # unicode.IsPrint: letters, marks, numbers, punctuation, symbols, ' '
            out.append(ch)
        elif ch in _QUOTE_ESCAPES:
            out.append(_QUOTE_ESCAPES[ch])
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        else:
            out.append(f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
    return "".join(out) + '"'


_JSON_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}


def go_json(value: Any) -> str:
    """encoding/json.Marshal: compact, map keys sorted, <, >, & and U+2028/9 escaped."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return go_float(value, json=True)
    if isinstance(value, str):
        out = ['"']
        for ch in value:
            if ch in _JSON_ESCAPES:
                out.append(_JSON_ESCAPES[ch])
            elif ord(ch) < 0x20 or ch in "<>&\u2028\u2029":
                out.append(f"\\u{ord(ch):04x}")
            else:
                out.append(ch)
        return "".join(out) + '"'
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{go_json(str(k))}:{go_json(value[k])}" for k in sorted(value)) + "}"
    return "[" + ",".join(go_json(v) for v in value) + "]"


def go_numbers(value: Any) -> None:
    """Make a decoded value (in place) what the API server writes back: whole float64s print as
    integers (encoding/json writes 2.0 as 2, so clients read an int)."""
    members = (
        value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    )
    for key, member in list(members):
        if isinstance(member, float) and member.is_integer() and abs(member) < 1e21:
            value[key] = int(member)
        else:
            go_numbers(member)


def go_float(value: float, *, json: bool) -> str:
    """strconv.FormatFloat(f, 'g', -1) as %v prints it, or encoding/json's float format."""
    sign = "-" if str(value).startswith("-") else ""
    if value == 0 or value != value or abs(value) == float("inf"):
        return {"inf": "+Inf", "-inf": "-Inf", "nan": "NaN"}.get(str(value), sign + "0")
    _, digit_tuple, exponent = Decimal(repr(abs(value))).normalize().as_tuple()
    digits = "".join(map(str, digit_tuple))
    exp = len(digits) + int(exponent) - 1  # decimal exponent of the first digit
    scientific = (abs(value) < 1e-6 or abs(value) >= 1e21) if json else (exp < -4 or exp >= 6)
    if scientific:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        tail = f"{abs(exp):02d}"
        if json and exp < 0 and tail.startswith("0"):  # encoding/json cleans e-07 up to e-7
            tail = tail[1:]
        return f"{sign}{mantissa}e{'-' if exp < 0 else '+'}{tail}"
    if exp < 0:
        return f"{sign}0.{'0' * (-exp - 1)}{digits}"
    whole, frac = digits[: exp + 1].ljust(exp + 1, "0"), digits[exp + 1 :]
    return f"{sign}{whole}{'.' + frac if frac else ''}"
