"""CEL `x-kubernetes-validations` rules as kube-apiserver evaluates them (apiextensions-apiserver
pkg/apiserver/schema/cel/validation.go), with cel-go's wording of evaluation errors.

Not modelled: transition rules (`oldSelf`), ratcheting on update, cost limits, CEL's typed views of
formatted strings.
"""

from __future__ import annotations

import datetime
import operator
import re
from collections.abc import Callable, Mapping
from typing import Any

import celpy
from celpy import celtypes
from celpy.evaluation import CELEvalError

from tests.harness.k8s.messages import (
    DUPLICATE,
    FORBIDDEN,
    INVALID,
    REQUIRED,
    FieldError,
    child_path,
    index_path,
)
from tests.harness.k8s.schema import member_schema


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
        {celtypes.StringType(k): _to_cel(v, member_schema(schema, k) or {}) for k, v in value.items()}
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


def has_rules(schema: Any) -> bool:
    if isinstance(schema, dict):
        return bool(schema.get("x-kubernetes-validations")) or any(has_rules(v) for v in schema.values())
    return isinstance(schema, list) and any(has_rules(v) for v in schema)


def cel_errors(value: Any, schema: Mapping[str, Any], path: str | None) -> list[FieldError]:
    """Validator.validate: this node's rules in order, allOf's, then items or members."""
    if value is None:
        return []
    errors = _rule_errors(value, schema, path)
    for sub in schema.get("allOf") or []:
        errors += cel_errors(value, sub, path)
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            errors += cel_errors(item, schema["items"], index_path(path, index))
    elif isinstance(value, dict):
        extra = schema.get("additionalProperties")
        props = schema.get("properties") or {}
        if isinstance(extra, dict):
            for name, member in value.items():
                if name not in props:
                    errors += cel_errors(member, extra, index_path(path, name))
        for name, sub in props.items():
            if name in value:
                errors += cel_errors(value[name], sub, child_path(path, name))
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
