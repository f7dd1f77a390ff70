"""Envoy Gateway output (pure): jwt providers in a user's SecurityPolicy (gateway.envoyproxy.io/v1alpha1).

The providers read the JwtSecret's ConfigMap (key `jwks`) through `localJWKS.valueRef` (Envoy Gateway
v1.4+), so rotated keys reach Envoy without touching the SecurityPolicy. One provider per issuer of
spec.issuers (`<provider>`, `<provider>-2`, ...), one without an issuer when the spec has none. The
SecurityPolicy is the user's (its targetRefs choose the routes): never created nor deleted here, and
written only if its ALLOW_ANNOTATION lists the JwtSecret. The MANAGED_ANNOTATION records each
JwtSecret's providers by name and fingerprint (of `name`, `issuer`, `audiences` and `localJWKS` as written):
a provider is ours only while those hold what we wrote, so a provider of our name that we did not write (or
that was changed by hand) is never taken for ours: a conflict for our writes (provider names are unique),
left as it is by our release. Other providers and the fields a user added to ours (claimToHeaders,
extractFrom, ...) are left alone. A release that would leave the policy without any provider (its routes
would then ask for no token at all) leaves one that verifies no token instead: the routes stay closed.
"""

from __future__ import annotations

import base64
import copy
import functools
import hashlib
import itertools
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from jwks_operator.model.errors import SpecError
from jwks_operator.publish.bodies import Owner
from jwks_operator.publish.compat import envoy_fit
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
from jwks_operator.publish.writes import Body, Mutate

# The SecurityPolicy CRD (v1.9.1): jwt.providers has 1 to 16 items, a provider's audiences at most 8, its
# issuer at most 253 characters; Envoy Gateway requires provider names to be Kubernetes qualified names.
MAX_PROVIDERS = 16
MAX_AUDIENCES = 8
MAX_ISSUER = 253
_QUALIFIED_NAME_RE = re.compile(  # Kubernetes' IsQualifiedName: [DNS subdomain prefix/]name of 63 at most
    r"^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
# The fields of a provider of ours the operator sets (issuer, audiences: removed when the spec has none): its
# fingerprint; and those it removes from it besides (remoteJWKS: the CRD allows one of it and localJWKS).
OURS = ("name", "issuer", "audiences", "localJWKS")
DROPPED = (*OURS, "remoteJWKS")


@dataclass(frozen=True, slots=True)
class EnvoyGatewayOutput:
    """spec.outputs[].envoyGateway: the SecurityPolicy's name and our provider's (default the JwtSecret's)."""

    security_policy: str
    provider: str | None = None

    @classmethod
    def parse(cls, raw: Mapping[str, Any], path: str) -> EnvoyGatewayOutput:
        policy = fields.name(raw, "securityPolicy", path, required=True)
        assert policy is not None
        provider = fields.text(raw, "provider", path)
        if provider is not None and not _QUALIFIED_NAME_RE.match(provider):
            raise SpecError(
                f"{path}.provider",
                "must be a Kubernetes qualified name ([prefix/]name; the name: 63 characters at most)",
            )
        return cls(policy, provider)

    @property
    def id(self) -> str:
        return f"envoyGateway/{self.security_policy}"

    @property
    def kind(self) -> str:
        return "SecurityPolicy"

    def ref(self, namespace: str, name: str | None = None) -> ObjectRef:
        name = name or self.security_policy
        return ObjectRef("gateway.envoyproxy.io", "v1alpha1", "securitypolicies", self.kind, namespace, name)

    def plan(self, ctx: Context) -> Plan:
        spec = ctx.spec
        if spec.symmetric:
            raise OutputError(
                "SecretNotAllowed",
                "HMAC keys are secret, and Envoy Gateway's localJWKS reads a ConfigMap only",
            )
        if len(spec.audiences) > MAX_AUDIENCES:
            raise OutputError(
                "InvalidOutput",
                f"spec.audiences has {len(spec.audiences)} items; an Envoy Gateway jwt provider takes "
                f"{MAX_AUDIENCES} at most",
            )
        if any(len(issuer) > MAX_ISSUER for issuer in spec.issuers):
            raise OutputError(
                "InvalidOutput",
                f"spec.issuers: an Envoy Gateway jwt provider's issuer has {MAX_ISSUER} characters at most",
            )
        base = self.provider or ctx.owner.name
        names = [base if i == 0 else f"{base}-{i + 1}" for i in range(max(1, len(spec.issuers)))]
        if len(names) > MAX_PROVIDERS:
            raise OutputError(
                "TooManyProviders",
                f"spec.issuers has {len(names)} issuers; a SecurityPolicy takes "
                f"{MAX_PROVIDERS} jwt providers at most",
            )
        for name in names:
            if not _QUALIFIED_NAME_RE.match(name):
                raise OutputError(
                    "InvalidOutput",
                    f"jwt provider name {name} is not a qualified name (63 characters at most): "
                    "set spec.outputs[].envoyGateway.provider",
                )
        local = {"type": "ValueRef", "valueRef": {"group": "", "kind": "ConfigMap", "name": ctx.configmap}}
        issuers: Sequence[str | None] = spec.issuers or [None]
        providers = [_provider(n, i, spec.audiences, local) for n, i in zip(names, issuers, strict=True)]
        fit = envoy_fit(ctx.key_set.keys)  # the ConfigMap's `jwks` holds no Ed448 key (publish.compat)
        if not fit.keys:
            raise OutputError("NoUsableKeys", f"no key Envoy can verify: {fit.note}")
        notes = [fit.note] if fit.note else []
        if not spec.issuers:
            notes.append("spec.issuers is empty: Envoy Gateway does not check the issuer")
        if spec.target_shared:
            notes.append(
                f"ConfigMap {ctx.configmap} is shared: Envoy Gateway trusts every contributor's keys"
            )
        ref = self.ref(ctx.owner.namespace)
        write = Write(ref, _publish(ref, ctx.owner, providers))
        return Plan((write,), (ref.name,), len(fit.keys), tuple(notes))

    def release(self, owner: Owner, objects: Sequence[str]) -> tuple[Write, ...]:
        refs = [self.ref(owner.namespace, name) for name in objects]
        return tuple(Write(ref, _release(ref, owner)) for ref in refs)


def _provider(
    name: str, issuer: str | None, audiences: Sequence[str], local: Mapping[str, Any]
) -> dict[str, Any]:
    provider: dict[str, Any] = {"name": name}
    if issuer is not None:
        provider["issuer"] = issuer
    if audiences:
        provider["audiences"] = list(audiences)
    provider["localJWKS"] = copy.deepcopy(dict(local))
    return provider


def _providers(body: Mapping[str, Any], ref: ObjectRef) -> list[Any]:
    """The policy's jwt providers (MalformedObjectError when spec, jwt or providers have the wrong type)."""
    return entries_at(body, ref, "spec", "jwt", "providers")


def _name(provider: Any) -> Any:
    return provider.get("name") if isinstance(provider, Mapping) else None


def _prints(provider: Any) -> str:
    """A provider's fingerprint: the fields of OURS it has."""
    return (
        fingerprint({k: provider[k] for k in OURS if k in provider}) if isinstance(provider, Mapping) else ""
    )


def _publish(ref: ObjectRef, owner: Owner, providers: list[dict[str, Any]]) -> Mutate:
    wanted = {p["name"]: p for p in providers}

    def mutate(existing: Mapping[str, Any] | None) -> Body | None:
        if existing is None:
            raise OutputError(
                "NotFound",
                f"{ref} not found: create it with targetRefs; jwks-operator manages its jwt provider "
                + ", ".join(wanted),
            )
        # a provider our release left to keep the routes closed (provably ours: its key is) gives way
        current = [p for p in _providers(existing, ref) if not _closing(p)]
        require_allowed(existing, ref, owner, "jwt providers")
        marks = marks_of(existing, owner, str(ref))
        theirs = marks.theirs
        ours = claim(current, {n: f for n, f in marks.mine.items() if n not in theirs}, _name, _prints)
        for name in wanted:
            if name in theirs:
                raise OutputError(
                    "OutputConflict",
                    f"{ref}: JwtSecret {theirs[name]} already manages jwt provider {name}; left untouched",
                )
            if any(_name(p) == name for i, p in enumerate(current) if i not in ours):
                raise OutputError(
                    "OutputConflict",
                    f"{ref} has a jwt provider {name} that jwks-operator did not write (or its issuer, "
                    "audiences or localJWKS were changed since); left untouched",
                )
        merged: list[Any] = []
        for i, provider in enumerate(current):
            name = ours.get(i)
            if name is None:
                merged.append(provider)
            elif name in wanted:  # ours: our fields set, a user's additions kept, remoteJWKS dropped
                merged.append({**{k: v for k, v in provider.items() if k not in DROPPED}, **wanted[name]})
        merged += [copy.deepcopy(p) for n, p in wanted.items() if n not in ours.values()]
        if len(merged) > MAX_PROVIDERS:
            raise OutputError(
                "TooManyProviders",
                f"{ref} would have {len(merged)} jwt providers with ours; it takes {MAX_PROVIDERS} at most",
            )
        body: Body = copy.deepcopy(dict(existing))
        spec = body["spec"] = body.get("spec") or {}
        spec["jwt"] = {**(spec.get("jwt") or {}), "providers": merged}
        meta = copy.deepcopy(dict(metadata(existing, str(ref))))
        body["metadata"] = with_entries(meta, owner, {n: _prints(p) for n, p in wanted.items()})
        return None if body == existing else body

    return mutate


# P-256: y^2 = x^3 - 3x + B over GF(P); P = 3 mod 4, so a square root is a power.
_P256_P = 2**256 - 2**224 + 2**192 + 2**96 - 1
_P256_B = 0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B
CLOSED_KID = "jwks-operator-verifies-nothing"


@functools.cache
def closed_jwks() -> str:
    """A JWK Set whose one key (P-256, ES256) no one holds the private key of: its point's x is the SHA-256
    of a fixed text (the first counter that gives a point), so its discrete logarithm is unknown, as with
    nothing-up-my-sleeve numbers. Envoy refuses an empty local JWK Set (the listener is rejected and the
    previous one, with the previous keys, kept), so a set that verifies nothing needs a key."""
    for counter in itertools.count():
        digest = hashlib.sha256(f"jwks-operator: no token verifies {counter}".encode()).digest()
        x = int.from_bytes(digest, "big") % _P256_P
        rhs = (pow(x, 3, _P256_P) - 3 * x + _P256_B) % _P256_P
        y = pow(rhs, (_P256_P + 1) // 4, _P256_P)
        if y * y % _P256_P == rhs:
            break
    coordinate = {name: _b64(value.to_bytes(32, "big")) for name, value in (("x", x), ("y", y))}
    key = {"kty": "EC", "crv": "P-256", **coordinate, "kid": CLOSED_KID, "alg": "ES256", "use": "sig"}
    return json.dumps({"keys": [key]}, separators=(",", ":"))


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _release(ref: ObjectRef, owner: Owner) -> Mutate:
    def mutate(existing: Mapping[str, Any] | None) -> Body | None:
        if existing is None:
            return None
        providers = _providers(existing, ref)
        marks = marks_of(existing, owner, str(ref))
        theirs = marks.theirs
        ours = claim(providers, {n: f for n, f in marks.mine.items() if n not in theirs}, _name, _prints)
        body: Body = copy.deepcopy(dict(existing))
        body["metadata"] = with_entries(copy.deepcopy(dict(metadata(existing, str(ref)))), owner, {})
        kept = [p for i, p in enumerate(providers) if i not in ours]
        if len(kept) != len(providers):
            spec = body["spec"]
            if kept:
                spec["jwt"]["providers"] = kept
            elif _jwt_principals(spec):
                raise OutputError(
                    "OutputConflict",
                    f"{ref}: its authorization rules use principal.jwt, and jwks-operator's "
                    "jwt providers are its only ones (Envoy Gateway requires one): remove those rules",
                )
            else:  # the CRD requires a provider: without one the routes would ask for no token at all
                spec["jwt"]["providers"] = [closed_provider(str(_name(providers[min(ours)])))]
        return None if body == existing else body

    return mutate


def closed_provider(name: str) -> dict[str, Any]:
    """The provider our release leaves where ours were a SecurityPolicy's only ones: it verifies no token
    (closed_jwks), so the routes keep refusing requests rather than open. Not marked as ours: the policy's
    owner removes `jwt` to open them on purpose; a later write of ours replaces it (_closing)."""
    return {"name": name, "localJWKS": {"type": "Inline", "inline": closed_jwks()}}


def _closing(provider: Any) -> bool:
    """Whether a provider is one closed_provider() made, exactly."""
    return isinstance(provider, Mapping) and provider == closed_provider(str(provider.get("name")))


def _jwt_principals(spec: Mapping[str, Any]) -> bool:
    """Whether authorization rules match JWT claims (the CRD then requires jwt)."""
    authorization = spec.get("authorization")
    rules = authorization.get("rules") if isinstance(authorization, Mapping) else None
    if not isinstance(rules, list):
        return False
    return any(
        isinstance(r, Mapping) and isinstance(r.get("principal"), Mapping) and "jwt" in r["principal"]
        for r in rules
    )
