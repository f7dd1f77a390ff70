"""The owners' allow-list (pure): which JwtSecrets an object's owner lets write into it, or read it.

An object the operator did not create for a JwtSecret (a user's RequestAuthentication, a Secret named
by secretRef, a shared target) is written or read only if its owner lists the JwtSecret's name in the
ALLOW_ANNOTATION ("<jwtsecret>,<jwtsecret>" or "*").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jwks_operator.model.names import GROUP

ALLOW_ANNOTATION = f"{GROUP}/allow-jwtsecrets"  # "<jwtsecret>,<jwtsecret>" or "*", set by the object's owner


def allowed(existing: Mapping[str, Any], jwtsecret: str) -> bool:
    """Whether the object's owner lets JwtSecret `jwtsecret` in (ALLOW_ANNOTATION lists it, or "*")."""
    raw = ((existing.get("metadata") or {}).get("annotations") or {}).get(ALLOW_ANNOTATION)
    names = {n.strip() for n in raw.split(",")} if isinstance(raw, str) else set()
    return "*" in names or jwtsecret in names
