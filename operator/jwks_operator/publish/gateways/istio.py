"""Istio output (pure): jwtRules with the inline JWK Set in a RequestAuthentication (security.istio.io/v1).

One rule per issuer of spec.issuers: `issuer`, `audiences` and `jwks` (the JWK Set as a JSON string;
istiod never fetches it). The object may be shared: a user's own RequestAuthentication, or one several
JwtSecrets contribute to. The MANAGED_ANNOTATION records the issuers of each JwtSecret's rules; the rest
of the object, and the fields a user added to our rules (fromHeaders, outputPayloadToHeader, ...), are
left alone. An object the operator creates has a non-controller ownerReference per contributing
JwtSecret, so the garbage collector deletes it with the last one (a release deletes it only while it
holds no rule of a user's); a user's object gets none, and is written only if its ALLOW_ANNOTATION
lists the JwtSecret.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from jwks_operator.model.errors import SpecError
from jwks_operator.model.names import GROUP, KIND
from jwks_operator.publish.bodies import Owner
from jwks_operator.publish.compat import envoy_fit, envoy_rendered
from jwks_operator.publish.gateways import fields
from jwks_operator.publish.gateways.base import (
    Context,
    ObjectRef,
    OutputError,
    Plan,
    Write,
    marks_of,
    require_allowed,
    with_entries,
)
from jwks_operator.publish.outputs import labels, owner_reference
from jwks_operator.publish.writes import DELETE, Body, Mutate, Verdict

API_GROUP = "security.istio.io"
# The fields of a rule of ours the operator sets (audiences: removed when the spec has none) or removes (the
# CRD allows one of jwks, jwksUri and its alias jwks_uri).
DROPPED = ("issuer", "audiences", "jwks", "jwksUri", "jwks_uri")
_LABEL_KEY_RE = re.compile(
    r"^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)


@dataclass(frozen=True)
class IstioOutput:
    """spec.outputs[].istio: the RequestAuthentication's name and the selector it is created with."""

    name: str
    match_labels: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, raw: Mapping[str, Any], path: str) -> IstioOutput:
        name = fields.name(raw, "name", path, required=True)
        assert name is not None
        selector = fields.obj(raw.get("selector"), f"{path}.selector")
        match_labels = fields.string_map(selector, "matchLabels", f"{path}.selector")
        for key, _ in match_labels:
            if not _LABEL_KEY_RE.match(key):
                raise SpecError(f"{path}.selector.matchLabels.{key}", "must be a label key")
        return cls(name, match_labels)

    @property
    def id(self) -> str:
        return f"istio/{self.name}"

    @property
    def kind(self) -> str:
        return "RequestAuthentication"

    def ref(self, namespace: str, name: str | None = None) -> ObjectRef:
        return ObjectRef(API_GROUP, "v1", "requestauthentications", self.kind, namespace, name or self.name)

    def plan(self, ctx: Context) -> Plan:
        if ctx.spec.symmetric:
            raise OutputError(
                "SecretNotAllowed",
                "HMAC keys are secret: a RequestAuthentication's jwks would expose them",
            )
        if not ctx.spec.issuers:
            raise OutputError("IssuerRequired", "spec.issuers is empty: Istio's jwtRules need an issuer")
        fit = envoy_fit(ctx.key_set.keys)  # Envoy verifies no Ed448 key: those are left out, and named
        if not fit.keys:
            raise OutputError("NoUsableKeys", f"no key Envoy can verify: {fit.note}")
        jwks = envoy_rendered(ctx.key_set).rstrip("\n")  # strict, compact text, as the ConfigMap's
        rules = [_rule(issuer, ctx.spec.audiences, jwks) for issuer in ctx.spec.issuers]
        ref = self.ref(ctx.owner.namespace)
        write = Write(ref, _publish(ref, ctx.owner, rules, dict(self.match_labels)))
        return Plan((write,), (ref.name,), len(fit.keys), (fit.note,) if fit.note else ())

    def release(self, owner: Owner, objects: Sequence[str]) -> tuple[Write, ...]:
        return tuple(Write(self.ref(owner.namespace, name), _release(owner)) for name in objects)


def _rule(issuer: str, audiences: Sequence[str], jwks: str) -> dict[str, Any]:
    rule: dict[str, Any] = {"issuer": issuer}
    if audiences:
        rule["audiences"] = list(audiences)
    rule["jwks"] = jwks
    return rule


def _made_by_us(meta: Mapping[str, Any]) -> bool:
    """Whether the operator created the object: its owners are JwtSecrets only (a user's has none)."""
    refs = meta.get("ownerReferences") or []
    return bool(refs) and all(
        r.get("kind") == KIND and str(r.get("apiVersion", "")).split("/")[0] == GROUP for r in refs
    )


def _rules(existing: Mapping[str, Any]) -> list[Any]:
    rules = (existing.get("spec") or {}).get("jwtRules") or []
    return list(rules) if isinstance(rules, list) else []


def _issuer(rule: Any) -> Any:
    return rule.get("issuer") if isinstance(rule, Mapping) else None


def _publish(
    ref: ObjectRef, owner: Owner, rules: list[dict[str, Any]], match_labels: dict[str, str]
) -> Mutate:
    issuers = [r["issuer"] for r in rules]

    def mutate(existing: Mapping[str, Any] | None) -> Body | None:
        if existing is None:
            return _created(ref, owner, rules, match_labels)
        if not _made_by_us(existing.get("metadata") or {}):
            require_allowed(existing, ref, owner, "jwtRules")
        marks = marks_of(existing, owner)
        mine, theirs = set(marks.mine), marks.theirs
        for issuer in issuers:
            if issuer in theirs:
                raise OutputError(
                    "OutputConflict",
                    f"{ref}: JwtSecret {theirs[issuer]} already manages the jwtRule of issuer {issuer}; "
                    "left untouched",
                )
            if issuer not in mine and any(_issuer(r) == issuer for r in _rules(existing)):
                raise OutputError(
                    "OutputConflict",
                    f"{ref} has its own jwtRule for issuer {issuer} (not made by jwks-operator); "
                    "left untouched",
                )
        body: Body = copy.deepcopy(dict(existing))
        wanted = {r["issuer"]: r for r in rules}
        merged: list[Any] = []
        for rule in _rules(body):
            issuer = _issuer(rule)
            if issuer not in mine or issuer in theirs:
                merged.append(rule)
            elif issuer in wanted:  # ours: our fields set, a user's additions kept, jwksUri dropped
                merged.append({**{k: v for k, v in rule.items() if k not in DROPPED}, **wanted[issuer]})
        merged += [r for i, r in wanted.items() if all(_issuer(m) != i for m in merged)]
        body["spec"] = {**(body.get("spec") or {}), "jwtRules": merged}
        meta = with_entries(body.get("metadata") or {}, owner, issuers)
        if _made_by_us(meta) and all(r.get("uid") != owner.uid for r in meta["ownerReferences"]):
            ours = owner_reference(owner.name, owner.uid, controller=False)
            meta["ownerReferences"] = [*meta["ownerReferences"], ours]
        body["metadata"] = meta
        return None if body == existing else body

    return mutate


def _created(ref: ObjectRef, owner: Owner, rules: list[dict[str, Any]], match_labels: dict[str, str]) -> Body:
    """A new RequestAuthentication: our rules, the selector if given, and this JwtSecret as an owner."""
    meta = {
        "name": ref.name,
        "namespace": ref.namespace,
        "labels": labels(owner.name),
        "ownerReferences": [owner_reference(owner.name, owner.uid, controller=False)],
    }
    spec: dict[str, Any] = {"selector": {"matchLabels": match_labels}} if match_labels else {}
    return {
        "apiVersion": ref.api_version,
        "kind": ref.kind,
        "metadata": with_entries(meta, owner, [r["issuer"] for r in rules]),
        "spec": {**spec, "jwtRules": copy.deepcopy(rules)},
    }


def _release(owner: Owner) -> Mutate:
    def mutate(existing: Mapping[str, Any] | None) -> Body | Verdict | None:
        if existing is None:
            return None
        marks = marks_of(existing, owner)
        body: Body = copy.deepcopy(dict(existing))
        meta = with_entries(body.get("metadata") or {}, owner, [])
        rules = _rules(body)
        kept = [r for r in rules if _issuer(r) not in marks.mine or _issuer(r) in marks.theirs]
        refs = meta.get("ownerReferences") or []
        left = [r for r in refs if r.get("uid") != owner.uid]
        if _made_by_us(meta) and not left and not kept:
            return DELETE
        if len(left) != len(refs):  # the last one gone, the garbage collector leaves it to the user
            meta["ownerReferences"] = left
            if not left:
                del meta["ownerReferences"]
        body["metadata"] = meta
        if len(kept) != len(rules):
            spec = body["spec"]
            if kept:
                spec["jwtRules"] = kept
            else:
                del spec["jwtRules"]
        return None if body == existing else body

    return mutate
