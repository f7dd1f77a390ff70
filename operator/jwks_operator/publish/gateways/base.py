"""What every gateway output shares (pure): the objects it writes, its plan, and our marks on shared objects.

An output is one gateway-native object kind (Istio RequestAuthentication, Space Cloud project ConfigMap,
Envoy Gateway SecurityPolicy, Kong credential Secrets, NGINX JWK Secret). Its module turns the JwtSecret's
spec and keys into a Plan: writes, each a pure `mutate` that writes.write() applies to one object (create,
or read-modify-write guarded by resourceVersion). Objects shared with others (a RequestAuthentication a
user made, a Space Cloud project) carry the MANAGED_ANNOTATION: the entries each JwtSecret wrote, keyed by
its name and uid (a JwtSecret recreated under the same name is another owner), each entry by its id (an
issuer, a kid, a provider or credential name) and the fingerprint of every field we set in it. An entry is
ours only while it holds what we wrote: someone else's entry of the same id is never taken for ours, so our
writes and releases keep it as it is. A shared object the operator did not create is written only if its
owner lists the JwtSecret in the ALLOW_ANNOTATION. An object that cannot be read (MalformedObjectError) is
never written.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
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


class MalformedObjectError(OutputError):
    """An object an output cannot read (a spec replaced by a list, a mark edited by hand): nothing is
    written into it, and a release facing it cannot proceed (the engine bounds how long it tries)."""

    def __init__(self, where: str, problem: str, reason: str = "MalformedObject") -> None:
        super().__init__(reason, f"{where}: {problem}; left untouched")


def entries_at(body: Mapping[str, Any], ref: object, *path: str) -> list[Any]:
    """The list at `path` in an object (e.g. spec, jwtRules), [] where a step is absent; MalformedObjectError
    naming the first step of the wrong type (an object on the way, a list at the end)."""
    node: Any = body
    for depth, step in enumerate(path):
        node = node.get(step)
        if node is None:
            return []
        last = depth == len(path) - 1
        if not isinstance(node, list if last else Mapping):
            where = ".".join(path[: depth + 1])
            raise MalformedObjectError(str(ref), f"{where} is not {'a list' if last else 'an object'}")
    return list(node)


@dataclass(frozen=True, slots=True)
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


@dataclass(frozen=True, slots=True)
class Write:
    """One object to bring to what `mutate` wants (writes.write)."""

    ref: ObjectRef
    mutate: Mutate


@dataclass(frozen=True, slots=True)
class Context:
    """What an output is rendered from: the JwtSecret, its spec and its resolved keys."""

    owner: Owner
    spec: JwtSecretSpec
    key_set: KeySet
    configmap: str  # the name of the JwtSecret's own ConfigMap (spec.target), e.g. for localJWKS
    previous: tuple[str, ...] = ()  # objects this output held our keys in after its last write


@dataclass(frozen=True, slots=True)
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


def fingerprint(fields: Any) -> str:
    """What proves an entry ours: a digest of every field we set in it, as we wrote them."""
    text = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


# A mark: entry id -> the fingerprint of the entry written under it (None: a mark of a version before
# fingerprints, which recorded ids only).
Mark = dict[str, str | None]


def metadata(existing: Mapping[str, Any], where: str) -> Mapping[str, Any]:
    """An object's metadata, its annotations and ownerReferences of the types the API gives them."""
    meta = _present(existing.get("metadata"), {})
    if not isinstance(meta, Mapping):
        raise MalformedObjectError(where, "metadata is not an object")
    annotations = _present(meta.get("annotations"), {})
    if not isinstance(annotations, Mapping) or not all(isinstance(v, str) for v in annotations.values()):
        raise MalformedObjectError(where, "metadata.annotations is not a map of strings")
    labels = _present(meta.get("labels"), {})
    if not isinstance(labels, Mapping) or not all(isinstance(v, str) for v in labels.values()):
        raise MalformedObjectError(where, "metadata.labels is not a map of strings")
    refs = _present(meta.get("ownerReferences"), [])
    if not isinstance(refs, list) or not all(isinstance(r, Mapping) for r in refs):
        raise MalformedObjectError(where, "metadata.ownerReferences is not a list of objects")
    return meta


def _present(value: Any, absent: Any) -> Any:
    """`value`, or `absent` when it is None (a falsy value of the wrong type stays, to be refused)."""
    return absent if value is None else value


def managed_entries(existing: Mapping[str, Any] | None, where: str = "the object") -> dict[str, Any]:
    """The MANAGED_ANNOTATION as written: {mark key: {entry id: fingerprint}} (or, from a version before
    fingerprints, {mark key: [entry id, ...]}). Unreadable: MalformedObjectError, since then nobody's
    entries can be told apart."""
    raw = (metadata(existing or {}, where).get("annotations") or {}).get(MANAGED_ANNOTATION)
    if raw is None:
        return {}
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        value = None
    if isinstance(value, dict) and all(_mark(v) is not None for v in value.values()):
        return value
    raise MalformedObjectError(where, f"its annotation {MANAGED_ANNOTATION} is not readable")


def _mark(value: Any) -> Mark | None:
    """One JwtSecret's mark as written (a list of ids: before fingerprints), or None when unreadable."""
    if isinstance(value, list) and all(isinstance(i, str) for i in value):
        return dict.fromkeys(value)
    if isinstance(value, dict) and all(isinstance(f, str) for f in value.values()):
        return dict(value)
    return None


@dataclass(frozen=True, slots=True)
class Marks:
    """A shared object's marks as one JwtSecret sees them."""

    mine: Mark  # the entries this JwtSecret (its name and uid) wrote
    others: Mapping[str, Mark] = field(default_factory=dict)  # every other mark, by its key
    who: Mapping[str, str] = field(default_factory=dict)  # mark key -> the JwtSecret it names, for messages

    @property
    def theirs(self) -> dict[str, str]:
        """Entry id -> the JwtSecret whose mark lists it (the first, for messages)."""
        result: dict[str, str] = {}
        for key, ids in self.others.items():
            for entry_id in ids:
                result.setdefault(entry_id, self.who[key])
        return result

    def without(self, keys: Sequence[str]) -> Marks:
        """These marks with the others of `keys` left out."""
        return Marks(self.mine, {k: v for k, v in self.others.items() if k not in keys}, self.who)


def marks_of(existing: Mapping[str, Any] | None, owner: Owner, where: str = "the object") -> Marks:
    """Our entries and the others'; a mark of our name but another uid is someone else's."""
    marks = {key: _mark(value) or {} for key, value in managed_entries(existing, where).items()}
    mine = marks.pop(mark_key(owner), {})
    who: dict[str, str] = {}
    for key in marks:
        name, _, uid = key.partition("/")
        who[key] = f"{name} (uid {uid or 'unknown'}, not this one)" if name == owner.name else name
    return Marks(mine, marks, who)


def claim(
    entries: Sequence[Any],
    mark: Mapping[str, str | None],
    ident: Callable[[Any], Any],
    prints: Callable[[Any], str],
) -> dict[int, str]:
    """The entries a mark proves (position -> entry id): for each id it lists, the first entry of that id
    whose fingerprint (`prints`) is the one recorded. A mark from before fingerprints proves the entry of an
    id only when no other entry has that id. An entry changed by hand in a field we set is no longer ours."""
    found: dict[int, str] = {}
    for entry_id, recorded in mark.items():
        bearing = [i for i, e in enumerate(entries) if i not in found and ident(e) == entry_id]
        if recorded is None:
            bearing = bearing if len(bearing) == 1 else []
        else:
            bearing = [i for i in bearing if prints(entries[i]) == recorded]
        if bearing:
            found[bearing[0]] = entry_id
    return found


def with_entries(
    meta: Mapping[str, Any], owner: Owner, entries: Mapping[str, str], *, drop: Sequence[str] = ()
) -> dict[str, Any]:
    """Metadata with our mark set to `entries` (id -> fingerprint; removed when empty) and the marks of
    `drop` removed; the annotation goes when nobody's left. The other marks are kept as written."""
    marks = managed_entries({"metadata": meta})
    for key in (mark_key(owner), *drop):
        marks.pop(key, None)
    if entries:
        marks[mark_key(owner)] = dict(sorted(entries.items()))
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k != MANAGED_ANNOTATION}
    if marks:
        annotations[MANAGED_ANNOTATION] = json.dumps(marks, sort_keys=True, separators=(",", ":"))
    result = {**meta, "annotations": annotations}
    if not annotations:
        result.pop("annotations")
    return result


def require_allowed(existing: Mapping[str, Any], ref: ObjectRef, owner: Owner, what: str) -> None:
    """NotAllowed unless the object's owner lets this JwtSecret manage its `what` (releases never ask)."""
    metadata(existing, str(ref))
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
