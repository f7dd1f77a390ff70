"""What gets published for gateways (pure): jwks.json and policy.json, plus object metadata."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from .keys import ALGS_BY_KTY, EC_ALG_CURVE, KeySet
from .spec import JwtSecretSpec

GROUP = "jwks.dev"
VERSION = "v1alpha1"
KIND = "JwtSecret"
PLURAL = "jwtsecrets"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "jwks-operator"
OWNER_LABEL = "jwks.dev/jwtsecret"
JWKS_KEY = "jwks.json"
POLICY_KEY = "policy.json"


def effective_algorithms(spec: JwtSecretSpec, key_set: KeySet) -> list[str]:
    """The allow-list gateways must enforce: the spec's, else every algorithm the keys can verify."""
    if spec.algorithms:
        return sorted(spec.algorithms)
    algs: set[str] = set()
    for key in key_set.keys:
        if "alg" in key:
            algs.add(str(key["alg"]))
        elif key["kty"] == "EC":
            algs.update(a for a, crv in EC_ALG_CURVE.items() if crv == key.get("crv"))
        else:
            algs.update(ALGS_BY_KTY[str(key["kty"])])
    return sorted(algs)


def render(spec: JwtSecretSpec, key_set: KeySet) -> dict[str, str]:
    """The data of the published ConfigMap/Secret; deterministic so unchanged keys write nothing."""
    policy = {
        "issuers": list(spec.issuers),
        "audiences": list(spec.audiences),
        "algorithms": effective_algorithms(spec, key_set),
        "source": spec.policy_source(),
    }
    return {
        JWKS_KEY: json.dumps(key_set.document(), indent=2, sort_keys=True) + "\n",
        POLICY_KEY: json.dumps(policy, indent=2, sort_keys=True) + "\n",
    }


def digest(data: Mapping[str, str]) -> str:
    """A short content hash of published data (to skip writes that change nothing)."""
    canonical = json.dumps(dict(data), sort_keys=True).encode()
    return hashlib.sha256(canonical).hexdigest()[:16]


def owner_reference(name: str, uid: str) -> dict[str, Any]:
    """The ownerReference that makes the API server delete our output with its JwtSecret."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "name": name,
        "uid": uid,
        "controller": True,
    }


def labels(name: str) -> dict[str, str]:
    """Labels on every object jwks-operator writes (the owner label only where it fits 63 chars)."""
    result = {MANAGED_BY_LABEL: MANAGED_BY}
    if len(name) <= 63:
        result[OWNER_LABEL] = name
    return result
