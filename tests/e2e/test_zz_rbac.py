"""Least privilege, measured: the RBAC in deploy/ grants exactly what the operator requested during
the whole e2e session (runs last; requests told apart by the operator's and Kopf's User-Agents)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e import conftest
from tests.harness.operator import OperatorProcess

ROOT = Path(__file__).resolve().parents[2]
VERB = {"GET": "get", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
# Exercised by the operator, but only on paths the e2e suite does not take (documented why).
NOT_EXERCISED = {
    ("", "secrets", "delete"),  # removing an HMAC Secret output after its target moved
    ("", "secrets", "update"),  # rewriting an HMAC Secret output whose data changed
}


def granted() -> set[tuple[str, str, str]]:
    docs = list(yaml.safe_load_all((ROOT / "deploy" / "rbac.yaml").read_text()))
    role = next(d for d in docs if d["kind"] == "ClusterRole")
    return {
        (g, r, v)
        for rule in role["rules"]
        for g in rule["apiGroups"]
        for r in rule["resources"]
        for v in rule["verbs"]
    }


def used() -> set[tuple[str, str, str]]:
    assert conftest.EMULATED is not None
    result: set[tuple[str, str, str]] = set()
    for request in conftest.EMULATED.call(lambda api: list(api._requests)):
        agent = next((v for k, v in request.headers.items() if k.lower() == "user-agent"), "")
        if not agent.startswith(("kopf/", "jwks-operator/")) or request.resource is None:
            continue
        plural = request.resource.plural
        if not plural:
            continue  # discovery (/api, /apis/...) is allowed to every authenticated user
        method = str(getattr(request.method, "value", request.method)).upper()
        verb = (
            VERB[method]
            if method != "GET"
            else ("watch" if request.params.get("watch") == "true" else "get" if request.name else "list")
        )
        resource = plural + (f"/{request.subresource}" if request.subresource else "")
        result.add((request.resource.group or "", resource, verb))
    return result


def test_rbac_is_exactly_what_the_operator_uses(operator: OperatorProcess) -> None:
    if conftest.EMULATED is None:
        pytest.skip("the request log is only available from the emulator")
    used_now: Any = used()
    assert used_now, "the operator made no requests?"
    assert used_now <= granted(), f"requests the RBAC would forbid: {sorted(used_now - granted())}"
    assert granted() - used_now == NOT_EXERCISED, f"granted but never used: {sorted(granted() - used_now)}"
    assert not any(r == "secrets" and v in ("list", "watch") for _, r, v in granted())
