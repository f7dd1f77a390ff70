"""JwtSecret status (pure): conditions in metav1.Condition shape and the status document."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from jwks_operator.keys.keyset import KeySet
from jwks_operator.keys.members import printable
from jwks_operator.model.errors import JwksError
from jwks_operator.model.names import RELEASE_FINALIZER

READY = "Ready"
DEGRADED = "Degraded"
INSECURE = "InsecureConfig"
OUTPUT_READY = "OutputReady"
MAX_MESSAGE = 32768  # metav1.Condition's message
MakeCondition = Callable[[str, bool, str, str], dict[str, Any]]


@dataclass(frozen=True, slots=True)
class OutputStatus:
    """The outcome of one output's last write, for status.outputs."""

    id: str
    kind: str
    objects: tuple[str, ...] = ()
    ready: bool = False
    reason: str = "Pending"
    message: str = ""
    notes: tuple[str, ...] = field(default=())

    @classmethod
    def stored(cls, raw: Any) -> OutputStatus | None:
        """An entry of status.outputs as written by OutputStatus.as_status (None: unreadable)."""
        if not isinstance(raw, Mapping) or not isinstance(raw.get("output"), str):
            return None
        objects = tuple(str(o) for o in raw.get("objects") or [] if isinstance(o, str))
        ready = next((c for c in raw.get("conditions") or [] if isinstance(c, Mapping)), {})
        return cls(
            raw["output"],
            str(raw.get("kind", "")),
            objects,
            ready.get("status") == "True",
            str(ready.get("reason", "Pending")),
            str(ready.get("message", "")),
        )


def timestamp(moment: datetime) -> str:
    """RFC 3339 in UTC with second precision, as Kubernetes writes it."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result of one reconciliation, as input to the status."""

    source: str
    generation: int
    target_kind: str | None = None
    target_name: str | None = None
    key_set: KeySet | None = None  # what is published now (last good keys)
    error: JwksError | None = None  # why the latest attempt failed, if it did
    fetched_at: datetime | None = None  # when the published keys were resolved
    refresh: tuple[str, str] | None = None  # (reason, message) of the refresh schedule (URL sources)
    failures: int = 0
    warnings: tuple[tuple[str, str], ...] = ()  # (reason, message) of insecure but working settings
    target_shared: bool = False  # the target is a shared one (spec.target.shared)
    outputs: tuple[OutputStatus, ...] = ()  # the gateway outputs' last outcomes
    write_failed: bool = False  # the error is a failed write of the target (it may not hold key_set)


def condition(
    kind: str,
    status: bool,
    reason: str,
    message: str,
    generation: int,
    previous: Sequence[Mapping[str, Any]],
    now: datetime,
) -> dict[str, Any]:
    """A condition, keeping lastTransitionTime when its status did not change; its message escaped (what a
    spec author wrote, e.g. an issuer, is echoed in messages: no control character reaches the status)."""
    value = "True" if status else "False"
    since = timestamp(now)
    for old in previous:
        if old.get("type") == kind and old.get("status") == value and old.get("lastTransitionTime"):
            since = str(old["lastTransitionTime"])
    return {
        "type": kind,
        "status": value,
        "reason": reason,
        "message": printable(message, MAX_MESSAGE),
        "lastTransitionTime": since,
        "observedGeneration": generation,
    }


def _published_message(outcome: Outcome, key_set: KeySet) -> str:
    count = len(key_set.keys)
    noun = "key" if count == 1 else "keys"
    return f"{count} {noun} published to {outcome.target_kind} {outcome.target_name}"


def _rejected_message(key_set: KeySet) -> str:
    first = key_set.rejected[0]
    label = f"key {first.index}" + (f" (kid {first.kid})" if first.kid else "")
    more = f" and {len(key_set.rejected) - 1} more" if len(key_set.rejected) > 1 else ""
    return f"{len(key_set.rejected)} key(s) rejected: {label}: {first.reason}{more}"


MAX_REJECTED_LISTED = 10


def rejected_entries(key_set: KeySet) -> list[dict[str, Any]]:
    """status.rejectedKeys: the first MAX_REJECTED_LISTED rejections, then one entry (no index, no kid)
    that counts the rest, so a document of junk keys cannot make a status patch too large to write."""
    entries = [r.as_status() for r in key_set.rejected[:MAX_REJECTED_LISTED]]
    rest = len(key_set.rejected) - MAX_REJECTED_LISTED
    if rest > 0:
        entries.append({"reason": f"{rest} more rejected key(s) not listed"})
    return entries


def _outputs_message(outputs: Sequence[OutputStatus], failed: Sequence[OutputStatus]) -> str:
    first = failed[0]
    more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
    return f"{len(failed)} of {len(outputs)} output(s) not written: {first.id}: {first.message}{more}"


def output_entries(
    outputs: Sequence[OutputStatus], previous: Sequence[Mapping[str, Any]], generation: int, now: datetime
) -> list[dict[str, Any]]:
    """status.outputs: each gateway output with the objects it wrote and its OutputReady condition."""
    before = {str(p.get("output")): p.get("conditions") or [] for p in previous if isinstance(p, Mapping)}
    entries = []
    for output in outputs:
        ready = condition(
            OUTPUT_READY,
            output.ready,
            output.reason,
            output.message,
            generation,
            before.get(output.id, []),
            now,
        )
        entries.append(
            {"output": output.id, "kind": output.kind, "objects": list(output.objects), "conditions": [ready]}
        )
    return entries


def conditions(
    outcome: Outcome, previous: Sequence[Mapping[str, Any]], now: datetime
) -> list[dict[str, Any]]:
    """Ready, Degraded and InsecureConfig for an outcome."""

    def make(kind: str, status: bool, reason: str, message: str) -> dict[str, Any]:
        return condition(kind, status, reason, message, outcome.generation, previous, now)

    return [*_health(outcome, make), _insecure(outcome, make)]


def _insecure(outcome: Outcome, make: MakeCondition) -> dict[str, Any]:
    if not outcome.warnings:
        return make(INSECURE, False, "AsExpected", "no insecure settings")
    return make(INSECURE, True, outcome.warnings[0][0], "; ".join(m for _, m in outcome.warnings))


def _health(outcome: Outcome, make: MakeCondition) -> list[dict[str, Any]]:
    keys, error = outcome.key_set, outcome.error
    failed = [o for o in outcome.outputs if not o.ready]
    if error is None:
        assert keys is not None, "an outcome without error has keys"
        ready = make(READY, True, "KeysPublished", _published_message(outcome, keys))
        if failed:
            return [ready, make(DEGRADED, True, "OutputFailed", _outputs_message(outcome.outputs, failed))]
        if keys.rejected:
            return [ready, make(DEGRADED, True, "KeysRejected", _rejected_message(keys))]
        return [ready, make(DEGRADED, False, "AsExpected", "all keys valid")]
    kept = ""
    if keys is not None and outcome.target_name:
        where = f"{outcome.target_kind} {outcome.target_name}"
        kept = f"; the {len(keys.keys)} key(s) last published stay in {where}"
        if outcome.write_failed:
            kept = f"; {where} was not written, so it may not hold the {len(keys.keys)} key(s) last published"
    degraded = make(DEGRADED, True, error.reason, error.message + kept)
    if keys is not None and error.ready_with_old_keys:
        message = f"{_published_message(outcome, keys)}; last update failed: {error.message}"
        return [make(READY, True, "KeysPublished", message), degraded]
    return [make(READY, False, error.reason, error.message + kept), degraded]


def build_status(outcome: Outcome, previous: Mapping[str, Any] | None, now: datetime) -> dict[str, Any]:
    """The whole status document for an outcome; unchanged inputs give an identical document."""
    old = previous or {}
    status: dict[str, Any] = {
        "observedGeneration": outcome.generation,
        "source": outcome.source,
        "conditions": conditions(outcome, old.get("conditions") or [], now),
        "consecutiveFailures": outcome.failures,
    }
    if outcome.key_set is not None:
        status["keyCount"] = len(outcome.key_set.keys)
        status["keys"] = outcome.key_set.summary()
        if outcome.key_set.rejected:
            status["rejectedKeys"] = rejected_entries(outcome.key_set)
    else:
        status["keyCount"] = 0
    if outcome.target_kind and outcome.target_name:
        status["target"] = {"kind": outcome.target_kind, "name": outcome.target_name}
        if outcome.target_shared:
            status["target"]["shared"] = True
    if outcome.outputs:
        status["outputs"] = output_entries(outcome.outputs, old.get("outputs") or [], outcome.generation, now)
    if outcome.fetched_at is not None:
        status["lastFetchTime"] = timestamp(outcome.fetched_at)
    if outcome.refresh is not None:
        status["refresh"] = {"reason": outcome.refresh[0], "message": outcome.refresh[1]}
    if outcome.key_set is not None and outcome.source == old.get("source"):
        for known in ("lastFetchTime", "refresh"):  # after a restart, until this process learns them
            if known not in status and known in old:
                status[known] = old[known]
    if outcome.error is not None:
        status["lastError"] = printable(outcome.error.message, MAX_MESSAGE)
    return status


RELEASE_FAILED = "ReleaseFailed"
REMOVING = "could not remove this output: "  # how an output's message starts when its release failed


def release_failed(
    previous: Mapping[str, Any] | None,
    outputs: Sequence[OutputStatus],
    problem: str,
    generation: int,
    now: datetime,
) -> dict[str, Any]:
    """The status of a JwtSecret whose deletion waits for the release of its gateway outputs, after an
    attempt failed: Degraded (reason ReleaseFailed) says what the deletion waits for and why (the first
    failed output's reason, else `problem`), and status.outputs lists the outputs not yet released. The
    rest stays as it was (the keys stay published until the JwtSecret is gone). Unchanged inputs give an
    identical document (no patch)."""
    old = dict(previous or {})
    failed = [o for o in outputs if not o.ready]
    held = failed or list(outputs)
    names = ", ".join(o.id for o in held) or "its gateway outputs"
    if failed:  # the first output's own reason, rather than the first exception's text
        problem = failed[0].message.removeprefix(REMOVING)
    message = (
        f"deletion waits until this JwtSecret's entries are out of {names} (finalizer "
        f"{RELEASE_FINALIZER}; retried with backoff): {problem}"
    )
    before = old.get("conditions") or []
    degraded = condition(DEGRADED, True, RELEASE_FAILED, message, generation, before, now)
    kept = [c for c in before if c.get("type") != DEGRADED]
    at = next((i for i, c in enumerate(before) if c.get("type") == DEGRADED), len(kept))
    status = {**old, "conditions": [*kept[:at], degraded, *kept[at:]]}
    if outputs:
        status["outputs"] = output_entries(outputs, old.get("outputs") or [], generation, now)
    return status


def merge_patch(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> dict[str, Any] | None:
    """A top-level JSON merge patch from old to new status, or None when nothing changed."""
    old = old or {}
    patch: dict[str, Any] = {k: v for k, v in new.items() if old.get(k) != v}
    patch.update({k: None for k in old if k not in new})
    return patch or None


def new_problems(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(reason, message) of Degraded/InsecureConfig conditions that became True or changed reason."""

    def problems(status: Mapping[str, Any] | None) -> dict[str, tuple[str, str]]:
        return {
            str(c.get("type")): (str(c.get("reason")), str(c.get("message")))
            for c in (status or {}).get("conditions") or []
            if c.get("type") in (DEGRADED, INSECURE) and c.get("status") == "True"
        }

    before, after = problems(old), problems(new)
    return [after[kind] for kind in sorted(after) if before.get(kind, ("",))[0] != after[kind][0]]
