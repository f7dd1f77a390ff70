"""Kong output (pure): one JWT credential Secret per key, kept listed in a KongConsumer if one is named.

Kong Ingress Controller (github.com/Kong/kubernetes-ingress-controller) makes each Secret that a
KongConsumer lists in `credentials` and that is labelled konghq.com/credential: jwt a jwt credential of
that consumer, its data keys the credential's fields: `key`, `algorithm`, and `rsa_public_key` (PEM; for
ES* and EdDSA too) or `secret` for HS* (internal/dataplane/kongstate/kongstate.go, internal/admission/
validation/consumers/credentials). Kong's jwt plugin (github.com/Kong/kong, kong/plugins/jwt) finds the
credential by `key` (we put the kid there: key_claim_name: kid reads it from the token's header) and
rejects a token whose alg is not the credential's one `algorithm` (daos.lua: HS256-512, RS256-512,
ES256-512, PS256-512, EdDSA; ES512, PS* and EdDSA since Kong 3.7).

The Secrets are ours alone (controller ownerReference), named after the consumer and the key (its kid and
thumbprint): a rotation creates new ones and deletes the stale, and a new consumer (a new output id) gets
its own while the old output's are released. With `consumer`, the KongConsumer (which must exist and
list the JwtSecret in its ALLOW_ANNOTATION) lists our current Secrets; its MANAGED_ANNOTATION names the
entries we added (one each: the same name listed by someone else is theirs, and stays), and the entries of
others are kept. The consumer is checked before any Secret is written, so a missing or forbidding consumer
leaves no Secret that status.outputs does not record. Plan objects are the Secret names plus
"KongConsumer/<name>", so a later plan or a release finds the consumer.
"""

from __future__ import annotations

import base64
import copy
import hashlib
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from jwks_operator.keys.keyset import ALGORITHMS, key_algorithms, thumbprint
from jwks_operator.publish.bodies import Owner, owned_by, released
from jwks_operator.publish.gateways import fields
from jwks_operator.publish.gateways.base import (
    Context,
    MalformedObjectError,
    Marks,
    ObjectRef,
    OutputError,
    Plan,
    Write,
    claim,
    fingerprint,
    marks_of,
    metadata,
    owned_metadata,
    require_allowed,
    unchanged,
    with_entries,
)
from jwks_operator.publish.gateways.pem import algorithm_for, hmac_text, public_pem
from jwks_operator.publish.writes import Body, Mutate

CREDENTIAL_LABEL = "konghq.com/credential"
KONG_ALGORITHMS = frozenset(ALGORITHMS)  # kong/plugins/jwt/daos.lua takes every one the operator does
CONSUMER = "KongConsumer/"  # the prefix of the consumer among a plan's objects (a Secret name has no "/")
MAX_NAME = 253


@dataclass(frozen=True, slots=True)
class KongOutput:
    """spec.outputs[].kong: the KongConsumer to list the credentials in (none: the user lists them)."""

    consumer: str | None = None

    @classmethod
    def parse(cls, raw: Mapping[str, Any], path: str) -> KongOutput:
        return cls(fields.name(raw, "consumer", path))

    @property
    def id(self) -> str:
        return f"kong/{self.consumer or ''}"

    @property
    def kind(self) -> str:
        return "Secret"

    def plan(self, ctx: Context) -> Plan:
        owner = ctx.owner
        creds, notes = _credentials(ctx, self.consumer)
        secrets, consumers = _split(ctx.previous)
        stale = [n for n in secrets if n not in creds]
        writes = [
            Write(_secret_ref(owner, n), _secret(_secret_ref(owner, n), owner, d)) for n, d in creds.items()
        ]
        if self.consumer is not None:  # checked first: a Secret written before a failure is unrecorded
            ref = _consumer_ref(owner, self.consumer)
            writes.insert(0, Write(ref, _checked(ref, owner, list(creds))))
            writes.append(Write(ref, _consumer(ref, owner, list(creds), required=True)))
        else:
            notes += (
                "no consumer set: Kong uses these Secrets once a KongConsumer lists them (set consumer to "
                "keep that list current as keys rotate)",
            )
        writes += [
            Write(_consumer_ref(owner, c), _consumer(_consumer_ref(owner, c), owner, []))
            for c in consumers
            if c != self.consumer
        ]
        writes += [Write(_secret_ref(owner, n), released(owner)) for n in stale]
        objects = (*creds, *([CONSUMER + self.consumer] if self.consumer is not None else []))
        return Plan(tuple(writes), objects, len(creds), notes)

    def release(self, owner: Owner, objects: Sequence[str]) -> tuple[Write, ...]:
        secrets, consumers = _split(objects)
        writes = [
            Write(_consumer_ref(owner, c), _consumer(_consumer_ref(owner, c), owner, [])) for c in consumers
        ]
        return (*writes, *(Write(_secret_ref(owner, n), released(owner)) for n in secrets))


def secret_name(owner: str, consumer: str | None, key: Mapping[str, Any]) -> str:
    """`<jwtsecret>-kong-<10 hex>`: a hash of the consumer, the key's kid and its thumbprint."""
    digest = hashlib.sha256(f"{consumer or ''}\n{key.get('kid')}\n{thumbprint(key)}".encode()).hexdigest()[
        :10
    ]
    return f"{owner[: MAX_NAME - 16].rstrip('-.')}-kong-{digest}"


def _credentials(ctx: Context, consumer: str | None) -> tuple[dict[str, dict[str, str]], tuple[str, ...]]:
    """Each key's Secret name and data, and notes on the keys Kong cannot take."""
    allowed = set(ctx.spec.algorithms)
    creds: dict[str, dict[str, str]] = {}
    skipped: Counter[str] = Counter()
    notes: list[str] = []
    for key in ctx.key_set.keys:
        kid, kty = key.get("kid"), str(key.get("kty"))
        alg = algorithm_for(key, allowed, KONG_ALGORITHMS)
        if not kid:
            skipped["key(s) without kid not written: Kong finds a credential by the token's kid"] += 1
            continue
        if alg is None:
            skipped[f"{kty} key(s) not written: no algorithm both Kong and spec.algorithms allow"] += 1
            continue
        data = {"key": str(kid), "algorithm": alg}
        if kty == "oct":
            secret = hmac_text(key)
            if secret is None:
                skipped["HMAC key(s) not written: Kong keeps the secret as text and it is not UTF-8"] += 1
                continue
            data["secret"] = secret
        else:
            data["rsa_public_key"] = public_pem(key)
        unused = sorted(a for a in key_algorithms(key) & allowed if a != alg)
        if unused:
            notes.append(f"key {kid}: Kong verifies it with {alg} only (one algorithm per credential)")
        creds[secret_name(ctx.owner.name, consumer, key)] = data
    notes += [f"{n} {why}" for why, n in skipped.items()]
    if not creds:
        raise OutputError("NoUsableKeys", "no key Kong can verify: " + "; ".join(notes))
    return creds, tuple(notes)


def _secret(ref: ObjectRef, owner: Owner, data: Mapping[str, str]) -> Mutate:
    encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}

    def mutate(existing: Mapping[str, Any] | None) -> Body | None:
        if existing is not None and not owned_by(existing, owner):
            raise OutputError(
                "OutputConflict", f"Secret {ref.name} already exists and is not ours; left untouched"
            )
        if existing is not None and existing.get("type", "Opaque") != "Opaque":
            raise OutputError(
                "OutputConflict", f"Secret {ref.name} has type {existing.get('type')}, not Opaque"
            )
        meta = owned_metadata(ref, owner, existing)
        meta["labels"][CREDENTIAL_LABEL] = "jwt"
        body: Body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "Opaque",
            "metadata": meta,
            "data": dict(encoded),
        }
        return None if existing is not None and unchanged(existing, body) else body

    return mutate


def _consumer(ref: ObjectRef, owner: Owner, wanted: Sequence[str], *, required: bool = False) -> Mutate:
    """The KongConsumer's credentials: ours (those our mark proves) set to `wanted`, the others' kept."""

    def mutate(existing: Mapping[str, Any] | None) -> Body | None:
        if existing is None and not required:
            return None
        current, marks = _consumer_credentials(ref, owner, existing, wanted if required else None)
        assert existing is not None
        theirs = marks.theirs
        ours = claim(current, {c: f for c, f in marks.mine.items() if c not in theirs}, _name, fingerprint)
        kept = [c for i, c in enumerate(current) if i not in ours or c in wanted]
        added = [c for c in wanted if c not in kept]  # one listed by someone else already is theirs
        kept += added
        ids = {c: fingerprint(c) for c in wanted if c in added or c in ours.values()}
        if kept == current and marks.mine == ids:
            return None
        meta = with_entries(copy.deepcopy(dict(metadata(existing, str(ref)))), owner, ids)
        body: Body = {**existing, "metadata": meta}
        if kept or "credentials" in existing:
            body["credentials"] = kept
        return body

    return mutate


def _name(credential: Any) -> Any:
    return credential


def _checked(ref: ObjectRef, owner: Owner, wanted: Sequence[str]) -> Mutate:
    """Writes nothing: raises unless the KongConsumer exists, is readable, lets us in and takes `wanted`."""

    def mutate(existing: Mapping[str, Any] | None) -> None:
        _consumer_credentials(ref, owner, existing, wanted)

    return mutate


def _consumer_credentials(
    ref: ObjectRef, owner: Owner, existing: Mapping[str, Any] | None, wanted: Sequence[str] | None
) -> tuple[list[str], Marks]:
    """The KongConsumer's credentials and marks; publishing `wanted` (None: releasing), it must allow this
    JwtSecret, and another may not have marked those credentials."""
    if existing is None:
        raise OutputError(
            "NotFound",
            f"KongConsumer {ref.name} not found in namespace {ref.namespace} (jwks-operator adds "
            "credentials to it, never creates it; is the KongConsumer CRD installed?)",
        )
    current = existing.get("credentials") or []
    if not isinstance(current, list) or not all(isinstance(c, str) for c in current):
        raise MalformedObjectError(
            f"KongConsumer {ref.name}", "credentials is not a list of names", "InvalidKongConsumer"
        )
    marks = marks_of(existing, owner, f"KongConsumer {ref.name}")
    if wanted is not None:
        require_allowed(existing, ref, owner, "credentials")
        theirs = marks.theirs
        for name in wanted:
            if name in theirs:
                raise OutputError(
                    "OutputConflict",
                    f"KongConsumer {ref.name}: JwtSecret {theirs[name]} already manages credential "
                    f"{name}; left untouched",
                )
    return current, marks


def _split(objects: Sequence[str]) -> tuple[list[str], list[str]]:
    """A plan's objects as (Secret names, KongConsumer names)."""
    secrets = [n for n in dict.fromkeys(objects) if not n.startswith(CONSUMER)]
    return secrets, [n.removeprefix(CONSUMER) for n in dict.fromkeys(objects) if n.startswith(CONSUMER)]


def _secret_ref(owner: Owner, name: str) -> ObjectRef:
    return ObjectRef("", "v1", "secrets", "Secret", owner.namespace, name)


def _consumer_ref(owner: Owner, name: str) -> ObjectRef:
    return ObjectRef("configuration.konghq.com", "v1", "kongconsumers", "KongConsumer", owner.namespace, name)
