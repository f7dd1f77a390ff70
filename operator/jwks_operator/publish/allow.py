"""The owners' allow-lists (pure): which JwtSecrets an object's owner lets write into it, or read it.

An object the operator did not create for a JwtSecret (a user's RequestAuthentication, a Secret named
by secretRef, a shared target) is written or read only if its owner lists the JwtSecret in the
ALLOW_ANNOTATION. A Secret's HMAC secret leaves Secrets (into a gateway object that is not a Secret: Space
Cloud's project ConfigMap) only if the Secret's owner also lists the JwtSecret in HMAC_EXPORT_ANNOTATION.

Each takes comma-separated entries: "*" (any JwtSecret of the namespace), a name (whichever JwtSecret bears
it: one deleted and created again under that name, or created later while the name was unused, is let in
too), or `name/uid` (only the JwtSecret of that uid: `kubectl get jwts NAME -o jsonpath='{.metadata.uid}'`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jwks_operator.model.names import GROUP

ALLOW_ANNOTATION = f"{GROUP}/allow-jwtsecrets"  # set by the object's owner
HMAC_EXPORT_ANNOTATION = f"{GROUP}/allow-hmac-export"  # set by a Secret's owner: its HMAC secret may leave it


def allowed(
    existing: Mapping[str, Any], jwtsecret: str, uid: str | None = None, annotation: str = ALLOW_ANNOTATION
) -> bool:
    """Whether the object's owner lets JwtSecret `jwtsecret` (of `uid`, when known) in: the annotation lists
    "*", its name, or `<name>/<uid>` (never matched when the uid is not known)."""
    raw = ((existing.get("metadata") or {}).get("annotations") or {}).get(annotation)
    entries = {n.strip() for n in raw.split(",")} if isinstance(raw, str) else set()
    return "*" in entries or jwtsecret in entries or (uid is not None and f"{jwtsecret}/{uid}" in entries)
