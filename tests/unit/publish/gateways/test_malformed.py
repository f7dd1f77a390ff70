"""Issue 23, item 5: objects the outputs cannot read (a spec replaced by a list, entries or marks of the wrong
type) are refused with a MalformedObjectError naming the object and the field, by our writes and our
releases alike: never a crash (AttributeError, TypeError), never a write."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from jwks_operator.publish.gateways.base import MANAGED_ANNOTATION, MalformedObjectError, Write
from tests.unit.publish.gateways.test_foreign_entries import (
    CASES,
    consumer_object,
    istio_object,
    policy_object,
    project_object,
    publish,
    release,
)

Edit = Callable[[dict[str, Any]], None]


def set_spec(value: Any) -> Edit:
    def edit(body: dict[str, Any]) -> None:
        body["spec"] = value

    return edit


def set_in(path: tuple[str, ...], value: Any) -> Edit:
    def edit(body: dict[str, Any]) -> None:
        node = body
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return edit


def project_data(value: Any) -> Edit:
    def edit(body: dict[str, Any]) -> None:
        body["data"]["data"] = json.dumps(value)

    return edit


MALFORMED: list[tuple[str, Callable[[list[Any]], dict[str, Any]], Edit, str]] = [
    ("istio", istio_object, set_spec([{"jwtRules": []}]), "RequestAuthentication api: spec is not an object"),
    ("istio", istio_object, set_in(("spec", "jwtRules"), {"issuer": "x"}), "spec.jwtRules is not a list"),
    ("envoyGateway", policy_object, set_spec("jwt"), "SecurityPolicy edge: spec is not an object"),
    ("envoyGateway", policy_object, set_in(("spec", "jwt"), []), "spec.jwt is not an object"),
    (
        "envoyGateway",
        policy_object,
        set_in(("spec", "jwt", "providers"), "p"),
        "spec.jwt.providers is not a list",
    ),
    ("spaceCloud", project_object, project_data([]), "data.data is not a Space Cloud project's JSON"),
    ("spaceCloud", project_object, project_data({"secrets": ["kid"]}), "data.data is not a Space Cloud"),
    ("spaceCloud", project_object, set_in(("data",), ["data"]), "data is not a map of strings"),
    ("kong", consumer_object, set_in(("credentials",), {"a": 1}), "credentials is not a list of names"),
    ("kong", consumer_object, set_in(("credentials",), [1]), "credentials is not a list of names"),
]
MARKS = [
    set_in(("metadata", "annotations", MANAGED_ANNOTATION), "{not json"),
    set_in(("metadata", "annotations", MANAGED_ANNOTATION), '{"orders/uid-orders": 7}'),
    set_in(("metadata", "annotations"), ["a"]),
    set_in(("metadata",), []),
]


def refused(w: Write, body: dict[str, Any], match: str) -> str:
    """The reason `w` refuses `body` with (it must leave it as read)."""
    before = copy.deepcopy(body)
    with pytest.raises(MalformedObjectError, match=match) as error:
        w.mutate(body)
    assert body == before
    return error.value.reason


@pytest.mark.parametrize(("gateway", "make", "edit", "problem"), MALFORMED, ids=[m[3] for m in MALFORMED])
def test_an_object_of_the_wrong_shape_is_refused_by_our_writes_and_our_release(
    gateway: str, make: Callable[[list[Any]], dict[str, Any]], edit: Edit, problem: str
) -> None:
    case = CASES[gateway]
    written = publish(case).mutate(make([]))
    assert isinstance(written, dict)
    edit(written)
    reasons = {refused(publish(case), written, problem), refused(release(case), written, problem)}
    assert reasons <= {"MalformedObject", "InvalidProjectConfig", "InvalidKongConsumer"}


@pytest.mark.parametrize("gateway", list(CASES))
@pytest.mark.parametrize(
    "edit", MARKS, ids=["mark not json", "mark not ids", "annotations a list", "metadata"]
)
def test_unreadable_marks_and_metadata_are_refused(gateway: str, edit: Edit) -> None:
    """Without readable marks nobody's entries can be told apart: nothing is written, nothing removed."""
    case = CASES[gateway]
    written = publish(case).mutate(case.obj([]))
    assert isinstance(written, dict)
    edit(written)
    assert refused(publish(case), written, "is not") == "MalformedObject"
    assert refused(release(case), written, "is not") == "MalformedObject"
