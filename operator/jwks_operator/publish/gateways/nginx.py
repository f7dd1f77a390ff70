"""NGINX Ingress Controller output (pure): a Secret of type nginx.org/jwk whose data key `jwk` is the JWK Set.

NGINX Plus reads it through a Policy's `jwt.secret` (https://docs.nginx.com/nginx-ingress-controller/
configuration/policy-resource/#jwt-using-local-kubernetes-secret). The Secret is ours alone: created with
the JwtSecret as controller owner, never written over an object that is not ours.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from jwks_operator.publish.bodies import Owner, owned_by, released
from jwks_operator.publish.gateways import fields
from jwks_operator.publish.gateways.base import Context, ObjectRef, OutputError, Plan, Write, owned_metadata
from jwks_operator.publish.writes import Body, Mutate

SECRET_TYPE = "nginx.org/jwk"  # noqa: S105 (a Secret type, not a password)
DATA_KEY = "jwk"


@dataclass(frozen=True, slots=True)
class NginxOutput:
    """spec.outputs[].nginx: the Secret's name (default <jwtsecret>-jwk)."""

    name: str | None = None

    @classmethod
    def parse(cls, raw: Mapping[str, Any], path: str) -> NginxOutput:
        return cls(fields.name(raw, "name", path))

    @property
    def id(self) -> str:
        return f"nginx/{self.name or ''}"

    @property
    def kind(self) -> str:
        return "Secret"

    def ref(self, owner: Owner) -> ObjectRef:
        return ObjectRef("", "v1", "secrets", "Secret", owner.namespace, self.name or f"{owner.name}-jwk")

    def plan(self, ctx: Context) -> Plan:
        ref = self.ref(ctx.owner)
        data = {DATA_KEY: base64.b64encode(ctx.key_set.rendered.encode()).decode()}
        return Plan((Write(ref, _secret(ref, ctx.owner, data)),), (ref.name,), len(ctx.key_set.keys))

    def release(self, owner: Owner, objects: Sequence[str]) -> tuple[Write, ...]:
        refs = [ObjectRef("", "v1", "secrets", "Secret", owner.namespace, name) for name in objects]
        return tuple(Write(ref, released(owner)) for ref in refs)


def _secret(ref: ObjectRef, owner: Owner, data: Mapping[str, str]) -> Mutate:
    def mutate(existing: Mapping[str, Any] | None) -> Body | None:
        if existing is not None:
            if not owned_by(existing, owner):
                raise OutputError(
                    "OutputConflict", f"Secret {ref.name} already exists and is not ours; left untouched"
                )
            if existing.get("type") != SECRET_TYPE:
                raise OutputError(
                    "OutputConflict",
                    f"Secret {ref.name} has type {existing.get('type')}, not {SECRET_TYPE} (a Secret's type "
                    "cannot change: delete it, and the operator recreates it)",
                )
        body: Body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": SECRET_TYPE,
            "metadata": owned_metadata(ref, owner, existing),
            "data": dict(data),
        }
        if existing is not None and existing.get("data") == body["data"] and _same_meta(existing, body):
            return None
        return body

    return mutate


def _same_meta(existing: Mapping[str, Any], body: Body) -> bool:
    meta = existing.get("metadata") or {}
    ours = body["metadata"]
    return bool(
        meta.get("labels") == ours["labels"] and meta.get("ownerReferences") == ours["ownerReferences"]
    )
