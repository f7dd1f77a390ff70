"""The shared-target merge, publish.bodies.shared, called directly with objects as read (issue #28,
mutation testing): what it creates, when it writes nothing, and objects missing members the API server
would normally fill."""

from __future__ import annotations

import json
from typing import Any

import pytest

from jwks_operator.model.errors import OutputTooLargeError, TargetConflictError
from jwks_operator.model.names import (
    JWKS_KEY,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    OWNER_LABEL,
    POLICY_KEY,
    SHARED_ANNOTATION,
    SHARED_OWNER_ANNOTATION,
    TARGET_ALLOW_PART,
)
from jwks_operator.publish.allow import ALLOW_ANNOTATION
from jwks_operator.publish.bodies import MAX_DATA_BYTES, Owner, shared
from jwks_operator.publish.outputs import aggregate, owner_reference
from jwks_operator.publish.writes import DELETE

A = Owner("ns", "a", "uid-a")
B = Owner("ns", "b", "uid-b")


def part(kid: str, allow: str | None = None, size: int = 0) -> dict[str, str]:
    keys = {"keys": [{"kty": "oct", "kid": kid, "k": kid + "x" * size}]}
    return {JWKS_KEY: json.dumps(keys), POLICY_KEY: "{}"} | ({TARGET_ALLOW_PART: allow} if allow else {})


def target(
    data: dict[str, str] | None, refs: list[dict[str, Any]] | None, **annotations: str
) -> dict[str, Any]:
    """A shared ConfigMap as read, created by `a` (data None: no data member; refs None: none)."""
    meta: dict[str, Any] = {
        "name": "all",
        "namespace": "ns",
        "labels": {MANAGED_BY_LABEL: MANAGED_BY, OWNER_LABEL: "a"},
        "annotations": {SHARED_ANNOTATION: "true", SHARED_OWNER_ANNOTATION: "a", **annotations},
    }
    if refs is not None:
        meta["ownerReferences"] = refs
    body: dict[str, Any] = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta}
    if data is not None:
        body["data"] = data
    return body


def ref(owner: Owner, kind: str = "JwtSecret") -> dict[str, Any]:
    return {**owner_reference(owner.name, owner.uid, controller=False), "kind": kind}


def written(result: Any) -> dict[str, Any]:
    assert isinstance(result, dict), result
    return result


def test_a_created_target_has_no_controller_and_no_allow_list_unless_given() -> None:
    body = written(shared("ConfigMap", A, "all", part("k1"))(None))
    assert body["metadata"]["ownerReferences"] == [owner_reference("a", "uid-a", controller=False)]
    assert body["metadata"]["annotations"] == {SHARED_ANNOTATION: "true", SHARED_OWNER_ANNOTATION: "a"}
    allowing = written(shared("ConfigMap", A, "all", part("k1", allow="b"))(None))
    assert allowing["metadata"]["annotations"][ALLOW_ANNOTATION] == "b"


def test_rewriting_what_is_there_writes_nothing() -> None:
    """An up-to-date shared target (annotations, references and data as they would be written) is left
    alone: no write, no new resourceVersion, no watch event for every contributor."""
    body = written(shared("ConfigMap", A, "all", part("k1", allow="b"))(None))
    assert shared("ConfigMap", A, "all", part("k1", allow="b"))(body) is None
    joined = written(shared("ConfigMap", B, "all", part("k2"))(body))
    assert shared("ConfigMap", B, "all", part("k2"))(joined) is None
    # a's reference moves after b's on a's next write (taken out, put back last); from then on, nothing
    moved = written(shared("ConfigMap", A, "all", part("k1", allow="b"))(joined))
    assert [r["name"] for r in moved["metadata"]["ownerReferences"]] == ["b", "a"]
    assert shared("ConfigMap", A, "all", part("k1", allow="b"))(moved) is None


def test_a_target_without_data_or_references_is_merged_into() -> None:
    """Members the API server omits when empty: no data, no ownerReferences."""
    body = written(shared("ConfigMap", A, "all", part("k1"))(target(None, None)))
    assert body["metadata"]["ownerReferences"] == [ref(A)]
    assert json.loads(body["data"][JWKS_KEY])["keys"][0]["kid"] == "k1"


def test_an_object_without_metadata_is_not_ours() -> None:
    with pytest.raises(TargetConflictError, match="is not a shared jwks-operator target"):
        shared("ConfigMap", A, "all", part("k1"))({"apiVersion": "v1", "kind": "ConfigMap"})


def test_the_creator_is_named_by_its_annotation_before_any_label() -> None:
    """The owner label can name another JwtSecret (a label is anyone's to edit): the annotation decides."""
    existing = target(aggregate({}, "a", part("k1")), [ref(A)])
    existing["metadata"]["labels"][OWNER_LABEL] = "someone-else"
    body = written(shared("ConfigMap", A, "all", part("k1", allow="b"))(existing))
    assert body["metadata"]["annotations"][ALLOW_ANNOTATION] == "b"


def test_parts_of_owners_that_are_not_jwtsecrets_are_dropped() -> None:
    """A reference of another kind that happens to bear an allowed name brings no part."""
    data = aggregate(aggregate({}, "a", part("k1")), "b", part("k2"))
    existing = target(data, [ref(A), ref(B, kind="ConfigMap")], **{ALLOW_ANNOTATION: "b"})
    body = written(shared("ConfigMap", A, "all", part("k1", allow="b"))(existing))
    assert [k["kid"] for k in json.loads(body["data"][JWKS_KEY])["keys"]] == ["k1"]
    assert "b.jwks.json" not in body["data"]


def test_a_merged_target_over_the_size_limit_is_not_written() -> None:
    big = MAX_DATA_BYTES // 2
    data = aggregate({}, "a", part("k1", size=big))
    existing = target(data, [ref(A)], **{ALLOW_ANNOTATION: "b"})
    with pytest.raises(OutputTooLargeError, match=r"^ConfigMap all would hold \d+ bytes of data, over the"):
        shared("ConfigMap", B, "all", part("k2", size=big))(existing)


def test_the_last_contributor_out_deletes_and_an_absent_one_writes_nothing() -> None:
    existing = target(aggregate({}, "a", part("k1")), [ref(A)])
    assert shared("ConfigMap", A, "all", None)(existing) is DELETE
    assert shared("ConfigMap", A, "all", None)(None) is None
