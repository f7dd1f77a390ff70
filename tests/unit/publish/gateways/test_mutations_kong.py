"""Kong output, paths the mutation run found untested (issue #28): a Secret without a type, the reason
of a conflict, and the KongConsumer's credential list kept in order, restored, and emptied."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from jwks_operator.publish.gateways.base import MANAGED_ANNOTATION, OutputError, Write
from jwks_operator.publish.outputs import labels, owner_reference
from tests.unit.publish.gateways.helpers import ORDERS, apply
from tests.unit.publish.gateways.test_kong import API, EC, MINE, R1, consumer, context, name


def writes(kind: str, plan_writes: tuple[Write, ...]) -> list[Write]:
    return [w for w in plan_writes if w.ref.kind == kind]


def secret(type_: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name(R1),
            "namespace": "apps",
            "labels": labels("orders"),
            "ownerReferences": [owner_reference("orders", "uid-orders")],
        },
        "data": {},
    }
    if type_ is not None:
        body["type"] = type_
    return body


def test_an_owned_secret_without_a_type_is_opaque() -> None:
    write = writes("Secret", API.plan(context(R1)).writes)[0]
    body = apply(write, secret(None))
    assert body["type"] == "Opaque"


def test_a_secret_of_another_type_is_a_conflict() -> None:
    write = writes("Secret", API.plan(context(R1)).writes)[0]
    with pytest.raises(OutputError) as refused:
        write.mutate(secret("kubernetes.io/tls"))
    assert refused.value.reason == "OutputConflict"
    assert str(refused.value) == f"Secret {name(R1)} has type kubernetes.io/tls, not Opaque"


def the_consumer_write(*keys: dict[str, Any]) -> Write:
    return writes("KongConsumer", API.plan(context(*keys)).writes)[-1]


def published(*credentials: str) -> dict[str, Any]:
    """The KongConsumer as our write leaves it (our credentials for R1 and EC after `credentials`)."""
    body: dict[str, Any] = apply(the_consumer_write(R1, EC), consumer(*credentials))
    return body


def test_an_up_to_date_consumer_is_left_as_it_is_in_its_order() -> None:
    current = published("their-cred")
    current["credentials"] = [name(R1), "their-cred", name(EC)]  # reordered by hand: nothing to write
    assert the_consumer_write(R1, EC).mutate(copy.deepcopy(current)) is None


def test_a_credential_taken_off_the_list_by_hand_is_put_back() -> None:
    current = published("their-cred")
    current["credentials"] = ["their-cred", name(EC)]
    body = apply(the_consumer_write(R1, EC), current)
    assert body["credentials"] == ["their-cred", name(EC), name(R1)]


def test_releasing_our_only_credentials_empties_the_list() -> None:
    current = published()
    release = writes("KongConsumer", API.release(ORDERS, [name(R1), name(EC), "KongConsumer/api-user"]))[0]
    body = apply(release, current)
    assert body["credentials"] == []


def test_a_credential_both_marks_claim_is_theirs_to_keep() -> None:
    """Our mark and billing's both list our R1 credential (an edit by hand): when we no longer publish it,
    or leave, billing still does, so it stays on the consumer."""
    current = published("their-cred")
    marks = json.loads(current["metadata"]["annotations"][MANAGED_ANNOTATION])
    marks["billing/uid-billing"] = {name(R1): marks[MINE][name(R1)]}
    current["metadata"]["annotations"][MANAGED_ANNOTATION] = json.dumps(marks)
    rotated = apply(the_consumer_write(EC), current)
    assert rotated["credentials"] == ["their-cred", name(R1), name(EC)]
    release = writes("KongConsumer", API.release(ORDERS, [name(R1), name(EC), "KongConsumer/api-user"]))[0]
    assert apply(release, current)["credentials"] == ["their-cred", name(R1)]
