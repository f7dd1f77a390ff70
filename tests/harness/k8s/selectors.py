"""Label and field selectors of list and watch requests, as predicates on objects."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from tests.harness.k8s.status import ApiError

Obj = dict[str, Any]

_SET_EXPR = re.compile(r"^\s*(!)?\s*([\w./-]+)\s*(?:(in|notin)\s*\(([^)]*)\)|(==|=|!=)\s*([\w./-]*))?\s*$")


def _requirement(part: str) -> Callable[[Mapping[str, str]], bool]:
    match = _SET_EXPR.match(part)
    if match is None:
        raise ApiError(400, "BadRequest", f"unable to parse requirement: {part!r}")
    neg, key, setop, values, op, value = match.groups()

    def test(labels: Mapping[str, str]) -> bool:
        if setop == "in":
            return labels.get(key) in {v.strip() for v in values.split(",")}
        if setop == "notin":
            return labels.get(key) not in {v.strip() for v in values.split(",")}
        if op:
            return (labels.get(key) == value) == (op != "!=")
        return (key in labels) != bool(neg)

    return test


def label_selector(text: str) -> Callable[[Obj], bool]:
    """A predicate for a label selector (equality- and set-based)."""
    tests = [_requirement(p) for p in re.split(r",(?![^(]*\))", text) if p.strip()]
    return lambda obj: all(t((obj.get("metadata") or {}).get("labels") or {}) for t in tests)


def field_selector(text: str) -> Callable[[Obj], bool]:
    """metadata.name / metadata.namespace equality selectors."""
    tests: list[tuple[str, str, bool]] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        match = re.match(r"^metadata\.(name|namespace)\s*(==|=|!=)\s*(.*)$", part)
        if match is None:
            raise ApiError(400, "BadRequest", f'field label not supported: "{part}"')
        tests.append((match[1], match[3], match[2] != "!="))
    return lambda obj: all((obj["metadata"].get(attr) == value) == eq for attr, value, eq in tests)


def selector(params: Mapping[str, str]) -> Callable[[Obj], bool]:
    """The predicate of a request's `labelSelector` and `fieldSelector` parameters."""
    labels = label_selector(params.get("labelSelector", ""))
    fields = field_selector(params.get("fieldSelector", ""))
    return lambda obj: labels(obj) and fields(obj)
