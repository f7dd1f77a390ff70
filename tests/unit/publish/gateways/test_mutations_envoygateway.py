"""Envoy Gateway output, paths the mutation run found untested (issue #28): a SecurityPolicy without
spec or metadata (or whose jwt its owner removed), and a provider two JwtSecrets' marks both claim."""

from __future__ import annotations

import json
from typing import Any

import pytest

from jwks_operator.publish.gateways.base import MANAGED_ANNOTATION
from tests.unit.publish.gateways.helpers import ORDERS, apply
from tests.unit.publish.gateways.test_envoygateway import (
    BILLING,
    MINE,
    OUTPUT,
    THEIRS,
    USER_PROVIDER,
    context,
    ours,
    policy,
    write,
)


def test_an_allowing_policy_without_spec_gets_our_provider() -> None:
    existing = policy()
    del existing["spec"]
    body = apply(write(context()), existing)
    assert [p["name"] for p in body["spec"]["jwt"]["providers"]] == ["orders"]


def test_a_provider_both_marks_claim_is_theirs_to_keep() -> None:
    """Our mark and billing's both list `shared` (an edit by hand): we no longer publish it, billing
    still does, so it stays."""
    shared = {"name": "shared", "issuer": "https://billing.example.com/"}
    existing = policy(shared, ours())
    existing["metadata"]["annotations"][MANAGED_ANNOTATION] = json.dumps(
        {MINE: ["orders", "shared"], THEIRS: ["shared"]}
    )
    body = apply(write(context()), existing)
    assert [p["name"] for p in body["spec"]["jwt"]["providers"]] == ["shared", "orders"]


def test_releasing_a_policy_without_metadata_is_no_error() -> None:
    bare = {k: v for k, v in policy(USER_PROVIDER).items() if k != "metadata"}
    for owner in (ORDERS, BILLING):
        result = OUTPUT.release(owner, ["orders-jwt"])[0].mutate(bare)
        assert result is None or (
            isinstance(result, dict) and result["spec"]["jwt"]["providers"] == [USER_PROVIDER]
        )


@pytest.mark.parametrize("jwt", [None, {"providers": []}, {"optional": True}])
def test_a_policy_whose_owner_removed_jwt_stays_open_when_we_leave(jwt: dict[str, Any] | None) -> None:
    """Its owner took our providers out on purpose (to open its routes): our release takes out only our
    mark, and leaves no closed provider there (nor an error: no provider of ours is removed)."""
    opened = apply(write(context()), policy())
    del opened["spec"]["jwt"]
    if jwt is not None:
        opened["spec"]["jwt"] = jwt
    released = apply(OUTPUT.release(ORDERS, ["orders-jwt"])[0], opened)
    assert released["spec"] == opened["spec"]
    assert MANAGED_ANNOTATION not in released["metadata"].get("annotations", {})
