"""Admission of custom resources as kube-apiserver v1.34 does it, for the emulator (k8s.py).

Modelled on the Go sources (k8s.io modules v0.34.4, kube-openapi), in the API server's order:
- defaulting and pruning (apiextensions-apiserver pkg/apiserver/schema/defaulting, pruning);
- OpenAPI schema validation (kube-openapi pkg/validation/validate: per node type, allOf/anyOf/oneOf/
  not, string, number, array, enum, object), its errors turned into field errors by
  apiextensions-apiserver pkg/apiserver/validation/validation.go (kubeOpenAPIResultToFieldErrors);
- x-kubernetes-list-type set/map uniqueness (pkg/apiserver/schema/listtype/validation.go);
- CEL `x-kubernetes-validations` (pkg/apiserver/schema/cel/validation.go), skipped with a `<nil>`
  error when an earlier error blocks them (pkg/registry/customresource/strategy.go, hasBlockingErr);
- messages as apimachinery's field.Error and apierrors.NewInvalid write them.

Not modelled: the checks of some string formats (uri, email, hostname, cidr, mac, isbn, creditcard,
ssn, colors, bsonobjectid, duration: accepted as they are), transition rules (`oldSelf`), ratcheting
on update, CEL cost limits, CEL's typed views of formatted strings, embedded-resource metadata checks.
Go iterates maps in random order, so the real order of errors from sibling fields varies; here it is
the schema's.
"""

from __future__ import annotations

import copy
import datetime
import ipaddress
import math
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import celpy
import re2  # type: ignore[import-untyped]  # Go's regexp syntax (RE2), as celpy uses it
from celpy import celtypes
from celpy.evaluation import CELEvalError

Obj = dict[str, Any]

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
_NOT_CHECKED = (
    "some validation rules were not checked because the object was invalid; "
    "correct the existing errors to complete validation"
)
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


# -- Go's formatting -----------------------------------------------------------------------------------


def _render(value: Any) -> str:
    """A bad value as ErrorBody prints it: %v for numbers and booleans, %q for strings, else JSON."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _go_float(value, json=False)
    if isinstance(value, str):
        return go_quote(value)
    return go_json(value)


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
        return _go_float(value, json=True)
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


def _go_float(value: float, *, json: bool) -> str:
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


# -- defaulting and pruning --------------------------------------------------------------------------


def _nonnullable_null(value: Any, schema: Mapping[str, Any] | None) -> bool:
    return value is None and schema is not None and not schema.get("nullable", False)


def _member_schema(schema: Mapping[str, Any], name: str) -> Mapping[str, Any] | None:
    """The schema of one member of an object: its property, else additionalProperties."""
    sub = (schema.get("properties") or {}).get(name)
    extra = schema.get("additionalProperties")
    return sub if sub is not None else (extra if isinstance(extra, dict) else None)


def apply_defaults(value: Any, schema: Mapping[str, Any]) -> None:
    """Set `default`s of missing (or non-nullable null) members (schema/defaulting/algorithm.go)."""
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        for name, sub in props.items():
            if "default" in sub and (name not in value or _nonnullable_null(value[name], sub)):
                value[name] = copy.deepcopy(sub["default"])
        extra = schema.get("additionalProperties")
        for name in value:
            if name in props:
                apply_defaults(value[name], props[name])
            elif isinstance(extra, dict):
                if _nonnullable_null(value[name], extra) and "default" in extra:
                    value[name] = copy.deepcopy(extra["default"])
                apply_defaults(value[name], extra)
    elif isinstance(value, list) and "items" in schema:
        items = schema["items"]
        for index, item in enumerate(value):
            if _nonnullable_null(item, items) and "default" in items:
                value[index] = copy.deepcopy(items["default"])
            apply_defaults(value[index], items)


def prune(value: Any, schema: Mapping[str, Any]) -> None:
    """Drop fields the structural schema does not declare (unless it preserves unknown fields), and
    non-nullable nulls without a default (schema/pruning, defaulting/prunenulls.go)."""
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        keep = {"apiVersion", "kind", "metadata"} if schema.get("x-kubernetes-embedded-resource") else set()
        if not schema.get("x-kubernetes-preserve-unknown-fields") and not isinstance(extra, dict):
            for name in [k for k in value if k not in props and k not in keep]:
                del value[name]
        for name in list(value):
            sub = _member_schema(schema, name)
            if _nonnullable_null(value[name], sub) and "default" not in (sub or {}):
                del value[name]
            elif sub is not None:
                prune(value[name], sub)
    elif isinstance(value, list) and "items" in schema:
        for item in value:
            prune(item, schema["items"])


# -- OpenAPI schema validation (kube-openapi pkg/validation/validate) ----------------------------------

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


def _go_type(value: Any) -> tuple[str, str]:
    """(JSON type, go-openapi format) of a decoded value (validate/type.go schemaInfoForType)."""
    if isinstance(value, bool):
        return "boolean", ""
    if isinstance(value, int):
        return "integer", "int64"
    if isinstance(value, float):
        return "number", "float64"
    if isinstance(value, str):
        return "string", ""
    if isinstance(value, list):
        return "array", ""
    if isinstance(value, dict):
        return "object", ""
    return "null", ""


class _Result:
    """A validate.Result: errors in order, each kube-openapi message reported once (AddErrors)."""

    def __init__(self) -> None:
        self.errors: list[tuple[str, FieldError]] = []
        self._seen: set[str] = set()

    def add(self, text: str, error: FieldError) -> None:
        if text not in self._seen:
            self._seen.add(text)
            self.errors.append((text, error))

    def merge(self, other: _Result) -> None:
        for text, error in other.errors:
            self.add(text, error)

    @property
    def valid(self) -> bool:
        return not self.errors


def _field(name: str) -> str:
    """The field.Path of a kube-openapi error name (its leading "." trimmed; none at the root)."""
    return name.removeprefix(".") if name and name != "." else "<nil>"


def _invalid(result: _Result, name: str, value: Any, text: str, kind: str = INVALID) -> None:
    result.add(text, FieldError(kind, _field(name), value, text))


def _composite(result: _Result, text: str) -> None:
    """An errors.New error (allOf/anyOf/oneOf/not): field.Invalid(nil, "", message)."""
    result.add(text, FieldError(INVALID, "<nil>", "", text))


def _schema_errors(value: Any, schema: Mapping[str, Any], path: str) -> _Result:
    """SchemaValidator.Validate (validate/schema.go): type, schema props, string, number, array,
    enum, then object validators, each applying by the value's JSON type."""
    result = _Result()
    _check_type(result, value, schema, path)
    if value is not None:
        _check_composition(result, value, schema, path)
        kind = _go_type(value)[0]
        if kind == "string":
            _check_string(result, value, schema, path)
            _check_format(result, value, schema, path)
        elif kind in ("integer", "number"):
            _check_number(result, value, schema, path)
        elif kind == "array":
            _check_array(result, value, schema, path)
    _check_enum(result, value, schema, path)
    if isinstance(value, dict):
        _check_object(result, value, schema, path)
    return result


def _schema_types(schema: Mapping[str, Any]) -> list[str]:
    if schema.get("x-kubernetes-int-or-string"):
        return ["integer", "string"]
    return [schema["type"]] if schema.get("type") else []


def _check_type(result: _Result, value: Any, schema: Mapping[str, Any], path: str) -> None:
    """validate/type.go: a TypeInvalid error whose value is the type found, e.g. "integer"."""
    types = _schema_types(schema)
    fmt = str(schema.get("format") or "")
    fmt = fmt if fmt.replace("-", "") in _FORMATS else ""  # the API server strips the others

    def fail(expected: str, found: str) -> None:
        text = f"{path} in body must be of type {expected}: {go_quote(found)}"
        _invalid(result, path, found, text, TYPE_INVALID)

    if value is None:
        if types and "null" not in types and not schema.get("nullable"):
            fail(",".join(types), "null")
        return
    found, found_format = _go_type(value)
    float_int = found == "number" and float(value).is_integer() and "integer" in types
    int_float = found == "integer" and "number" in types
    if (
        found not in ("string", "array")
        and fmt
        and not (found in types or found_format == fmt or float_int or int_float)
    ):
        fail(fmt, found_format)
        return
    if fmt and "number" not in types and "integer" not in types and found in ("string", "array"):
        return
    if types and not (found in types or float_int or int_float):
        fail(",".join(types), found)


def _check_composition(result: _Result, value: Any, schema: Mapping[str, Any], path: str) -> None:
    """validate/schema_props.go: anyOf, oneOf, allOf, not. A failed anyOf/oneOf adds the errors of its
    first alternative (Go: of the one with most matches; the first when they tie, as alike ones do)."""
    quoted = go_quote(path)
    if schema.get("anyOf"):
        outcomes = [_schema_errors(value, sub, path) for sub in schema["anyOf"]]
        if not any(o.valid for o in outcomes):
            _composite(result, f"{quoted} must validate at least one schema (anyOf)")
            result.merge(outcomes[0])
    if schema.get("oneOf"):
        outcomes = [_schema_errors(value, sub, path) for sub in schema["oneOf"]]
        valid = sum(o.valid for o in outcomes)
        if valid != 1:
            found = "Found none valid" if valid == 0 else f"Found {valid} valid alternatives"
            _composite(result, f"{quoted} must validate one and only one schema (oneOf). {found}")
            if valid == 0:
                result.merge(outcomes[0])
    if schema.get("allOf"):
        outcomes = [_schema_errors(value, sub, path) for sub in schema["allOf"]]
        for outcome in outcomes:
            result.merge(outcome)
        valid = sum(o.valid for o in outcomes)
        if valid != len(outcomes):
            _composite(
                result,
                f"{quoted} must validate all the schemas (allOf){'. None validated' if not valid else ''}",
            )
    if "not" in schema and _schema_errors(value, schema["not"], path).valid:
        _composite(result, f"{quoted} must not validate the schema (not)")


def _check_string(result: _Result, value: str, schema: Mapping[str, Any], path: str) -> None:
    """validate/validator.go stringValidator: the first of maxLength, minLength, pattern to fail."""
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        limit = int(schema["maxLength"])
        text = f"{path} in body should be at most {limit} chars long"
        units = "byte" if limit == 1 else "bytes"
        result.add(text, FieldError(TOO_LONG, _field(path), detail=f"may not be more than {limit} {units}"))
    elif "minLength" in schema and len(value) < schema["minLength"]:
        _invalid(result, path, value, f"{path} in body should be at least {schema['minLength']} chars long")
    elif "pattern" in schema and not re2.search(schema["pattern"], value):
        _invalid(result, path, value, f"{path} in body should match '{schema['pattern']}'")


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


def _check_format(result: _Result, value: str, schema: Mapping[str, Any], path: str) -> None:
    """validate/formats.go: a value not of its format is a type error naming the format."""
    fmt = str(schema.get("format") or "")
    check = _FORMAT_CHECKS.get(fmt.replace("-", ""))
    if check is not None and not check(value):
        text = f"{path} in body must be of type {fmt}: {go_quote(value)}"
        _invalid(result, path, value, text, TYPE_INVALID)


def _check_number(result: _Result, value: float, schema: Mapping[str, Any], path: str) -> None:
    """validate/validator.go numberValidator: multipleOf, minimum, maximum (native int64 or float64)."""
    native = isinstance(value, int)  # int64 data is checked against int64(bound)

    def bound(limit: float) -> str:
        return str(int(limit)) if native else _go_float(float(limit), json=False)

    if "multipleOf" in schema:
        factor = int(schema["multipleOf"]) if native else float(schema["multipleOf"])
        if factor <= 0:
            text = f"factor MultipleOf declared for {path} must be positive: {bound(factor)}"
            _invalid(result, path, factor, text)
        elif (
            value % factor
            if native
            else not (value * (1 / factor) if factor < 1 else value / factor).is_integer()
        ):
            _invalid(result, path, value, f"{path} in body should be a multiple of {bound(factor)}")
    for key, exclusive_key, word, failed in (
        ("minimum", "exclusiveMinimum", "greater", operator.lt),
        ("maximum", "exclusiveMaximum", "less", operator.gt),
    ):
        if key in schema:
            limit = int(schema[key]) if native else float(schema[key])
            exclusive = bool(schema.get(exclusive_key))
            if failed(value, limit) or (exclusive and value == limit):
                relation = f"should be {word} than" + ("" if exclusive else " or equal to")
                _invalid(result, path, value, f"{path} in body {relation} {bound(schema[key])}")


def _check_array(result: _Result, value: list[Any], schema: Mapping[str, Any], path: str) -> None:
    """validate/slice_validator.go: each item, then minItems, maxItems."""
    if isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            result.merge(_schema_errors(item, schema["items"], f"{path}[{index}]"))
    if "minItems" in schema and len(value) < schema["minItems"]:
        _invalid(result, path, len(value), f"{path} in body should have at least {schema['minItems']} items")
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        limit = int(schema["maxItems"])
        text = f"{path} in body should have at most {limit} items"
        result.add(text, FieldError(TOO_MANY, _field(path), len(value), _too_many(limit)))


def _too_many(limit: int) -> str:
    return f"must have at most {limit} {'item' if limit == 1 else 'items'}"


def _enum_equal(value: Any, option: Any) -> bool:
    """Go's comparison after converting the value to the option's type: a float64 converts to int64
    by truncation, an int64 to a string as a rune; null matches nothing."""
    if value is None or isinstance(value, bool) or isinstance(option, bool):
        return value is not None and type(value) is type(option) and value == option
    if isinstance(value, float) and isinstance(option, int):
        return math.isfinite(value) and int(value) == option
    if isinstance(value, int | float) and isinstance(option, int | float):
        return value == option
    if isinstance(value, int) and isinstance(option, str):
        return (
            chr(value) if 0 <= value <= 0x10FFFF and not 0xD800 <= value <= 0xDFFF else "\ufffd"
        ) == option
    return type(value) is type(option) and bool(value == option)


def _check_enum(result: _Result, value: Any, schema: Mapping[str, Any], path: str) -> None:
    """validate/validator.go basicCommonValidator, reported as field.NotSupported."""
    options = schema.get("enum")
    if options and not any(_enum_equal(value, option) for option in options):
        text = f"{path} in body should be one of {options}"
        shown = ", ".join(go_quote(o if isinstance(o, str) else go_json(o)) for o in options)
        result.add(text, FieldError(NOT_SUPPORTED, _field(path), value, f"supported values: {shown}"))


def _check_object(result: _Result, value: Obj, schema: Mapping[str, Any], path: str) -> None:
    """validate/object_validator.go: property counts, additionalProperties, properties, required."""
    count = len(value)
    if "minProperties" in schema and count < schema["minProperties"]:
        text = f"{path} in body should have at least {schema['minProperties']} properties"
        _invalid(result, path, count, text)
    if "maxProperties" in schema and count > schema["maxProperties"]:
        limit = int(schema["maxProperties"])
        text = f"{path} in body should have at most {limit} properties"
        result.add(text, FieldError(TOO_MANY, _field(path), count, _too_many(limit)))
    props = schema.get("properties") or {}
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        for name, member in value.items():
            if name not in props:
                result.merge(_schema_errors(member, extra, f"{path}.{name}"))
    for name, sub in props.items():
        if name in value:
            result.merge(_schema_errors(value[name], sub, f"{path}.{name}" if path else name))
    for name in schema.get("required") or []:
        if name not in value:
            result.add(f"{path}.{name} in body is required", FieldError(REQUIRED, _field(f"{path}.{name}")))


# -- x-kubernetes-list-type (pkg/apiserver/schema/listtype/validation.go) ------------------------------


def _child(path: str | None, name: str) -> str:
    return f"{path}.{name}" if path is not None else name


def _index(path: str | None, index: int | str) -> str:
    return f"{path or ''}[{index}]"


def _identity(value: Any) -> Any:
    """What Go compares list-set members by: scalars by type and value, compounds by their JSON."""
    if isinstance(value, dict | list):
        return ("json", go_json(value))
    return (_go_type(value)[0], value)


def _second_occurrences(keys: list[Any]) -> list[int]:
    """validateListSet: the index of each value's second occurrence."""
    counts: dict[Any, int] = {}
    found = []
    for index, key in enumerate(keys):
        counts[key] = counts.get(key, 0) + 1
        if counts[key] == 2:
            found.append(index)
    return found


def _list_type_errors(value: Any, schema: Mapping[str, Any], path: str | None) -> list[FieldError]:
    """ValidateListSetsAndMaps: Duplicate errors of `set` and `map` lists, at any depth."""
    errors: list[FieldError] = []
    if isinstance(value, dict):
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for name, member in value.items():
                errors += _list_type_errors(member, extra, _index(path, name))
        props = schema.get("properties") or {}
        for name, sub in props.items():
            if name in value:
                errors += _list_type_errors(value[name], sub, _child(path, name))
    elif isinstance(value, list):
        list_type = schema.get("x-kubernetes-list-type")
        if list_type == "set":
            for index in _second_occurrences([_identity(v) for v in value]):
                errors.append(FieldError(DUPLICATE, _index(path, index), value[index]))
        elif list_type == "map":
            errors += _list_map_errors(value, schema, path)
        if isinstance(schema.get("items"), dict):
            for index, item in enumerate(value):
                errors += _list_type_errors(item, schema["items"], _index(path, index))
    return errors


def _list_map_errors(value: list[Any], schema: Mapping[str, Any], path: str | None) -> list[FieldError]:
    """validateListMap: the second item with the same keys is a Duplicate shown by its keys."""
    for index, item in enumerate(value):
        if item is not None and not isinstance(item, dict):
            message = "must be an object for an array of list-type map"
            return [FieldError(INVALID, _index(path, index), item, message)]
    names = schema.get("x-kubernetes-list-map-keys") or []
    keys = [{n: item[n] for n in names if n in item} for item in (i or {} for i in value)]
    return [
        FieldError(DUPLICATE, _index(path, index), keys[index])
        for index in _second_occurrences([_identity(k) for k in keys])
    ]


# -- CEL x-kubernetes-validations (pkg/apiserver/schema/cel/validation.go) -----------------------------


def _go_duration(text: str) -> int:
    """time.ParseDuration, in nanoseconds (cel-go's duration(string))."""
    units = {"ns": 1, "us": 10**3, "µs": 10**3, "μs": 10**3, "ms": 10**6, "s": 10**9, "m": 60 * 10**9}
    units["h"] = 3600 * 10**9
    negative = text[:1] == "-"
    rest = text[1:] if text[:1] in ("-", "+") else text
    if rest == "0":
        return 0
    if not rest or not re.fullmatch(r"(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)[^0-9.]+)+", rest):
        raise ValueError(text)
    total = 0
    for number, unit in re.findall(r"([0-9]+\.?[0-9]*|\.[0-9]+)([^0-9.]+)", rest):
        if unit not in units:
            raise ValueError(text)
        whole, _, frac = number.partition(".")
        total += int(whole or "0") * units[unit]
        if frac:
            total += int(int(frac) * (units[unit] / 10 ** len(frac)))
        if total > 2**63 - (0 if negative else 1):
            raise ValueError(text)
    return -total if negative else total


def _cel_duration(value: Any) -> Any:
    """duration(): Go's syntax (no days; a bare "0"), and cel-go's error for a bad string."""
    if isinstance(value, str):
        try:
            nanos = _go_duration(str(value))
        except ValueError:
            return CELEvalError("type conversion error from 'string' to 'google.protobuf.Duration'")
        return celtypes.DurationType(datetime.timedelta(microseconds=nanos / 1000))
    return celtypes.DurationType(value)


_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})"
)


def _cel_timestamp(value: Any) -> Any:
    """timestamp(): RFC 3339 only, and cel-go's error for a bad string."""
    if isinstance(value, str):
        stamp = str(value)
        try:
            if not _RFC3339.fullmatch(stamp):
                raise ValueError(stamp)
            datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        except ValueError:
            return CELEvalError("type conversion error from 'string' to 'google.protobuf.Timestamp'")
    return celtypes.TimestampType(value)


def _cel_index(container: Any, key: Any) -> Any:
    """`_[_]` with the API server's errors for a missing map key or list index."""
    if isinstance(container, celtypes.ListType) and isinstance(key, int) and not 0 <= key < len(container):
        return CELEvalError(f"index out of bounds: {key}")
    if isinstance(container, celtypes.MapType) and key not in container:
        return CELEvalError(f"no such key: {key}")
    return operator.getitem(container, key)


_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "duration": _cel_duration,
    "timestamp": _cel_timestamp,
    "_[_]": _cel_index,
}
_NO_OVERLOAD = "call arguments did not match a supported operator, function or macro signature"
_ENV = celpy.Environment()
_PROGRAMS: dict[str, Any] = {}


def _program(expression: str) -> Any:
    program = _PROGRAMS.get(expression)
    if program is None:
        program = _PROGRAMS[expression] = _ENV.program(_ENV.compile(expression), functions=_FUNCTIONS)
    return program


def _cel_error_text(exc: Exception) -> str:
    """cel-go's text for an evaluation error that celpy words differently."""
    args = exc.args
    text = str(args[0]) if args else str(exc)
    cause = args[1] if len(args) > 1 else None
    if cause is KeyError and text.startswith("no such member in mapping: "):
        return "no such key: " + text.removeprefix("no such member in mapping: ").strip("'")
    if cause is KeyError and text == "no such key" and len(args) > 2:
        return f"no such key: {args[2][0]}"
    if cause is ZeroDivisionError:  # Python says "integer modulo by zero" for % only
        return "division by zero" if "division" in str(args[2:]) else "modulus by zero"
    if cause is ValueError and len(args) > 2 and args[2] == ("overflow",):
        return "integer overflow"
    return text


def _to_cel(value: Any, schema: Mapping[str, Any]) -> Any:
    """A value as CEL sees it (common/valuesunstructured.go): numbers of `type: number` are doubles."""
    if value is None:
        return None
    if isinstance(value, bool):
        return celtypes.BoolType(value)
    if isinstance(value, int):
        number = schema.get("type") == "number"
        return celtypes.DoubleType(value) if number else celtypes.IntType(value)
    if isinstance(value, float):
        return celtypes.DoubleType(value)
    if isinstance(value, str):
        return celtypes.StringType(value)
    if isinstance(value, list):
        items = schema.get("items") or {}
        return celtypes.ListType([_to_cel(v, items) for v in value])
    return celtypes.MapType(
        {celtypes.StringType(k): _to_cel(v, _member_schema(schema, k) or {}) for k, v in value.items()}
    )


def _normalized_field_path(field_path: str, schema: Mapping[str, Any]) -> str:
    """A rule's fieldPath as field.Path prints it (ValidFieldPath): `.a.b` is `a.b`; `['k']` names a
    property like `.k`, or a key `[k]` of an additionalProperties map. "" if it names nothing."""
    text, node = "", schema
    tokens = re.findall(r"(\.)([^.\[\]']+)|\['((?:[^'\\]|\\.)*)'\]|(.)", field_path)
    for dot, name, quoted, stray in tokens:
        if stray:
            return ""
        name = name if dot else re.sub(r"\\(.)", r"\1", quoted)
        props, extra = node.get("properties"), node.get("additionalProperties")
        if props is not None:
            if name not in props:
                return ""
            text, node = (f"{text}.{name}" if text else name), props[name]
        elif isinstance(extra, dict):
            text, node = f"{text}[{name}]", extra
        else:
            return ""
    return text


def _has_rules(schema: Any) -> bool:
    if isinstance(schema, dict):
        return bool(schema.get("x-kubernetes-validations")) or any(_has_rules(v) for v in schema.values())
    return isinstance(schema, list) and any(_has_rules(v) for v in schema)


def _cel_errors(value: Any, schema: Mapping[str, Any], path: str | None) -> list[FieldError]:
    """Validator.validate: this node's rules in order, allOf's, then items or members."""
    if value is None:
        return []
    errors = _rule_errors(value, schema, path)
    for sub in schema.get("allOf") or []:
        errors += _cel_errors(value, sub, path)
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            errors += _cel_errors(item, schema["items"], _index(path, index))
    elif isinstance(value, dict):
        extra = schema.get("additionalProperties")
        props = schema.get("properties") or {}
        if isinstance(extra, dict):
            for name, member in value.items():
                if name not in props:
                    errors += _cel_errors(member, extra, _index(path, name))
        for name, sub in props.items():
            if name in value:
                errors += _cel_errors(value[name], sub, _child(path, name))
    return errors


def _rule_errors(value: Any, schema: Mapping[str, Any], path: str | None) -> list[FieldError]:
    """validateExpressions: a failed rule is reported at its fieldPath with the schema's type as the
    value; an evaluation error at the rule's own node, as "<error> evaluating rule: <message>"."""
    rules = [
        r for r in schema.get("x-kubernetes-validations") or [] if not re.search(r"\boldSelf\b", r["rule"])
    ]
    if not rules:
        return []
    errors: list[FieldError] = []
    shown = "" if schema.get("x-kubernetes-int-or-string") else str(schema.get("type", ""))
    where = path if path is not None else "<nil>"
    activation = {"self": _to_cel(value, schema)}
    for rule in rules:
        message = str(rule.get("message") or "").strip()
        described = message or rule["rule"].strip()
        try:
            program = _program(rule["rule"])
        except Exception as exc:  # the API server refuses such a CRD; here the rule reports it
            errors.append(FieldError(INVALID, where, shown, f"rule compile error: {exc}"))
            continue
        try:
            result = program.evaluate(activation)
        except Exception as exc:
            text = _cel_error_text(exc)
            if text.startswith("no such overload"):
                detail = f"'{text}': {_NO_OVERLOAD} for rule: {described}"
            else:
                detail = f"{text} evaluating rule: {described}"
            errors.append(FieldError(INVALID, where, shown, detail))
            continue
        if isinstance(result, celtypes.BoolType) and bool(result):
            continue
        field_path = _normalized_field_path(str(rule.get("fieldPath") or ""), schema)
        target = where if not field_path else (f"{path}.{field_path}" if path is not None else field_path)
        detail = _message_expression(rule, activation) or message or f"failed rule: {described}"
        reason = rule.get("reason")
        if reason == FORBIDDEN:
            errors.append(FieldError(FORBIDDEN, target, detail=detail))
        elif reason == REQUIRED:
            errors.append(FieldError(REQUIRED, target, detail=detail))
        elif reason == DUPLICATE:
            errors.append(FieldError(DUPLICATE, target, shown))
        else:
            errors.append(FieldError(INVALID, target, shown, detail))
    return errors


def _message_expression(rule: Mapping[str, Any], activation: Mapping[str, Any]) -> str:
    """A rule's messageExpression, or "" when absent or unusable (the API server then uses message)."""
    if not rule.get("messageExpression"):
        return ""
    try:
        text = str(_program(rule["messageExpression"]).evaluate(activation)).strip()
    except Exception:
        return ""
    return text if text and "\n" not in text else ""


# -- all of it -----------------------------------------------------------------------------------------


NOT_CHECKED = FieldError(INVALID, "<nil>", None, _NOT_CHECKED).message  # CEL skipped: blocking errors


def check(obj: Obj, schema: Mapping[str, Any], *, cel: bool = True) -> list[FieldError]:
    """The field errors of a defaulted, pruned custom resource, in the API server's order: schema,
    list-type, then CEL rules (`cel=False`: none, as by a server without CEL). Metadata is checked
    elsewhere (the emulator's name checks); CEL sees only its name and generateName."""
    body = {k: v for k, v in obj.items() if k != "metadata"}
    props = {k: v for k, v in (schema.get("properties") or {}).items() if k != "metadata"}
    root = {**schema, "properties": props}
    errors = [error for _, error in _schema_errors(body, root, "").errors]
    errors += _list_type_errors(body, root, None)
    if cel and _has_rules(root):
        if any(e.type in BLOCKING for e in errors):
            errors.append(FieldError(INVALID, "<nil>", None, _NOT_CHECKED))
        else:
            meta = obj.get("metadata") or {}
            names = {"name": {"type": "string"}, "generateName": {"type": "string"}}
            body["metadata"] = {k: meta[k] for k in names if k in meta}
            root["properties"] = {**props, "metadata": {"type": "object", "properties": names}}
            errors += _cel_errors(body, root, None)
    return errors


def validate(obj: Obj, schema: Mapping[str, Any], *, cel: bool = True) -> list[tuple[str, str]]:
    """(field, message) for every schema and CEL violation, like the API server reports them.

    With `cel=False`, `x-kubernetes-validations` rules are ignored, as by an API server without CEL.
    """
    return [(e.field, e.message) for e in check(obj, schema, cel=cel)]
