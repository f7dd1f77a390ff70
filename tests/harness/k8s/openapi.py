"""OpenAPI schema validation as kube-openapi pkg/validation/validate does it for kube-apiserver.

Per node type: type, allOf/anyOf/oneOf/not, string, format, number, array, enum, object; its errors
turned into field errors as apiextensions-apiserver pkg/apiserver/validation/validation.go
(kubeOpenAPIResultToFieldErrors) does. Go iterates maps in random order, so the real order of errors
from sibling fields varies; here it is the schema's.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Mapping
from typing import Any

import re2  # type: ignore[import-untyped]  # Go's regexp syntax (RE2), as celpy uses it

from tests.harness.k8s.formats import format_ok, go_type, kept_format
from tests.harness.k8s.messages import (
    INVALID,
    NOT_SUPPORTED,
    REQUIRED,
    TOO_LONG,
    TOO_MANY,
    TYPE_INVALID,
    FieldError,
    go_float,
    go_json,
    go_quote,
)

Obj = dict[str, Any]


class Result:
    """A validate.Result: errors in order, each kube-openapi message reported once (AddErrors)."""

    def __init__(self) -> None:
        self.errors: list[tuple[str, FieldError]] = []
        self._seen: set[str] = set()

    def add(self, text: str, error: FieldError) -> None:
        if text not in self._seen:
            self._seen.add(text)
            self.errors.append((text, error))

    def merge(self, other: Result) -> None:
        for text, error in other.errors:
            self.add(text, error)

    @property
    def valid(self) -> bool:
        return not self.errors


def _field(name: str) -> str:
    """The field.Path of a kube-openapi error name (its leading "." trimmed; none at the root)."""
    return name.removeprefix(".") if name and name != "." else "<nil>"


def _invalid(result: Result, name: str, value: Any, text: str, kind: str = INVALID) -> None:
    result.add(text, FieldError(kind, _field(name), value, text))


def _composite(result: Result, text: str) -> None:
    """An errors.New error (allOf/anyOf/oneOf/not): field.Invalid(nil, "", message)."""
    result.add(text, FieldError(INVALID, "<nil>", "", text))


def schema_errors(value: Any, schema: Mapping[str, Any], path: str) -> Result:
    """SchemaValidator.Validate (validate/schema.go): type, schema props, string, number, array,
    enum, then object validators, each applying by the value's JSON type."""
    result = Result()
    _check_type(result, value, schema, path)
    if value is not None:
        _check_composition(result, value, schema, path)
        kind = go_type(value)[0]
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


def _check_type(result: Result, value: Any, schema: Mapping[str, Any], path: str) -> None:
    """validate/type.go: a TypeInvalid error whose value is the type found, e.g. "integer"."""
    types = _schema_types(schema)
    fmt = kept_format(schema)  # the API server strips the others

    def fail(expected: str, found: str) -> None:
        text = f"{path} in body must be of type {expected}: {go_quote(found)}"
        _invalid(result, path, found, text, TYPE_INVALID)

    if value is None:
        if types and "null" not in types and not schema.get("nullable"):
            fail(",".join(types), "null")
        return
    found, found_format = go_type(value)
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


def _check_composition(result: Result, value: Any, schema: Mapping[str, Any], path: str) -> None:
    """validate/schema_props.go: anyOf, oneOf, allOf, not. A failed anyOf/oneOf adds the errors of its
    first alternative (Go: of the one with most matches; the first when they tie, as alike ones do)."""
    quoted = go_quote(path)
    if schema.get("anyOf"):
        outcomes = [schema_errors(value, sub, path) for sub in schema["anyOf"]]
        if not any(o.valid for o in outcomes):
            _composite(result, f"{quoted} must validate at least one schema (anyOf)")
            result.merge(outcomes[0])
    if schema.get("oneOf"):
        outcomes = [schema_errors(value, sub, path) for sub in schema["oneOf"]]
        valid = sum(o.valid for o in outcomes)
        if valid != 1:
            found = "Found none valid" if valid == 0 else f"Found {valid} valid alternatives"
            _composite(result, f"{quoted} must validate one and only one schema (oneOf). {found}")
            if valid == 0:
                result.merge(outcomes[0])
    if schema.get("allOf"):
        outcomes = [schema_errors(value, sub, path) for sub in schema["allOf"]]
        for outcome in outcomes:
            result.merge(outcome)
        valid = sum(o.valid for o in outcomes)
        if valid != len(outcomes):
            _composite(
                result,
                f"{quoted} must validate all the schemas (allOf){'. None validated' if not valid else ''}",
            )
    if "not" in schema and schema_errors(value, schema["not"], path).valid:
        _composite(result, f"{quoted} must not validate the schema (not)")


def _check_string(result: Result, value: str, schema: Mapping[str, Any], path: str) -> None:
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


def _check_format(result: Result, value: str, schema: Mapping[str, Any], path: str) -> None:
    """validate/formats.go: a value not of its format is a type error naming the format."""
    fmt = str(schema.get("format") or "")
    if not format_ok(fmt, value):
        text = f"{path} in body must be of type {fmt}: {go_quote(value)}"
        _invalid(result, path, value, text, TYPE_INVALID)


def _check_number(result: Result, value: float, schema: Mapping[str, Any], path: str) -> None:
    """validate/validator.go numberValidator: multipleOf, minimum, maximum (native int64 or float64)."""
    native = isinstance(value, int)  # int64 data is checked against int64(bound)

    def bound(limit: float) -> str:
        return str(int(limit)) if native else go_float(float(limit), json=False)

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


def _check_array(result: Result, value: list[Any], schema: Mapping[str, Any], path: str) -> None:
    """validate/slice_validator.go: each item, then minItems, maxItems."""
    if isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            result.merge(schema_errors(item, schema["items"], f"{path}[{index}]"))
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


def _check_enum(result: Result, value: Any, schema: Mapping[str, Any], path: str) -> None:
    """validate/validator.go basicCommonValidator, reported as field.NotSupported."""
    options = schema.get("enum")
    if options and not any(_enum_equal(value, option) for option in options):
        text = f"{path} in body should be one of {options}"
        shown = ", ".join(go_quote(o if isinstance(o, str) else go_json(o)) for o in options)
        result.add(text, FieldError(NOT_SUPPORTED, _field(path), value, f"supported values: {shown}"))


def _check_object(result: Result, value: Obj, schema: Mapping[str, Any], path: str) -> None:
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
                result.merge(schema_errors(member, extra, f"{path}.{name}"))
    for name, sub in props.items():
        if name in value:
            result.merge(schema_errors(value[name], sub, f"{path}.{name}" if path else name))
    for name in schema.get("required") or []:
        if name not in value:
            result.add(f"{path}.{name} in body is required", FieldError(REQUIRED, _field(f"{path}.{name}")))
