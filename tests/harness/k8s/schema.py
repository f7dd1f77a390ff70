"""Structural-schema defaulting and pruning, as apiextensions-apiserver does them before validation
(pkg/apiserver/schema/defaulting, pkg/apiserver/schema/pruning, defaulting/prunenulls.go)."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any


def _nonnullable_null(value: Any, schema: Mapping[str, Any] | None) -> bool:
    return value is None and schema is not None and not schema.get("nullable", False)


def member_schema(schema: Mapping[str, Any], name: str) -> Mapping[str, Any] | None:
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
            sub = member_schema(schema, name)
            if _nonnullable_null(value[name], sub) and "default" not in (sub or {}):
                del value[name]
            elif sub is not None:
                prune(value[name], sub)
    elif isinstance(value, list) and "items" in schema:
        for item in value:
            prune(item, schema["items"])
