"""The owners' allow-lists: "*", names, and names pinned to a uid."""

from __future__ import annotations

from typing import Any

import pytest

from jwks_operator.publish.allow import ALLOW_ANNOTATION, allowed


def annotated(value: str | None, annotation: str = ALLOW_ANNOTATION) -> dict[str, Any]:
    return {"metadata": {"annotations": {} if value is None else {annotation: value}}}


@pytest.mark.parametrize(
    ("value", "admitted", "refused"),
    [
        ("*", [("a", "u1"), ("b", None)], []),
        ("a, b", [("a", "u1"), ("a", "u2"), ("b", None)], [("c", "u1")]),
        ("a/u1", [("a", "u1")], [("a", "u2"), ("a", None), ("u1", "a")]),
        ("a/u1,b", [("a", "u1"), ("b", "u9")], [("a", "u2")]),
        (" a/u1 , a/u3 ", [("a", "u1"), ("a", "u3")], [("a", "u2")]),
        (None, [], [("a", "u1")]),
        ("", [], [("a", "u1")]),
    ],
)
def test_a_name_admits_its_bearer_and_a_name_with_a_uid_only_that_jwtsecret(
    value: str | None, admitted: list[tuple[str, str | None]], refused: list[tuple[str, str | None]]
) -> None:
    """A JwtSecret deleted and created again under its name (or created while the name was unused) has
    another uid: `name/uid` keeps it out, a bare name lets it in."""
    for name, uid in admitted:
        assert allowed(annotated(value), name, uid), (value, name, uid)
    for name, uid in refused:
        assert not allowed(annotated(value), name, uid), (value, name, uid)
