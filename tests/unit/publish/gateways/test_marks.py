"""Our marks on shared gateway objects: entries proven ours by id and fingerprint, marks read strictly."""

from __future__ import annotations

import json
from typing import Any

import pytest

from jwks_operator.publish.bodies import Owner
from jwks_operator.publish.gateways.base import (
    MANAGED_ANNOTATION,
    MalformedObjectError,
    claim,
    fingerprint,
    managed_entries,
    marks_of,
    with_entries,
)

ORDERS = Owner("apps", "orders", "uid-orders")


def ident(entry: Any) -> Any:
    return entry.get("id") if isinstance(entry, dict) else None


def prints(entry: Any) -> str:
    return fingerprint({"id": entry.get("id"), "v": entry.get("v")}) if isinstance(entry, dict) else ""


def annotated(value: Any) -> dict[str, Any]:
    raw = value if isinstance(value, str) else json.dumps(value)
    return {"metadata": {"annotations": {MANAGED_ANNOTATION: raw}}}


def test_an_entry_is_ours_by_id_and_fingerprint() -> None:
    ours, theirs = {"id": "a", "v": 1}, {"id": "a", "v": 2}
    entries = [theirs, "junk", ours, {**ours}]
    assert claim(entries, {"a": prints(ours)}, ident, prints) == {2: "a"}, "the first that matches, only one"
    assert claim(entries, {"a": prints({"id": "a", "v": 3})}, ident, prints) == {}, "changed since: not ours"
    assert claim(entries, {"b": prints(ours)}, ident, prints) == {}, "the id counts too"
    assert fingerprint({"x": 1, "y": [1, "é"]}) == fingerprint({"y": [1, "é"], "x": 1})
    assert len(fingerprint({})) == 32


def test_a_mark_of_ids_only_proves_an_entry_only_when_its_id_is_unique() -> None:
    """Marks written before fingerprints list ids: the next write records fingerprints; until then an id
    borne by several entries proves none of them (none is removed, and a write meets a conflict)."""
    assert claim([{"id": "a"}, {"id": "b"}], {"a": None}, ident, prints) == {0: "a"}
    assert claim([{"id": "a"}, {"id": "a", "v": 2}], {"a": None}, ident, prints) == {}
    marks = marks_of(annotated({"orders/uid-orders": ["a"], "billing/u": ["b"]}), ORDERS)
    assert (marks.mine, marks.theirs) == ({"a": None}, {"b": "billing"})


@pytest.mark.parametrize(
    "raw",
    ["{not json", "[]", '{"orders/uid-orders": "a"}', '{"x": [1]}', '{"x": {"a": 1}}', "[" * 100_000],
)
def test_an_unreadable_mark_is_a_malformed_object(raw: str) -> None:
    with pytest.raises(
        MalformedObjectError, match=f"RA x: its annotation {MANAGED_ANNOTATION} is not readable"
    ):
        managed_entries(annotated(raw), "RA x")
    with pytest.raises(MalformedObjectError) as malformed:
        marks_of(annotated(raw), ORDERS, "RA x")
    assert malformed.value.reason == "MalformedObject"


@pytest.mark.parametrize(
    ("metadata", "problem"),
    [
        ([], "metadata is not an object"),
        ({"annotations": ["a"]}, "metadata.annotations is not a map of strings"),
        ({"annotations": {"a": 1}}, "metadata.annotations is not a map of strings"),
        ({"labels": "x"}, "metadata.labels is not a map of strings"),
        ({"ownerReferences": {}}, "metadata.ownerReferences is not a list of objects"),
        ({"ownerReferences": ["x"]}, "metadata.ownerReferences is not a list of objects"),
    ],
)
def test_metadata_of_the_wrong_type_is_a_malformed_object(metadata: Any, problem: str) -> None:
    with pytest.raises(MalformedObjectError, match=f"^RA x: {problem}; left untouched$"):
        marks_of({"metadata": metadata}, ORDERS, "RA x")


def test_our_mark_is_rewritten_and_the_others_kept_as_written() -> None:
    meta = annotated({"billing/u": ["b"], "orders/uid-orders": ["a"]})["metadata"]
    written = with_entries({**meta, "labels": {"x": "y"}}, ORDERS, {"a": "f1"})
    assert json.loads(written["annotations"][MANAGED_ANNOTATION]) == {
        "billing/u": ["b"],
        "orders/uid-orders": {"a": "f1"},
    }
    assert written["labels"] == {"x": "y"}
    dropped = with_entries(written, ORDERS, {}, drop=["billing/u"])
    assert "annotations" not in dropped, "nobody's left"
    assert managed_entries({"metadata": {}}) == {}
