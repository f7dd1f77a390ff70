"""Istio output, paths the mutation run found untested (issue #28): objects missing members the API
server usually fills (or that a user removed), and a release that leaves another JwtSecret's ownership
behind."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from jwks_operator.model.names import SHARED_OWNER_ANNOTATION
from jwks_operator.publish.gateways.base import MANAGED_ANNOTATION, OutputError
from jwks_operator.publish.writes import DELETE
from tests.unit.publish.gateways.helpers import apply
from tests.unit.publish.gateways.test_istio import (
    BILLING,
    OUTPUT,
    USER_RULE,
    context,
    mark,
    user_object,
    write,
)

ORDERS_MARK, BILLING_MARK = "orders/uid-orders", "billing/uid-billing"


def test_an_object_without_metadata_lets_nobody_in() -> None:
    """No metadata: no allow annotation, so not ours to write (NotAllowed, not an AttributeError)."""
    bare = {k: v for k, v in user_object().items() if k != "metadata"}
    with pytest.raises(OutputError) as refused:
        write(context()).mutate(bare)
    assert refused.value.reason == "NotAllowed"


def test_an_allowing_object_without_spec_gets_our_rules() -> None:
    existing = user_object()
    del existing["spec"]
    body = apply(write(context()), existing)
    assert [r["issuer"] for r in body["spec"]["jwtRules"]] == ["https://idp.example.com/"]


def test_releasing_an_object_without_metadata_is_no_error() -> None:
    bare = {k: v for k, v in user_object({"issuer": "x"}).items() if k != "metadata"}
    result = OUTPUT.release(BILLING, ["api-auth"])[0].mutate(bare)
    assert result is not DELETE
    assert result is None or result["spec"]["jwtRules"] == [{"issuer": "x"}]


def test_an_object_we_made_is_kept_while_another_jwtsecret_owns_it() -> None:
    """Our rule taken out, none left, but billing still owns it (its rule removed by hand): the object
    stays, without our reference, for billing to write again."""
    created = apply(write(context()), None)
    joint = copy.deepcopy(created)
    billing_ref = {**created["metadata"]["ownerReferences"][0], "name": "billing", "uid": "uid-billing"}
    joint["metadata"]["ownerReferences"].append(billing_ref)
    marks: dict[str, Any] = json.loads(joint["metadata"]["annotations"][MANAGED_ANNOTATION])
    marks[BILLING_MARK] = ["https://billing.example.com/"]
    joint["metadata"]["annotations"][MANAGED_ANNOTATION] = json.dumps(marks)
    left = OUTPUT.release(context().owner, ["api-auth"])[0].mutate(joint)
    assert left is not DELETE
    assert isinstance(left, dict)
    assert [r["name"] for r in left["metadata"]["ownerReferences"]] == ["billing"]
    assert "jwtRules" not in left["spec"]


def without_annotations(body: dict[str, Any]) -> dict[str, Any]:
    """An object we made, its annotations all removed by hand (its creator: our label and ownerReference)."""
    stripped = copy.deepcopy(body)
    del stripped["metadata"]["annotations"]
    return stripped


def test_our_object_stripped_of_its_annotations_is_annotated_again_by_its_creator() -> None:
    """Its rules removed too: our rule is written again, with the creator annotation and our mark."""
    created = apply(write(context()), None)
    stripped = without_annotations(created)
    stripped["spec"]["jwtRules"] = [USER_RULE]
    body = apply(write(context()), stripped)
    assert body["spec"]["jwtRules"] == [USER_RULE, created["spec"]["jwtRules"][0]]
    assert body["metadata"]["annotations"][SHARED_OWNER_ANNOTATION] == "orders"
    assert mark(body) == mark(created)
    assert body["metadata"]["annotations"] == created["metadata"]["annotations"]


def test_our_object_stripped_of_its_annotations_is_handed_over_with_its_rule() -> None:
    """Without our mark the rule is not provably ours: the release keeps it, and the object is the user's."""
    created = apply(write(context()), None)
    handed = apply(OUTPUT.release(context().owner, ["api-auth"])[0], without_annotations(created))
    assert handed is not DELETE
    assert handed["spec"] == created["spec"]
    assert "ownerReferences" not in handed["metadata"]
    assert "annotations" not in handed["metadata"]
