"""Admission: defaulting, pruning, OpenAPI and CEL validation, with kube-apiserver's 422 messages."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client

from tests.harness.k8s import validate
from tests.harness.k8s.tests.widgets import G, P, V, api_error, custom


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"size": -1},
            "spec.size: Invalid value: -1: spec.size in body should be greater than or equal to 0",
        ),
        (
            {"size": "big"},
            'spec.size: Invalid value: "string": spec.size in body must be of type integer: "string"',
        ),
        ({"size": 1, "name": "A1"}, "spec.name in body should match '^[a-z]+$'"),
        ({"size": 1, "tags": [""]}, "spec.tags[0] in body should be at least 1 chars long"),
        ({"size": 11}, 'spec.size: Invalid value: "object": size must not exceed max'),
        ({}, "spec.size: Required value"),
    ],
)
def test_schema_and_cel_violations_name_the_field(
    api: client.ApiClient, ns: str, spec: dict[str, Any], message: str
) -> None:
    body = {"apiVersion": f"{G}/{V}", "kind": "Widget", "metadata": {"name": "bad"}, "spec": spec}
    status, error = api_error(lambda: custom(api).create_namespaced_custom_object(G, V, ns, P, body))
    assert (status, error["reason"]) == (422, "Invalid")
    assert error["message"].startswith('Widget.example.dev "bad" is invalid: ')
    assert message in error["message"]
    assert error["details"]["causes"][0]["field"].startswith("spec")


NOT_CHECKED = (
    "<nil>: Invalid value: null: some validation rules were not checked because the object was invalid; "
    "correct the existing errors to complete validation"
)


@pytest.mark.parametrize(
    ("spec", "message", "causes"),
    [
        pytest.param(  # a type error blocks the CEL rules, which would fail too: they are not run
            {"size": 11, "tags": "x"},
            '[spec.tags: Invalid value: "string": spec.tags in body must be of type array: "string", '
            f"{NOT_CHECKED}]",
            [
                ("FieldValueTypeInvalid", "spec.tags"),
                ("FieldValueInvalid", "<nil>"),
            ],
            id="blocking-type-error",
        ),
        pytest.param(  # so does a missing required field
            {"max": 1},
            f"[spec.size: Required value, {NOT_CHECKED}]",
            [("FieldValueRequired", "spec.size"), ("FieldValueInvalid", "<nil>")],
            id="blocking-required",
        ),
        pytest.param(  # a pattern error does not: the CEL rules run beside it
            {"size": 11, "name": "A1"},
            "[spec.name: Invalid value: \"A1\": spec.name in body should match '^[a-z]+$', "
            'spec.size: Invalid value: "object": size must not exceed max]',
            [("FieldValueInvalid", "spec.name"), ("FieldValueInvalid", "spec.size")],
            id="cel-beside-pattern",
        ),
    ],
)
def test_blocking_errors_skip_cel_rules(
    api: client.ApiClient, ns: str, spec: dict[str, Any], message: str, causes: list[tuple[str, str]]
) -> None:
    """As kube-apiserver's customresource strategy: CEL rules run unless an earlier error is of a
    blocking kind (type, required, unsupported, too long, too many)."""
    body = {"apiVersion": f"{G}/{V}", "kind": "Widget", "metadata": {"name": "bad"}, "spec": spec}
    status, error = api_error(lambda: custom(api).create_namespaced_custom_object(G, V, ns, P, body))
    assert status == 422
    assert error["message"] == f'Widget.example.dev "bad" is invalid: {message}'
    found = [(c["reason"], c["field"]) for c in error["details"]["causes"]]
    assert found == causes
    assert all(not c["message"].startswith(c["field"]) for c in error["details"]["causes"])


SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "x-kubernetes-validations": [
                {"rule": "!has(self.every) || duration(self.every) > duration('0s')", "message": "every > 0"},
            ],
            "properties": {
                "every": {"type": "string", "maxLength": 8, "pattern": "^[0-9]+[smh]$"},
                "kind": {"type": "string", "enum": ["A", "B"]},
                "names": {
                    "type": "array",
                    "maxItems": 2,
                    "minItems": 1,
                    "x-kubernetes-list-type": "set",
                    "items": {"type": "string"},
                    "x-kubernetes-validations": [{"rule": "self.all(n, n != 'x')", "message": "no x"}],
                },
                "count": {"type": "number", "maximum": 1000000},
            },
        }
    },
}


@pytest.mark.parametrize(
    ("spec", "messages"),
    [
        ({"every": "1d"}, [  # the pattern fails, and CEL's duration() cannot parse it: both reported
            "spec.every: Invalid value: \"1d\": spec.every in body should match '^[0-9]+[smh]$'",
            "spec: Invalid value: \"object\": type conversion error from 'string' to "
            "'google.protobuf.Duration' evaluating rule: every > 0",
        ]),
        ({"every": "0s"}, ['spec: Invalid value: "object": every > 0']),
        ({"every": "123456789s"}, ["spec.every: Too long: may not be more than 8 bytes", NOT_CHECKED]),
        ({"kind": "C"}, ['spec.kind: Unsupported value: "C": supported values: "A", "B"', NOT_CHECKED]),
        ({"kind": 1}, [
            'spec.kind: Invalid value: "integer": spec.kind in body must be of type string: "integer"',
            'spec.kind: Unsupported value: 1: supported values: "A", "B"',
            NOT_CHECKED,
        ]),
        ({"names": ["a", "b", "a"]}, [
            "spec.names: Too many: 3: must have at most 2 items",
            'spec.names[2]: Duplicate value: "a"',
            NOT_CHECKED,
        ]),
        ({"names": []}, ["spec.names: Invalid value: 0: spec.names in body should have at least 1 items"]),
        ({"names": ["x", "x"]}, [
            'spec.names[1]: Duplicate value: "x"',  # list-type errors come after the schema's, then CEL's
            'spec.names: Invalid value: "array": no x',
        ]),
        ({"count": 2000000.5}, [  # Go's %v of a float64
            "spec.count: Invalid value: 2.0000005e+06: spec.count in body should be less than or equal to "
            "1e+06",
        ]),
    ],
)  # fmt: skip
def test_validation_messages_are_the_api_servers(spec: dict[str, Any], messages: list[str]) -> None:
    """kube-apiserver v1.34's wording and order (compared with a real one by tests/e2e/real)."""
    obj = {"metadata": {"name": "x"}, "spec": spec}
    assert validate(obj, SCHEMA) == [(m.split(": ", 1)[0], m) for m in messages]


def test_without_cel_no_rule_is_reported_skipped() -> None:
    """A server without CEL reports the schema's errors only, blocking or not."""
    obj = {"metadata": {"name": "x"}, "spec": {"every": "1d", "kind": "C"}}
    assert [m for _, m in validate(obj, SCHEMA, cel=False)] == [
        "spec.every: Invalid value: \"1d\": spec.every in body should match '^[0-9]+[smh]$'",
        'spec.kind: Unsupported value: "C": supported values: "A", "B"',
    ]
