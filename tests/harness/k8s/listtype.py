"""x-kubernetes-list-type `set` and `map` uniqueness (apiextensions-apiserver
pkg/apiserver/schema/listtype/validation.go)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tests.harness.k8s.formats import go_type
from tests.harness.k8s.messages import DUPLICATE, INVALID, FieldError, child_path, go_json, index_path


def _identity(value: Any) -> Any:
    """What Go compares list-set members by: scalars by type and value, compounds by their JSON."""
    if isinstance(value, dict | list):
        return ("json", go_json(value))
    return (go_type(value)[0], value)


def _second_occurrences(keys: list[Any]) -> list[int]:
    """validateListSet: the index of each value's second occurrence."""
    counts: dict[Any, int] = {}
    found = []
    for index, key in enumerate(keys):
        counts[key] = counts.get(key, 0) + 1
        if counts[key] == 2:
            found.append(index)
    return found


def list_type_errors(value: Any, schema: Mapping[str, Any], path: str | None) -> list[FieldError]:
    """ValidateListSetsAndMaps: Duplicate errors of `set` and `map` lists, at any depth."""
    errors: list[FieldError] = []
    if isinstance(value, dict):
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for name, member in value.items():
                errors += list_type_errors(member, extra, index_path(path, name))
        props = schema.get("properties") or {}
        for name, sub in props.items():
            if name in value:
                errors += list_type_errors(value[name], sub, child_path(path, name))
    elif isinstance(value, list):
        list_type = schema.get("x-kubernetes-list-type")
        if list_type == "set":
            for index in _second_occurrences([_identity(v) for v in value]):
                errors.append(FieldError(DUPLICATE, index_path(path, index), value[index]))
        elif list_type == "map":
            errors += _list_map_errors(value, schema, path)
        if isinstance(schema.get("items"), dict):
            for index, item in enumerate(value):
                errors += list_type_errors(item, schema["items"], index_path(path, index))
    return errors


def _list_map_errors(value: list[Any], schema: Mapping[str, Any], path: str | None) -> list[FieldError]:
    """validateListMap: the second item with the same keys is a Duplicate shown by its keys."""
    for index, item in enumerate(value):
        if item is not None and not isinstance(item, dict):
            message = "must be an object for an array of list-type map"
            return [FieldError(INVALID, index_path(path, index), item, message)]
    names = schema.get("x-kubernetes-list-map-keys") or []
    keys = [{n: item[n] for n in names if n in item} for item in (i or {} for i in value)]
    return [
        FieldError(DUPLICATE, index_path(path, index), keys[index])
        for index in _second_occurrences([_identity(k) for k in keys])
    ]
