"""What the engine knows of each JwtSecret (no API calls): its parsed spec, stored status, last output."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, get_args

from jwks_operator.keys.keyset import KeySet
from jwks_operator.kube.adapter import Owner, TargetKind
from jwks_operator.model.errors import AudienceRequiredError, JwksError, SpecError
from jwks_operator.model.freshness import RefreshPolicy
from jwks_operator.model.names import REFRESH_ANNOTATION, RELEASE_FINALIZER
from jwks_operator.publish.gateways import Output, parse_outputs
from jwks_operator.publish.writes import Known
from jwks_operator.resource.spec import JwtSecretSpec, parse_spec, target_name
from jwks_operator.resource.status import OutputStatus

log = logging.getLogger(__name__)

ObjKey = tuple[str, str]  # (namespace, name)


@dataclass(frozen=True, slots=True)
class Target:
    """Where a JwtSecret's keys go: an object of an output kind, alone or shared with others."""

    kind: TargetKind
    name: str
    shared: bool = False

    @classmethod
    def wanted(cls, name: str, spec: JwtSecretSpec) -> Target:
        """The target a spec asks for: HMAC keys go to a Secret, public keys to a ConfigMap."""
        return cls("Secret" if spec.symmetric else "ConfigMap", target_name(name, spec), spec.target_shared)

    @classmethod
    def stored(cls, status: Mapping[str, Any]) -> Target | None:
        """The target a status names (None: nothing published yet, or not an output kind)."""
        raw: Mapping[str, Any] = status.get("target") or {}
        kind: Any = raw.get("kind")
        name = raw.get("name")
        if kind not in get_args(TargetKind) or not name:
            return None
        return cls(kind, str(name), bool(raw.get("shared")))


@dataclass(slots=True)
class Tracked:
    """One JwtSecret as the engine knows it."""

    namespace: str
    name: str
    uid: str
    generation: int
    spec: JwtSecretSpec | None
    spec_error: JwksError | None  # a spec problem: nothing is fetched or published for it
    status: dict[str, Any]
    policy: RefreshPolicy
    refresh_request: str | None = None
    published: KeySet | None = None
    published_digest: str | None = None
    written: Known = field(default_factory=Known)  # the target's metadata as this process last wrote it
    published_data: dict[str, str] | None = None  # what we last wrote (to notice edits by hand)
    writing: dict[str, str] | None = None  # what a write under way is putting there (its echo is ours)
    # Where the keys are: the stored status's target until this process publishes; during a move,
    # the previous target until the new one is written and the previous one removed.
    target: Target | None = None
    reconciled: bool = False  # a pass has started in this process (a resumed one waits for its URL)
    repairing: bool = False
    fetched_at: datetime | None = None
    failures: int = 0
    report_failures: int = 0
    output_failures: int = 0
    finalizers: tuple[str, ...] = ()  # as last seen in a watch event, with its resourceVersion
    resource_version: str = ""
    echo_version: str = ""  # of the object our last status patch left, when only its status changed
    listed_outputs: tuple[Output, ...] = ()  # the gateway outputs spec.outputs lists, parsed
    # Gateway outputs by id: their last outcome (from the stored status until this process writes them)
    # and a hash of what each was last rendered from (unchanged inputs write nothing).
    outputs: dict[str, OutputStatus] = field(default_factory=dict)
    output_stamps: dict[str, str] = field(default_factory=dict)
    release_attempts: dict[str, int] = field(default_factory=dict)  # deleted: failed unreadable releases
    given_up: list[str] = field(default_factory=list)  # outputs a release gave up, for the Event after it
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # shared by its generations: one pass at a time

    @property
    def key(self) -> ObjKey:
        return (self.namespace, self.name)

    @property
    def owner(self) -> Owner:
        return Owner(self.namespace, self.name, self.uid)

    @property
    def source_key(self) -> str | None:
        """The shared source this JwtSecret reads: its URL plus its TLS trust (None: not a URL)."""
        spec = self.spec
        if spec is None or spec.jwk_url is None or self.spec_error is not None:
            return None
        ca = spec.ca_bundle
        return (
            spec.jwk_url if ca is None else f"{spec.jwk_url} ca={self.namespace}/{ca.kind}/{ca.name}/{ca.key}"
        )

    def take_over(self, older: Tracked) -> None:
        """Continue an older generation of this JwtSecret: its lock, and what it published where."""
        self.lock, self.published, self.fetched_at = older.lock, older.published, older.fetched_at
        self.published_digest, self.published_data = older.published_digest, older.published_data
        self.written = older.written
        self.target = older.target or self.target
        self.outputs, self.output_stamps = older.outputs, older.output_stamps

    def stored_keys(self) -> KeySet | None:
        """After a restart, before this process resolved any: the keys the stored status says its target
        holds (their public summary), so a failing first pass reports them rather than none."""
        keys = self.status.get("keys")
        if self.target is None or not isinstance(keys, list) or not keys:
            return None
        return KeySet(tuple(dict(k) for k in keys if isinstance(k, Mapping)))

    @property
    def holds_release(self) -> bool:
        """Whether the JwtSecret carries our finalizer (its deletion waits for our release)."""
        return RELEASE_FINALIZER in self.finalizers

    def seen(self, body: Mapping[str, Any]) -> None:
        """Keep the finalizers and resourceVersion of the latest watch event (metadata-only ones too)."""
        meta = body.get("metadata") or {}
        self.finalizers = tuple(str(f) for f in meta.get("finalizers") or [])
        self.resource_version = str(meta.get("resourceVersion") or "")

    def wrote_status(self, body: Mapping[str, Any]) -> None:
        """Our status patch's answer, the object as the patch left it: when nothing but its status changed
        since the last watch event (uid, generation, refresh request, finalizers, no deletion), it is
        taken as seen and its resourceVersion kept, so that the watch event echoing it is known to be
        ours (`is_echo`); otherwise that event is processed as any other."""
        meta = body.get("metadata") or {}
        unchanged = (
            meta.get("uid") == self.uid
            and int(meta.get("generation") or 0) == self.generation
            and (meta.get("annotations") or {}).get(REFRESH_ANNOTATION) == self.refresh_request
            and not meta.get("deletionTimestamp")
            and tuple(str(f) for f in meta.get("finalizers") or []) == self.finalizers
            and bool(meta.get("resourceVersion"))
        )
        self.echo_version = ""
        if unchanged:
            self.seen(body)
            self.echo_version = self.resource_version

    def is_echo(self, meta: Mapping[str, Any]) -> bool:
        """Whether a watch event's object is the one our last status patch left (seen already)."""
        return bool(self.echo_version) and meta.get("resourceVersion") == self.echo_version

    def resumable(self) -> bool:
        """After a restart: the stored status already describes this generation and is healthy (its
        gateway outputs too: a failing one is retried at once, its retry timer went with the process)."""
        conditions: list[dict[str, Any]] = self.status.get("conditions") or []
        ready = next((c for c in conditions if c.get("type") == "Ready"), {})
        outputs_ready = all(o.ready for o in self.outputs.values())
        current = self.status.get("observedGeneration") == self.generation
        return current and ready.get("status") == "True" and outputs_ready

    def log(self, level: int, msg: str, *args: Any, exc_info: bool = False) -> None:
        """Log with the JwtSecret's namespace/name in the text and as structured fields."""
        extra = {"namespace": self.namespace, "jwtsecret": self.name}
        log.log(level, f"[{self.namespace}/{self.name}] {msg}", *args, extra=extra, exc_info=exc_info)


def track(
    key: ObjKey,
    uid: str,
    generation: int,
    body: Mapping[str, Any],
    request: str | None,
    default: RefreshPolicy,
) -> Tracked:
    """A JwtSecret from its watched body: the spec parsed (or why it cannot be used) and its policy."""
    error: JwksError | None = None
    listed: tuple[Output, ...] = ()
    try:
        raw = body.get("spec")
        spec: JwtSecretSpec | None = parse_spec(raw)
        listed = parse_outputs((raw or {}).get("outputs"))
    except SpecError as exc:
        spec, error = None, exc
    provider = spec.shared_provider() if spec is not None else None
    if spec is not None and provider and not spec.audiences and not spec.allow_missing_audience:
        error = AudienceRequiredError(
            f"{provider} signs the tokens of all its customers with this JWK Set, so without "
            "spec.audiences tokens issued to anyone else's project would be accepted: set spec.audiences "
            "(or spec.allowMissingAudience: true to accept that risk)"
        )
    policy = spec.refresh.policy(default) if spec is not None else default
    status = dict(body.get("status") or {})
    stored = Target.stored(status)
    outputs = {o.id: o for o in map(OutputStatus.stored, status.get("outputs") or []) if o is not None}
    failures = status.get("consecutiveFailures")
    tracked = Tracked(
        key[0],
        key[1],
        uid,
        generation,
        spec,
        error,
        status,
        policy,
        request,
        target=stored,
        listed_outputs=listed,
        outputs=outputs,
        failures=failures if isinstance(failures, int) and failures > 0 else 0,  # backoff goes on
    )
    tracked.seen(body)
    return tracked
