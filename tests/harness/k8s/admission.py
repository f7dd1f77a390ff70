"""Admission of a written object as kube-apiserver v1.34 does it, in its order.

Modelled on the Go sources (k8s.io modules v0.34.4, kube-openapi): defaulting and pruning
(schema.py), OpenAPI schema validation (openapi.py), x-kubernetes-list-type uniqueness (listtype.py),
then CEL `x-kubernetes-validations` (cel.py), skipped with a `<nil>` error when an earlier error blocks
them (pkg/registry/customresource/strategy.go, hasBlockingErr); messages as apimachinery's field.Error
and apierrors.NewInvalid write them (messages.py, status.py).

Not modelled: the checks of some string formats (uri, email, hostname, cidr, mac, isbn, creditcard,
ssn, colors, bsonobjectid, duration: accepted as they are), transition rules (`oldSelf`), ratcheting
on update, CEL cost limits, CEL's typed views of formatted strings, embedded-resource metadata checks.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from tests.harness.k8s.cel import cel_errors, has_rules
from tests.harness.k8s.kinds import SECRETS, Kind, Obj
from tests.harness.k8s.listtype import list_type_errors
from tests.harness.k8s.messages import BLOCKING, INVALID, FieldError, go_numbers
from tests.harness.k8s.openapi import schema_errors
from tests.harness.k8s.schema import apply_defaults, prune
from tests.harness.k8s.status import invalid

_NOT_CHECKED = (
    "some validation rules were not checked because the object was invalid; "
    "correct the existing errors to complete validation"
)
NOT_CHECKED = FieldError(INVALID, "<nil>", None, _NOT_CHECKED).message  # CEL skipped: blocking errors


def check(obj: Obj, schema: Mapping[str, Any], *, cel: bool = True) -> list[FieldError]:
    """The field errors of a defaulted, pruned custom resource, in the API server's order: schema,
    list-type, then CEL rules (`cel=False`: none, as by a server without CEL). Metadata is checked
    elsewhere (the emulator's name checks); CEL sees only its name and generateName."""
    body = {k: v for k, v in obj.items() if k != "metadata"}
    props = {k: v for k, v in (schema.get("properties") or {}).items() if k != "metadata"}
    root = {**schema, "properties": props}
    errors = [error for _, error in schema_errors(body, root, "").errors]
    errors += list_type_errors(body, root, None)
    if cel and has_rules(root):
        if any(e.type in BLOCKING for e in errors):
            errors.append(FieldError(INVALID, "<nil>", None, _NOT_CHECKED))
        else:
            meta = obj.get("metadata") or {}
            names = {"name": {"type": "string"}, "generateName": {"type": "string"}}
            body["metadata"] = {k: meta[k] for k in names if k in meta}
            root["properties"] = {**props, "metadata": {"type": "object", "properties": names}}
            errors += cel_errors(body, root, None)
    return errors


def validate(obj: Obj, schema: Mapping[str, Any], *, cel: bool = True) -> list[tuple[str, str]]:
    """(field, message) for every schema and CEL violation, like the API server reports them.

    With `cel=False`, `x-kubernetes-validations` rules are ignored, as by an API server without CEL.
    """
    return [(e.field, e.message) for e in check(obj, schema, cel=cel)]


def admit(kind: Kind, obj: Obj, *, cel: bool = True) -> None:
    """Make a written object what the API server stores, in place, or raise its 422: a Secret's
    stringData moves to data; a custom resource is defaulted, pruned and validated, and its whole
    numbers become ints, as Go's JSON writes float64s back."""
    if kind.key == SECRETS and "stringData" in obj:  # write-only convenience field
        encoded = {k: base64.b64encode(str(v).encode()).decode() for k, v in obj.pop("stringData").items()}
        obj["data"] = {**(obj.get("data") or {}), **encoded}
    if kind.schema is None:
        return
    # apiVersion, kind and metadata are kept aside, as the API server's schema coercion does
    implicit: Obj = {k: obj.pop(k) for k in ("apiVersion", "kind", "metadata") if k in obj}
    apply_defaults(obj, kind.schema)
    prune(obj, kind.schema)
    rest = dict(obj)
    obj.clear()
    obj.update(implicit, **rest)
    errors = check(obj, kind.schema, cel=cel)
    if errors:
        raise invalid(kind, obj["metadata"].get("name"), errors)
    go_numbers(obj)
