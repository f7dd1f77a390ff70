"""Space Cloud output (pure): our keys as entries of a project's `secrets`, in the ConfigMap that holds it.

Space Cloud (github.com/spacecloud-io/space-cloud, gateway/) keeps each resource in a ConfigMap of
namespace space-cloud named by its resource id lowercased, `_` as `-`; a project's id is
`<clusterId>--<projectId>--project--<projectId>`, its data `data` the ProjectConfig JSON, whose `secrets`
entries are {isPrimary, alg, kid, jwkUrl, aud, iss, secret, publicKey, privateKey} (managers/syncman/
store_kube.go, config/resource.go, config/config.go). An informer applies changes live; Space Cloud's own
writes read the ConfigMap and replace data.data only: annotations survive. Secrets are indexed by kid;
RS256_PUBLIC verifies RS256 with `publicKey` and may not be primary, HS256 uses the bytes of `secret`
(utils/jwt); secretSource "admin" swaps the list for the admin secret (modules/auth/setters.go).

We write one RS256_PUBLIC entry per RSA key (HS256 per HMAC key: only with allowHmac on the output and
the consent of the Secret's owner, HMAC_EXPORT_ANNOTATION on the Secret; refused, the entries this output
wrote before come out), its kid the key's (or
its RFC 7638 thumbprint), into the ConfigMap, which must exist and list the JwtSecret in its
ALLOW_ANNOTATION; the JwtSecret must be in namespace space-cloud. MANAGED_ANNOTATION lists each
JwtSecret's entries by kid and fingerprint (of every field, as written; missing and null fields read as
empty, as Space Cloud rewrites entries from its struct): an entry is ours only while it holds what we wrote.
Any other entry of a kid we write (another JwtSecret's, Space Cloud's own, one the admin added beside ours or
changed by hand, identical or not) is a conflict, since Space Cloud indexes secrets by kid: ours is not
written over it, and our release leaves it as it is. The rest of `data` is kept (parsed, `secrets` edited,
re-serialised). The output's id carries projectId
and clusterId: the same project on two clusters is two outputs.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from jwks_operator.keys.keyset import thumbprint
from jwks_operator.model.errors import SpecError
from jwks_operator.publish.allow import HMAC_EXPORT_ANNOTATION
from jwks_operator.publish.bodies import Owner
from jwks_operator.publish.compat import key_name, space_cloud_note
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
    require_allowed,
    with_entries,
)
from jwks_operator.publish.gateways.pem import algorithm_for, hmac_text, public_pem
from jwks_operator.publish.writes import Body, Mutate

NAMESPACE = "space-cloud"  # where Space Cloud reads its ConfigMaps
DEFAULT_CLUSTER = "default"  # the Helm chart's clusterId
DATA_KEY = "data"
HMAC_REFUSED = ("SecretNotAllowed", "HmacExportNotAllowed")  # the HMAC secret may not go into the ConfigMap
# A Secret entry's fields as Space Cloud serialises them; each reads as its zero value when missing.
FIELDS = ("isPrimary", "alg", "kid", "jwkUrl", "aud", "iss", "secret", "publicKey", "privateKey")
ZERO: Mapping[str, Any] = {
    f: False if f == "isPrimary" else [] if f in ("aud", "iss") else "" for f in FIELDS
}
_CLUSTER_RE = re.compile(r"^[a-z0-9][-a-z0-9.]*$")  # the start of a ConfigMap name, once made compatible
_PROJECT_RE = re.compile(r"^[-a-z0-9.]*[a-z0-9]$")  # its end


@dataclass(frozen=True, slots=True)
class SpaceCloudOutput:
    """spec.outputs[].spaceCloud: the project, its cluster (default "default"), and whether an HMAC secret
    may be written into the project's ConfigMap."""

    project_id: str
    cluster_id: str = DEFAULT_CLUSTER
    allow_hmac: bool = False

    @classmethod
    def parse(cls, raw: Mapping[str, Any], path: str) -> SpaceCloudOutput:
        project = fields.text(raw, "projectId", path, required=True)
        assert project is not None
        cluster = fields.text(raw, "clusterId", path) or DEFAULT_CLUSTER
        output = cls(project, cluster, fields.flag(raw, "allowHmac", path))
        bad = None if _CLUSTER_RE.match(_compatible(cluster)) else "clusterId"
        bad = bad or (None if _PROJECT_RE.match(_compatible(project)) else "projectId")
        if bad is None and len(output.configmap) > 253:
            bad = "clusterId" if len(cluster) > 2 * len(project) else "projectId"
        if bad is not None:
            raise SpecError(f"{path}.{bad}", f"gives no valid ConfigMap name ({output.configmap!r})")
        return output

    @property
    def id(self) -> str:
        return f"spaceCloud/{self.project_id}/{self.cluster_id}"

    @property
    def kind(self) -> str:
        return "ConfigMap"

    @property
    def configmap(self) -> str:
        """The project's ConfigMap name (store_kube.go makeIDConfigMapCompatible of its resource id)."""
        return _compatible(f"{self.cluster_id}--{self.project_id}--project--{self.project_id}")

    def plan(self, ctx: Context) -> Plan:
        ns = ctx.owner.namespace
        if ns != NAMESPACE:
            raise OutputError(
                "WrongNamespace",
                f"Space Cloud reads project ConfigMaps in namespace {NAMESPACE} only, and this JwtSecret "
                f"is in {ns}: create it in {NAMESPACE}",
            )
        ref = _ref(ns, self.configmap)
        try:
            entries, notes = _entries(ctx, self.allow_hmac, ref)
        except OutputError as refused:
            if refused.reason not in HMAC_REFUSED:
                raise
            return _refused(ctx, ref, refused)
        writes = [Write(ref, ProjectWrite(ref, ctx.owner, entries, self.project_id))]
        writes += [Write(r, ProjectWrite(r, ctx.owner)) for r in _refs(ns, ctx.previous) if r != ref]
        return Plan(tuple(writes), (ref.name,), len(entries), notes)

    def release(self, owner: Owner, objects: Sequence[str]) -> tuple[Write, ...]:
        return tuple(Write(ref, ProjectWrite(ref, owner)) for ref in _refs(owner.namespace, objects))


class ProjectWrite:
    """The mutate of one project ConfigMap: our entries set to `entries` (none: released)."""

    def __init__(
        self, ref: ObjectRef, owner: Owner, entries: Sequence[dict[str, Any]] = (), project: str | None = None
    ) -> None:
        self.ref, self.owner, self.entries, self.project = ref, owner, tuple(entries), project

    def __call__(self, existing: Mapping[str, Any] | None) -> Body | None:
        name = self.ref.name
        if existing is None:
            if self.project is None:
                return None  # released: nothing left to take out
            raise OutputError(
                "NotFound",
                f"Space Cloud project {self.project} has no ConfigMap {name} in namespace "
                f"{self.ref.namespace} (Space Cloud creates it with the project; jwks-operator never does)",
            )
        meta = metadata(existing, f"ConfigMap {name}")
        if self.project is not None:
            if (meta.get("labels") or {}).get("kind") != "project":
                raise OutputError(
                    "OutputConflict",
                    f"ConfigMap {name} is not a Space Cloud project (no label kind: project)",
                )
            require_allowed(existing, self.ref, self.owner, "secrets")
        data = existing.get("data") or {}
        if not isinstance(data, Mapping):
            raise MalformedObjectError(f"ConfigMap {name}", "data is not a map of strings")
        config, secrets = _config(data.get(DATA_KEY), name)
        marks = marks_of(existing, self.owner, f"ConfigMap {name}")
        merged = _merge(secrets, marks, self.entries, name)
        kids = {e["kid"]: _prints(e) for e in self.entries}
        if config.get("secretSource") == "admin" and kids:
            raise OutputError(
                "SecretsIgnored",
                f"Space Cloud project {self.project} has secretSource: admin, so it ignores its secrets and "
                'verifies tokens with its admin secret only; nothing was written (set secretSource to "")',
            )
        if merged == secrets and marks.mine == kids:
            return None
        if merged:
            config["secrets"] = merged
        else:
            config.pop("secrets", None)
        data = {**data, DATA_KEY: json.dumps(config, ensure_ascii=False, separators=(",", ":"))}
        return {**existing, "data": data, "metadata": with_entries(meta, self.owner, kids)}


def _refused(ctx: Context, ref: ObjectRef, refused: OutputError) -> Plan:
    """The plan of an output whose HMAC secret may not go into the ConfigMap: the entries it wrote before
    (when the consent was there) come out first, then the refusal is reported."""
    if not ctx.previous:
        raise OutputError(refused.reason, f"{refused.message}; nothing was written")
    held = ", ".join(dict.fromkeys(ctx.previous))
    error = OutputError(
        refused.reason, f"{refused.message}; the entries this JwtSecret had written in {held} were removed"
    )
    writes = [Write(r, ProjectWrite(r, ctx.owner)) for r in _refs(ref.namespace, ctx.previous)]
    return Plan((*writes, Write(ref, _raising(error))), (), 0)


def _raising(error: OutputError) -> Mutate:
    """A write that reports `error` once the writes before it in the plan are done."""

    def mutate(existing: Mapping[str, Any] | None) -> Body | None:
        raise error

    return mutate


def _entries(ctx: Context, allow_hmac: bool, ref: ObjectRef) -> tuple[list[dict[str, Any]], tuple[str, ...]]:
    """The entries Space Cloud can verify, and notes on the keys it cannot."""
    if ctx.spec.symmetric or any(k.get("kty") == "oct" for k in ctx.key_set.keys):
        if not allow_hmac:
            raise OutputError(
                "SecretNotAllowed",
                "the HMAC secret would be stored in the Space Cloud project's ConfigMap, readable by whoever "
                "may read ConfigMaps in its namespace; set allowHmac: true on this output to accept that",
            )
        if not ctx.key_set.exportable:  # the Secret's owner decides whether its secret may leave Secrets
            secret = ctx.spec.secret_ref.name if ctx.spec.secret_ref is not None else "?"
            who = ctx.owner
            raise OutputError(
                "HmacExportNotAllowed",
                f"the HMAC secret of Secret {secret} would be stored in {ref}, and the Secret's owner has "
                f"not allowed it to leave Secrets: add the annotation {HMAC_EXPORT_ANNOTATION}: {who.name} "
                f'(or {who.name}/{who.uid}, or "*") to Secret {secret}',
            )
    entries: dict[str, dict[str, Any]] = {}
    skipped: Counter[str] = Counter()
    for key in ctx.key_set.keys:
        entry, why = _entry(ctx, key)
        if entry is None:
            skipped[why] += 1
        else:
            entries.setdefault(entry["kid"], entry)
    notes = tuple(f"{n} {why}" for why, n in skipped.items())
    if not entries:
        raise OutputError("NoUsableKeys", "no key Space Cloud can verify: " + "; ".join(notes))
    rsa = [k for k in ctx.key_set.keys if k.get("kty") == "RSA" and key_name(k) in entries]
    refused = space_cloud_note(rsa, ctx.spec.algorithms)  # RS256_PUBLIC verifies RS256 only
    return list(entries.values()), (*notes, refused) if refused else notes


def _entry(ctx: Context, key: Mapping[str, Any]) -> tuple[dict[str, Any] | None, str]:
    """A key's entry, or None and why Space Cloud cannot take it."""
    kty = str(key.get("kty"))
    alg = {"RSA": "RS256", "oct": "HS256"}.get(kty)
    what = f"{'HMAC' if kty == 'oct' else kty} key(s) not written: Space Cloud"
    if alg is None:
        return None, f"{what} verifies RSA only"
    if algorithm_for(key, ctx.spec.algorithms, {alg}) is None:
        return None, f"{what} verifies {alg} only"
    material = {"alg": "RS256_PUBLIC", "publicKey": public_pem(key)} if kty == "RSA" else {"alg": alg}
    if kty == "oct":
        secret = hmac_text(key)
        if secret is None:
            return None, f"{what} keeps the secret as text and this one is not UTF-8"
        material["secret"] = secret
    spec = ctx.spec
    kid = key.get("kid") or thumbprint(key)
    return {**ZERO, "kid": kid, "aud": list(spec.audiences), "iss": list(spec.issuers), **material}, ""


def _merge(
    secrets: list[dict[str, Any]], marks: Marks, entries: Sequence[dict[str, Any]], where: str
) -> list[dict[str, Any]]:
    """`secrets` with our entries (those our mark proves) replaced by `entries`, in place, new ones appended;
    the others kept as they are. A wanted kid held by any entry our mark does not prove (another JwtSecret's,
    Space Cloud's own, the admin's, the primary secret, identical or not): OutputConflict."""
    wanted = {e["kid"]: e for e in entries}
    theirs = marks.theirs
    ours = claim(secrets, {k: f for k, f in marks.mine.items() if k not in theirs}, _our_kid, _prints)
    for i, entry in enumerate(secrets):
        kid = _kid(entry)
        if kid in wanted and i not in ours:
            if entry.get("isPrimary"):
                holder = "the primary secret"
            elif kid in theirs:
                holder = f"an entry of JwtSecret {theirs[kid]}"
            else:
                holder = "an entry we did not write (or one of ours changed since)"
            held = f"also held by {holder}" if kid in ours.values() else holder
            raise OutputError("OutputConflict", f"kid {kid} in ConfigMap {where} is {held}; left untouched")
    result: list[dict[str, Any]] = []
    for i, entry in enumerate(secrets):
        kid = ours.get(i)
        if kid is None:
            result.append(entry)
        elif kid in wanted:
            result.append(entry if _same(entry, wanted[kid]) else dict(wanted[kid]))
    result.extend(dict(e) for kid, e in wanted.items() if kid not in ours.values())
    return result


def _kid(entry: Any) -> str | None:
    kid = entry.get("kid") if isinstance(entry, Mapping) else None
    return kid if isinstance(kid, str) else None


def _our_kid(entry: Any) -> str | None:
    """The kid of an entry that may be ours (we never write the primary secret)."""
    return None if isinstance(entry, Mapping) and entry.get("isPrimary") else _kid(entry)


def _prints(entry: Mapping[str, Any]) -> str:
    """An entry's fingerprint: every field Space Cloud keeps, a missing or null one as its zero value."""
    return fingerprint({f: ZERO[f] if entry.get(f) is None else entry[f] for f in FIELDS})


def _same(entry: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    """Whether an entry says what `wanted` says (a missing or null field reads as its zero value)."""
    return all((ZERO[f] if entry.get(f) is None else entry[f]) == wanted[f] for f in FIELDS)


def _config(raw: Any, name: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The project's JSON and its secrets (InvalidProjectConfig, naming the ConfigMap, when unreadable)."""
    try:
        config = json.loads(raw) if isinstance(raw, str) else None
    except (ValueError, RecursionError):
        config = None
    secrets = config.get("secrets", []) if isinstance(config, dict) else None
    secrets = [] if secrets is None and isinstance(config, dict) else secrets
    if not isinstance(secrets, list) or not all(isinstance(e, dict) for e in secrets):
        raise MalformedObjectError(
            f"ConfigMap {name}",
            f"data.{DATA_KEY} is not a Space Cloud project's JSON (an object whose secrets are a list of "
            "objects)",
            "InvalidProjectConfig",
        )
    assert isinstance(config, dict)
    return config, secrets


def _compatible(name: str) -> str:
    """store_kube.go makeIDConfigMapCompatible: lowercased, `_` as `-`."""
    return name.lower().replace("_", "-")


def _ref(namespace: str, name: str) -> ObjectRef:
    return ObjectRef("", "v1", "configmaps", "ConfigMap", namespace, name)


def _refs(namespace: str, names: Sequence[str]) -> list[ObjectRef]:
    return [_ref(namespace, n) for n in dict.fromkeys(names)]
