"""Istio output (pure): jwtRules with the inline JWK Set in a RequestAuthentication (security.istio.io/v1).

One rule per issuer of spec.issuers: `issuer`, `audiences` and `jwks` (the JWK Set as a JSON string;
istiod never fetches it). The object may be shared: a user's own RequestAuthentication, or one several
JwtSecrets contribute to. The MANAGED_ANNOTATION records each JwtSecret's rules by issuer and fingerprint
(of `issuer`, `audiences` and `jwks` as written): a rule is ours only while those hold what we wrote, so a
user's rule of the same issuer, or one of ours changed by hand, is never taken for ours: our writes and
releases keep it as it is, and writing ours where it is in the way is an OutputConflict. The fields a user
added to our rules (fromHeaders, outputPayloadToHeader, ...) and the rest of the object are left alone.

An object the operator creates records its creator (SHARED_OWNER_ANNOTATION, proven by the creator's
ownerReference) and the creator's `allow` (ALLOW_ANNOTATION): no other JwtSecret adds rules to it unless
listed there, and the creator's write takes out the rules of those it no longer lists. It has a
non-controller ownerReference per contributing JwtSecret, so the garbage collector deletes it with the last
one (a release deletes it only while it holds no rule of a user's; the last one out of an object holding a
user's rules hands it over: our ownerReferences and annotations go). A user's object gets none, and is
written only if its ALLOW_ANNOTATION lists the JwtSecret.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from jwks_operator.model.errors import SpecError
from jwks_operator.model.names import GROUP, KIND, OWNER_LABEL, SHARED_OWNER_ANNOTATION
from jwks_operator.publish.allow import ALLOW_ANNOTATION, allowed
from jwks_operator.publish.bodies import Owner
from jwks_operator.publish.compat import envoy_fit, envoy_rendered
from jwks_operator.publish.gateways import fields
from jwks_operator.publish.gateways.base import (
    Context,
    ObjectRef,
    OutputError,
    Plan,
    Write,
    claim,
    entries_at,
    fingerprint,
    marks_of,
    metadata,
    require_allowed,
    with_entries,
)
from jwks_operator.publish.outputs import labels, owner_reference
from jwks_operator.publish.writes import DELETE, Body, Mutate, Verdict

API_GROUP = "security.istio.io"
OURS = ("issuer", "audiences", "jwks")  # the fields of a rule of ours the operator sets: its fingerprint
# ...and those it removes from it besides (the CRD allows one of jwks, jwksUri and its alias jwks_uri).
DROPPED = (*OURS, "jwksUri", "jwks_uri")
_LABEL_KEY_RE = re.compile(
    r"^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)


@dataclass(frozen=True, slots=True)
class IstioOutput:
    """spec.outputs[].istio: the RequestAuthentication's name, the selector it is created with, and who else
    may add rules to it when this JwtSecret creates it."""

    name: str
    match_labels: tuple[tuple[str, str], ...] = ()
    allow: tuple[str, ...] = ()  # JwtSecret names, or "*"

    @classmethod
    def parse(cls, raw: Mapping[str, Any], path: str) -> IstioOutput:
        name = fields.name(raw, "name", path, required=True)
        assert name is not None
        selector = fields.obj(raw.get("selector"), f"{path}.selector")
        match_labels = fields.string_map(selector, "matchLabels", f"{path}.selector")
        for key, _ in match_labels:
            if not _LABEL_KEY_RE.match(key):
                raise SpecError(f"{path}.selector.matchLabels.{key}", "must be a label key")
        return cls(name, match_labels, fields.jwtsecret_names(raw, "allow", path))

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
        write = Write(ref, _publish(ref, ctx.owner, rules, dict(self.match_labels), self.allow))
        return Plan((write,), (ref.name,), len(fit.keys), (fit.note,) if fit.note else ())

    def release(self, owner: Owner, objects: Sequence[str]) -> tuple[Write, ...]:
        refs = [self.ref(owner.namespace, name) for name in objects]
        return tuple(Write(ref, _release(ref, owner)) for ref in refs)


def _rule(issuer: str, audiences: Sequence[str], jwks: str) -> dict[str, Any]:
    rule: dict[str, Any] = {"issuer": issuer}
    if audiences:
        rule["audiences"] = list(audiences)
    rule["jwks"] = jwks
    return rule


def _prints(rule: Any) -> str:
    """A rule's fingerprint: the fields of OURS it has."""
    return fingerprint({k: rule[k] for k in OURS if k in rule}) if isinstance(rule, Mapping) else ""


def _issuer(rule: Any) -> Any:
    return rule.get("issuer") if isinstance(rule, Mapping) else None


def _rules(existing: Mapping[str, Any], ref: ObjectRef) -> list[Any]:
    """The object's jwtRules (MalformedObjectError when the spec or its jwtRules have the wrong type)."""
    return entries_at(existing, ref, "spec", "jwtRules")


def _made_by_us(meta: Mapping[str, Any]) -> bool:
    """Whether the operator created the object: its owners are JwtSecrets only (a user's has none)."""
    refs = meta.get("ownerReferences") or []
    return bool(refs) and all(
        r.get("kind") == KIND and str(r.get("apiVersion", "")).split("/")[0] == GROUP for r in refs
    )


def _named_creator(meta: Mapping[str, Any]) -> str | None:
    """The JwtSecret the object was created for, as recorded (an object created before the annotation
    existed: its owner label, which joiners never change)."""
    name = (meta.get("annotations") or {}).get(SHARED_OWNER_ANNOTATION) or (meta.get("labels") or {}).get(
        OWNER_LABEL
    )
    return str(name) if name else None


def _creator(meta: Mapping[str, Any]) -> tuple[str, str] | None:
    """(name, uid) of the JwtSecret the object was created for, while it is one of its owners (a JwtSecret
    recreated under its name later is not)."""
    name = _named_creator(meta)
    refs = meta.get("ownerReferences") or []
    uid = next((r.get("uid") for r in refs if r.get("kind") == KIND and r.get("name") == name), None)
    return (str(name), str(uid)) if name and uid else None


def _admitted(meta: Mapping[str, Any], who: str, creator: str | None) -> bool:
    """Whether JwtSecret `who` may have rules in an object the operator created (of metadata `meta`)."""
    return who == creator or allowed({"metadata": meta}, who)


def _not_allowed(ref: ObjectRef, who: str, meta: Mapping[str, Any]) -> str:
    """Why JwtSecret `who` may not add rules to an object the operator created, and what to set."""
    creator = _creator(meta)
    if creator is not None and creator[0] != who:
        return (
            f"{ref} was created by jwks-operator for JwtSecret {creator[0]}, which does not allow JwtSecret "
            f"{who} to add jwtRules to it: {creator[0]}'s spec.outputs[].istio.allow must list {who} "
            f"(kept in the annotation {ALLOW_ANNOTATION}); left untouched"
        )
    if creator is not None:
        whom = f"an earlier JwtSecret {who} (uid {creator[1]}, not this one)"
    else:
        whom = f"JwtSecret {_named_creator(meta) or 'unknown'}, no longer among its owners,"
    return (
        f"{ref} was created by jwks-operator for {whom} and its annotation {ALLOW_ANNOTATION} does not list "
        f'JwtSecret {who}: add {who} to it (or "*"); left untouched'
    )


def _publish(
    ref: ObjectRef,
    owner: Owner,
    rules: list[dict[str, Any]],
    match_labels: dict[str, str],
    allow: Sequence[str],
) -> Mutate:
    wanted = {r["issuer"]: r for r in rules}

    def mutate(existing: Mapping[str, Any] | None) -> Body | None:
        if existing is None:
            return _created(ref, owner, rules, match_labels, allow)
        where = str(ref)
        meta: dict[str, Any] = copy.deepcopy(dict(metadata(existing, where)))
        current = _rules(existing, ref)
        marks = marks_of(existing, owner, where)
        revoked: list[str] = []
        if _made_by_us(meta):
            creator = _creator(meta)
            if creator == (owner.name, owner.uid):  # the creator: its allow is the object's
                annotations = {**(meta.get("annotations") or {}), SHARED_OWNER_ANNOTATION: owner.name}
                annotations.pop(ALLOW_ANNOTATION, None)
                if allow:
                    annotations[ALLOW_ANNOTATION] = ",".join(allow)
                meta["annotations"] = annotations
                revoked = [
                    key for key in marks.others if not _admitted(meta, key.partition("/")[0], owner.name)
                ]
            elif not _admitted(meta, owner.name, None):
                raise OutputError("NotAllowed", _not_allowed(ref, owner.name, meta))
        else:
            require_allowed(existing, ref, owner, "jwtRules")
        if revoked:  # the rules of JwtSecrets the creator no longer allows go, with their marks and owners
            gone = {i for key in revoked for i in claim(current, marks.others[key], _issuer, _prints)}
            current = [r for i, r in enumerate(current) if i not in gone]
            marks = marks.without(revoked)
            meta["ownerReferences"] = [
                r for r in meta["ownerReferences"] if f"{r.get('name')}/{r.get('uid')}" not in revoked
            ]
        theirs = marks.theirs
        ours = claim(current, {i: f for i, f in marks.mine.items() if i not in theirs}, _issuer, _prints)
        for issuer in wanted:
            if issuer in theirs:
                raise OutputError(
                    "OutputConflict",
                    f"{ref}: JwtSecret {theirs[issuer]} already manages the jwtRule of issuer {issuer}; "
                    "left untouched",
                )
            # no rule of ours has this issuer (claim matches by issuer), so any rule that has it is not ours
            if issuer not in ours.values() and any(_issuer(r) == issuer for r in current):
                raise OutputError(
                    "OutputConflict",
                    f"{ref} has a jwtRule for issuer {issuer} that jwks-operator did not write (or its "
                    "issuer, audiences or jwks were changed since); left untouched",
                )
        merged: list[Any] = []
        for i, rule in enumerate(current):
            issuer = ours.get(i)
            if issuer is None:
                merged.append(rule)
            elif issuer in wanted:  # ours: our fields set, a user's additions kept, jwksUri dropped
                merged.append({**{k: v for k, v in rule.items() if k not in DROPPED}, **wanted[issuer]})
        merged += [copy.deepcopy(r) for i, r in wanted.items() if i not in ours.values()]
        body: Body = copy.deepcopy(dict(existing))
        body["spec"] = {**(body.get("spec") or {}), "jwtRules": merged}
        meta = with_entries(meta, owner, {i: _prints(r) for i, r in wanted.items()}, drop=revoked)
        if _made_by_us(meta) and all(r.get("uid") != owner.uid for r in meta["ownerReferences"]):
            ours_ref = owner_reference(owner.name, owner.uid, controller=False)
            meta["ownerReferences"] = [*meta["ownerReferences"], ours_ref]
        body["metadata"] = meta
        return None if body == existing else body

    return mutate


def _created(
    ref: ObjectRef,
    owner: Owner,
    rules: list[dict[str, Any]],
    match_labels: dict[str, str],
    allow: Sequence[str],
) -> Body:
    """A new RequestAuthentication: our rules, the selector if given, this JwtSecret as its creator (and
    an owner), and whom it allows to join."""
    annotations = {SHARED_OWNER_ANNOTATION: owner.name}
    if allow:
        annotations[ALLOW_ANNOTATION] = ",".join(allow)
    meta = {
        "name": ref.name,
        "namespace": ref.namespace,
        "labels": labels(owner.name),
        "annotations": annotations,
        "ownerReferences": [owner_reference(owner.name, owner.uid, controller=False)],
    }
    spec: dict[str, Any] = {"selector": {"matchLabels": match_labels}} if match_labels else {}
    return {
        "apiVersion": ref.api_version,
        "kind": ref.kind,
        "metadata": with_entries(meta, owner, {r["issuer"]: _prints(r) for r in rules}),
        "spec": {**spec, "jwtRules": copy.deepcopy(rules)},
    }


def _release(ref: ObjectRef, owner: Owner) -> Mutate:
    def mutate(existing: Mapping[str, Any] | None) -> Body | Verdict | None:
        if existing is None:
            return None
        where = str(ref)
        meta: dict[str, Any] = copy.deepcopy(dict(metadata(existing, where)))
        rules = _rules(existing, ref)
        marks = marks_of(existing, owner, where)
        theirs = marks.theirs
        ours = claim(rules, {i: f for i, f in marks.mine.items() if i not in theirs}, _issuer, _prints)
        kept = [r for i, r in enumerate(rules) if i not in ours]
        made = _made_by_us(meta)
        meta = with_entries(meta, owner, {})
        refs = meta.get("ownerReferences") or []
        left = [r for r in refs if r.get("uid") != owner.uid]
        if made and not left and not kept:
            return DELETE
        if len(left) != len(refs):
            meta["ownerReferences"] = left
        if made and not left:  # the last one gone: the object is the user's, without what we set on it
            del meta["ownerReferences"]
            annotations = {
                k: v
                for k, v in (meta.get("annotations") or {}).items()
                if k not in (SHARED_OWNER_ANNOTATION, ALLOW_ANNOTATION)
            }
            meta["annotations"] = annotations
            if not annotations:
                del meta["annotations"]
        body: Body = copy.deepcopy(dict(existing))
        body["metadata"] = meta
        if len(kept) != len(rules):
            spec = body["spec"]
            if kept:
                spec["jwtRules"] = kept
            else:
                del spec["jwtRules"]
        return None if body == existing else body

    return mutate
