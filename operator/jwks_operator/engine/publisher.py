"""Outputs: write each JwtSecret's keys to its target and keep them there.

A write happens only when the rendered data changed; a target change writes the new output before
the old one (or our part of a shared one) is removed; an output changed by hand is written back with
a Repaired event. Each output kind has a Writer; ConfigMap and Secret share one.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from typing import Literal, Protocol

from jwks_operator.engine.gateway_outputs import GatewayOutputs
from jwks_operator.engine.scheduler import Scheduler
from jwks_operator.engine.sources import Backoff
from jwks_operator.engine.tracked import Target, Tracked
from jwks_operator.keys.keyset import KeySet
from jwks_operator.keys.members import printable
from jwks_operator.kube.adapter import Kube, Owner
from jwks_operator.kube.lanes import Lane, Lanes
from jwks_operator.model.errors import ApiCallError, JwksError
from jwks_operator.model.names import JWKS_KEY, POLICY_KEY, RELEASE_FINALIZER
from jwks_operator.publish.outputs import digest, part_keys, render
from jwks_operator.publish.writes import Known
from jwks_operator.resource.spec import JwtSecretSpec
from jwks_operator.resource.status import merge_patch, release_failed
from jwks_operator.runtime.metrics import Metrics

EventType = Literal["Normal", "Warning"]
WriteResult = Literal["created", "updated", "unchanged", "deleted"]
LeaveKey = tuple[str, str, str]  # (namespace, name, uid) of a deleted JwtSecret leaving shared objects
MAX_EVENT_MESSAGE = 1024


class Writer(Protocol):
    """How one output kind is written and removed (blocking: called from a thread)."""

    def write(
        self, target: Target, owner: Owner, data: Mapping[str, str], *, new: bool, known: Known | None
    ) -> WriteResult:
        """Create or update the output (or our part of a shared one); `new`: nothing published yet;
        `known`: the output as this process last wrote it (the data changed since)."""
        ...

    def remove(self, target: Target, owner: Owner) -> bool:
        """Remove the output (or our part of a shared one) if it is ours; True if anything changed."""
        ...


class DataWriter:
    """ConfigMap and Secret outputs: whole objects we own, or parts of a shared one."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube

    def write(
        self, target: Target, owner: Owner, data: Mapping[str, str], *, new: bool, known: Known | None
    ) -> WriteResult:
        if target.shared:  # the other contributors' parts are read every time
            return self.kube.publish_shared(target.kind, owner, target.name, data)
        return self.kube.publish(target.kind, owner, target.name, data, new=new, known=known)

    def remove(self, target: Target, owner: Owner) -> bool:
        if target.shared:
            return self.kube.publish_shared(target.kind, owner, target.name, None) != "unchanged"
        return self.kube.delete_owned(target.kind, owner, target.name)


class Publisher:
    """Publishes, repairs, moves and withdraws outputs, and records what it did as Events."""

    def __init__(
        self, kube: Kube, lanes: Lanes, metrics: Metrics, scheduler: Scheduler, retry: Backoff
    ) -> None:
        self.kube = kube
        self.lanes = lanes
        self.metrics = metrics
        self.scheduler = scheduler
        self.retry = retry
        self.leaving: dict[LeaveKey, tuple[Tracked, Target | None, int]] = {}  # with its failures so far
        data = DataWriter(kube)
        self.writers: dict[str, Writer] = {"ConfigMap": data, "Secret": data}
        self.gateways = GatewayOutputs(kube, lanes, metrics)

    async def publish(self, tracked: Tracked, spec: JwtSecretSpec, key_set: KeySet) -> Target:
        """Write the keys to the target the spec names (a previous one stays until finish_move)."""
        target = Target.wanted(tracked.name, spec)
        data = render(spec, key_set)
        new_digest = f"{target.kind}/{target.name}/{target.shared}/{digest(data)}"
        if new_digest != tracked.published_digest:
            new = tracked.published_digest is None and tracked.target is None
            # Only a change of what this process wrote to the same target starts from what it wrote; a
            # first write after a start, a repair or a move reads the target first.
            same = tracked.published_digest is not None and tracked.target == target and not tracked.repairing
            if not same:
                tracked.written = Known()
            writer = self.writers[target.kind]
            tracked.writing = data  # the watch may echo this write before the call returns
            try:
                write = functools.partial(writer.write, new=new, known=tracked.written)
                result = await self.lanes.call(Lane.OUTPUT, write, target, tracked.owner, data)
            finally:
                tracked.writing = None
            if result != "unchanged":
                await self._written(tracked, target, result, len(key_set.keys))
            tracked.published_digest, tracked.published_data, tracked.repairing = new_digest, data, False
        return target

    async def finish_move(self, tracked: Tracked, target: Target) -> None:
        """After a target change, remove the previous target (or our part of it): until then it stays
        `tracked.target` (retried after a failure)."""
        await self._remove_previous(tracked, target)
        tracked.target = target

    async def _written(self, tracked: Tracked, target: Target, result: WriteResult, count: int) -> None:
        kind, name = target.kind, target.name
        self.metrics.api_writes.labels(kind, result.removesuffix("d")).inc()
        message = f"{count} key(s) {result} in {kind} {name}"
        reason = "Published"
        if tracked.repairing:
            reason, message = "Repaired", f"{kind} {name} was changed by hand; restored ({message})"
        tracked.log(logging.INFO, message)
        # The first publish shows in status (Ready, KeysPublished); an event for it too would be a
        # third API write per new JwtSecret. Key changes and repairs are events.
        if result == "updated" or tracked.repairing:
            self.event(tracked, "Normal", reason, message)

    async def _remove_previous(self, tracked: Tracked, target: Target) -> None:
        """After a target change, remove the previous output (or our part of it) if we still own it."""
        old = tracked.target
        if old is None or old == target:
            return
        if await self._remove(tracked, old):
            tracked.log(logging.INFO, "removed the previous output %s %s", old.kind, old.name)

    async def _remove(self, tracked: Tracked, target: Target) -> bool:
        """Remove the output (or our part of a shared one) if it is ours; True if anything changed."""
        removed = await self.lanes.call(Lane.OUTPUT, self.writers[target.kind].remove, target, tracked.owner)
        if removed:
            self.metrics.api_writes.labels(target.kind, "delete").inc()
        return removed

    def withdraw(self, tracked: Tracked, target: Target | None) -> None:
        """A deleted JwtSecret takes its part out of a shared target (the last one out deletes it) and its
        keys out of its gateway outputs, retried with backoff until done: gateways trust every key there
        (an output whose object cannot be read is given up after a bound: gateway_outputs.blocked)."""
        key = (tracked.namespace, tracked.name, tracked.uid)
        self.leaving[key] = (tracked, target, 0)
        self.scheduler.schedule(("leave", key), 0.0)

    def pending(self, key: LeaveKey) -> Tracked | None:
        """The deleted JwtSecret whose withdraw is under way, if any."""
        entry = self.leaving.get(key)
        return entry[0] if entry is not None else None

    async def leave(self, key: LeaveKey) -> None:
        """One attempt at a pending withdraw: failed outputs are reported (Events, and while the deletion
        waits for our finalizer, status says what for) and a failure plans the next; once none is left,
        the finalizer goes, then the Events of what was given up."""
        if key not in self.leaving:
            return
        entry = self.leaving[key]
        tracked, target, failures = entry
        notes: list[str] = []  # outputs of kinds the API server does not serve: nothing to take out
        try:
            async with tracked.lock:  # after a pass still under way: what it wrote is released too
                if target is not None:
                    await self._remove(tracked, target)
                try:
                    failed = await self.gateways.release_all(tracked, notes)
                finally:
                    for note in notes:
                        self.event(tracked, "Normal", "KindNotInstalled", note)
                if failed:
                    new, given_up = self.gateways.blocked(tracked, failed)
                    tracked.given_up += given_up
                    for message in new:
                        self.event(tracked, "Warning", "ReleaseBlocked", message)
                    left = [exc for output_id, exc in failed.items() if output_id in tracked.outputs]
                    if left:
                        raise left[0]
                held = tracked.holds_release
                if held:
                    await self.let_go(tracked)
                for message in tracked.given_up:
                    removed = f"; the finalizer {RELEASE_FINALIZER} was removed" if held else ""
                    self.event(tracked, "Warning", "ReleaseAbandoned", message + removed)
                tracked.given_up = []
        except Exception as exc:
            delay = self.retry.delay(failures + 1, getattr(exc, "retry_after", None))
            self.leaving[key] = (tracked, target, failures + 1)
            self.scheduler.schedule(("leave", key), delay)
            why = exc.message if isinstance(exc, JwksError) else type(exc).__name__
            where = target.name if target is not None else "its gateway outputs"
            tracked.log(logging.WARNING, "could not leave %s (retry in %.0fs): %s", where, delay, why)
            await self._report_release(tracked, why)
            return
        if self.leaving.get(key) is entry:  # not a newer request made meanwhile
            del self.leaving[key]

    async def _report_release(self, tracked: Tracked, why: str) -> None:
        """While our finalizer holds a deleting JwtSecret, its status (Degraded, ReleaseFailed) says what the
        deletion waits for (best effort: the next attempt tries again)."""
        if not tracked.holds_release:
            return  # the deletion does not wait for us
        outputs = tuple(tracked.outputs.values())
        new = release_failed(tracked.status, outputs, why, tracked.generation, self.scheduler.clock.now())
        patch = merge_patch(tracked.status, new)
        if patch is None:
            return
        try:
            await self.lanes.call(Lane.STATUS, self.kube.patch_status, tracked.namespace, tracked.name, patch)
        except Exception as exc:
            tracked.log(logging.WARNING, "could not report the release in status: %s", exc)
            return
        self.metrics.api_writes.labels("JwtSecret/status", "patch").inc()
        tracked.status = new  # the Events of a blocked release are ReleaseBlocked, one per output problem

    async def hold(self, tracked: Tracked) -> None:
        """Add our finalizer: the JwtSecret's deletion then waits until its entries in shared gateway
        objects are out, even if no operator runs when it is deleted."""
        finalizers = [*tracked.finalizers, RELEASE_FINALIZER]
        ns, name, version = tracked.namespace, tracked.name, tracked.resource_version
        await self.lanes.call(Lane.OUTPUT, self.kube.set_finalizers, ns, name, finalizers, version)
        tracked.finalizers = tuple(finalizers)
        self.metrics.api_writes.labels("JwtSecret", "patch").inc()

    async def let_go(self, tracked: Tracked) -> None:
        """Remove our finalizer (the entries are out, or there are no outputs any more)."""
        finalizers = [f for f in tracked.finalizers if f != RELEASE_FINALIZER]
        ns, name, version = tracked.namespace, tracked.name, tracked.resource_version
        try:
            await self.lanes.call(Lane.OUTPUT, self.kube.set_finalizers, ns, name, finalizers, version)
        except ApiCallError as exc:
            if exc.status != 404:  # gone: nothing left to hold
                raise
        tracked.finalizers = tuple(finalizers)
        self.metrics.api_writes.labels("JwtSecret", "patch").inc()

    @staticmethod
    def drifted(tracked: Tracked, data: Mapping[str, str], *, deleted: bool) -> bool:
        """Whether a watched output no longer holds what this process last wrote, or is writing, into it."""
        if tracked.published_data is None or tracked.spec is None:
            return False  # nothing published by this process yet: the next reconcile writes it anyway
        if deleted:
            return True
        ours = [wrote for wrote in (tracked.published_data, tracked.writing) if wrote is not None]
        return not any(Publisher._holds(tracked, data, wrote) for wrote in ours)

    @staticmethod
    def _holds(tracked: Tracked, data: Mapping[str, str], wrote: Mapping[str, str]) -> bool:
        """Whether `data` holds `wrote` (for a shared target: our part of it)."""
        wanted = wrote
        if tracked.spec is not None and tracked.spec.target_shared:
            wanted = dict(zip(part_keys(tracked.name), (wrote[JWKS_KEY], wrote[POLICY_KEY]), strict=True))
        return all(data.get(k) == v for k, v in wanted.items())

    def event(self, tracked: Tracked, type_: EventType, reason: str, msg: str) -> None:
        """Queue an Event on the JwtSecret (best effort, after every output and status write queued), its
        message escaped and cut to what an Event keeps."""
        self.lanes.post(self._record, tracked, type_, reason, printable(msg, MAX_EVENT_MESSAGE))

    def _record(self, tracked: Tracked, type_: EventType, reason: str, msg: str) -> None:
        try:
            self.kube.event(tracked.owner, type_, reason, msg)
            self.metrics.api_writes.labels("Event", "create").inc()
        except ApiCallError as exc:
            if exc.status == 429:
                raise  # the lanes hold every call back for its Retry-After, then try it again
            tracked.log(logging.WARNING, "could not record event %s: %s", reason, exc)
        except Exception as exc:
            tracked.log(logging.WARNING, "could not record event %s: %s", reason, exc)
