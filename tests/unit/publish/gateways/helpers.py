"""What the gateway output tests share: the JwtSecrets they write for and how a Write is applied."""

from __future__ import annotations

import copy
from typing import Any

from jwks_operator.keys.keyset import KeySet
from jwks_operator.publish.bodies import Owner
from jwks_operator.publish.gateways import Context, Write
from jwks_operator.resource.spec import parse_spec

ORDERS = Owner("apps", "orders", "uid-orders")
OLD_ORDERS = Owner("apps", "orders", "uid-old")  # a JwtSecret orders deleted since, and recreated as ORDERS
ISSUER = "https://idp.example.com/"


def url_context(owner: Owner, key_set: KeySet, **spec: Any) -> Context:
    """A Context for a jwkUrl JwtSecret with one issuer and audience (`spec` None values drop a field)."""
    raw = {"jwkUrl": "https://idp.example.com/jwks", "issuers": [ISSUER], "audiences": ["orders"], **spec}
    parsed = parse_spec({k: v for k, v in raw.items() if v is not None})
    return Context(owner, parsed, key_set, configmap=f"{owner.name}-jwks")


def apply(w: Write, existing: dict[str, Any] | None) -> Any:
    """mutate's answer, checking that it leaves `existing` as read and is idempotent."""
    before = copy.deepcopy(existing)
    result = w.mutate(existing)
    assert existing == before, "mutate changed the object as read"
    if isinstance(result, dict):
        assert w.mutate(result) is None, "mutate is not idempotent"
    return result
