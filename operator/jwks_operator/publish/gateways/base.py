"""What every gateway output shares (pure): the objects it writes, its plan, and our marks on shared objects.

An output is one gateway-native object kind (Istio RequestAuthentication, Space Cloud project ConfigMap,
Envoy Gateway SecurityPolicy, Kong credential Secrets, NGINX JWK Secret). Its module turns the JwtSecret's
spec and keys into a Plan: writes, each a pure `mutate` that writes.write() applies to one object (create,
or read-modify-write guarded by resourceVersion). Objects shared with others (a RequestAuthentication a
user made, a Space Cloud project) carry the MANAGED_ANNOTATION: which entries each JwtSecret owns, keyed
by its name and uid (a JwtSecret recreated under the same name is another owner). A shared object the
operator did not create is written only if its owner lists the JwtSecret in the ALLOW_ANNOTATION.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from jwks_operator.keys.keyset import KeySet
from jwks_operator.model.errors import JwksError
from jwks_operator.model.names import GROUP
from jwks_operator.publish.allow import ALLOW_ANNOTATION, allowed
from jwks_operator.publish.bodies import Owner
from jwks_operator.publish.outputs import labels, owner_reference
from jwks_operator.publish.writes import Body, Mutate

if TYPE_CHECKING:
    from jwks_operator.resource.spec import JwtSecretSpec

# On shared objects: {"<jwtsecret>/<uid>": ["<entry id>", ...]}, the entries each JwtSecret owns.
MANAGED_ANNOTATION = f"{GROUP}/managed-entries"


class OutputError(JwksError):
    """An output could not be written (the other outputs and the ConfigMap are unaffected)."""

    reason = "OutputFailed"

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class ObjectRef:
    """One namespaced API object, enough to build its REST path."""

    group: str  # "" for the core API
    version: str
    plural: str
    kind: str
    namespace: str
    name: str

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def __str__(self) -> str:
        return f"{self.kind} {self.name}"


@dataclass(frozen=True)
class Write:
    """One object to bring to what `mutate` wants (writes.write)."""

    ref: ObjectRef
    mutate: Mutate


@dataclass(frozen=True)
class Context:
    """What an output is rendered from: the JwtSecret, its spec and its resolved keys."""

    owner: Owner
    spec: JwtSecretSpec
    key_set: KeySet
    configmap: str  # the name of the JwtSecret's own ConfigMap (spec.target), e.g. for localJWKS
    previous: tuple[str, ...] = ()  # objects this output held our keys in after its last write


@dataclass(frozen=True)
class Plan:
    """An output's writes, in order, and what to report."""

    writes: tuple[Write, ...]
    objects: tuple[str, ...]  # the objects now holding our keys (status; the next plan's `previous`)
    keys: int  # how many of the keys the gateway receives
    notes: tuple[str, ...] = ()  # what the gateway cannot take, said in the output's condition


class Output(Protocol):
    """One entry of spec.outputs (a frozen dataclass per gateway)."""

    @property
    def id(self) -> str:
        """Stable identity across generations, e.g. "istio/api-auth"."""
        ...

    @property
    def kind(self) -> str:
        """The object kind it writes, e.g. "RequestAuthentication"."""
        ...

    def plan(self, ctx: Context) -> Plan:
        """The writes that publish ctx.key_set; raises OutputError when nothing can be written."""
        ...

    def release(self, owner: Owner, objects: Sequence[str]) -> tuple[Write, ...]:
        """The writes that take our keys out of `objects` (output removed, or JwtSecret deleted)."""
        ...


def mark_key(owner: Owner) -> str:
    """Our key in the MANAGED_ANNOTATION: the JwtSecret's name and uid."""
    return f"{owner.name}/{owner.uid}"


def managed_entries(existing: Mapping[str, Any] | None) -> dict[str, list[str]]:
    """Which entries of a shared object each mark key owns (an unreadable mark reads as none)."""
    meta = (existing or {}).get("metadata") or {}
    raw = (meta.get("annotations") or {}).get(MANAGED_ANNOTATION)
    try:
        value = json.loads(raw) if isinstance(raw, str) else {}
    except ValueError:
        return {}
    if not isinstance(value, dict):
        return {}
    return {str(k): [str(i) for i in v] for k, v in value.items() if isinstance(v, list)}


@dataclass(frozen=True)
class Marks:
    """A shared object's marks as one JwtSecret sees them."""

    mine: tuple[str, ...]  # the entries this JwtSecret (its name and uid) marked, sorted
    theirs: Mapping[str, str]  # entry -> the JwtSecret that marked it (its name, for messages)


def marks_of(existing: Mapping[str, Any] | None, owner: Owner) -> Marks:
    """Our entries and the others'; a mark of our name but another uid is someone else's."""
    marks = managed_entries(existing)
    mine = marks.pop(mark_key(owner), [])
    theirs: dict[str, str] = {}
    for key, ids in marks.items():
        name, _, uid = key.partition("/")
        who = f"{name} (uid {uid or 'unknown'}, not this one)" if name == owner.name else name
        theirs.update((i, who) for i in ids if i not in theirs)
    return Marks(tuple(sorted(set(mine))), theirs)


def with_entries(meta: Mapping[str, Any], owner: Owner, ids: Sequence[str]) -> dict[str, Any]:
    """Metadata with our mark set to `ids` (removed when empty; the annotation goes when nobody's left)."""
    marks = managed_entries({"metadata": meta})
    if ids:
        marks[mark_key(owner)] = sorted(set(ids))
    else:
        marks.pop(mark_key(owner), None)
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k != MANAGED_ANNOTATION}
    if marks:
        annotations[MANAGED_ANNOTATION] = json.dumps(marks, sort_keys=True, separators=(",", ":"))
    result = {**meta, "annotations": annotations}
    if not annotations:
        result.pop("annotations")
    return result


def require_allowed(existing: Mapping[str, Any], ref: ObjectRef, owner: Owner, what: str) -> None:
    """NotAllowed unless the object's owner lets this JwtSecret manage its `what` (releases never ask)."""
    if not allowed(existing, owner.name, owner.uid):
        raise OutputError(
            "NotAllowed",
            f"{ref} does not allow JwtSecret {owner.name} to manage its {what}: add the annotation "
            f'{ALLOW_ANNOTATION}: {owner.name} (or "*")',
        )


def owned_metadata(ref: ObjectRef, owner: Owner, existing: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Metadata of an object the JwtSecret owns alone: our labels and its controller ownerReference."""
    meta: dict[str, Any] = dict((existing or {}).get("metadata") or {})
    meta.update(name=ref.name, namespace=ref.namespace)
    meta["labels"] = {**(meta.get("labels") or {}), **labels(owner.name)}
    meta["ownerReferences"] = [owner_reference(owner.name, owner.uid)]
    return meta


def unchanged(existing: Mapping[str, Any], desired: Body) -> bool:
    """Whether writing `desired` over `existing` would change nothing we set."""
    return all(existing.get(k) == v for k, v in desired.items() if k != "metadata") and all(
        (existing.get("metadata") or {}).get(k) == v
        for k, v in desired["metadata"].items()
        if k not in ("resourceVersion",)
    )
