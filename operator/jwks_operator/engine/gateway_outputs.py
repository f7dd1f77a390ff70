"""Gateway-native outputs (spec.outputs): write each one's plan, release those the spec dropped, report each.

Each output is independent: one failing (its object missing, someone else's entry in the way, the
gateway's CRD not installed) leaves the others and the JwtSecret's ConfigMap served, and shows in its
own OutputReady condition. An output is written again only when what it is rendered from changed (or
on resync, which repairs hand edits: the gateways' objects are not watched). Releasing an output of a
kind the API server does not serve (its CRD not installed, or uninstalled) writes nothing: no object of
that kind exists, so none holds an entry of ours; a note says so.

A deleted JwtSecret's release is retried until every output is out (its finalizer holds the deletion
meanwhile), with one bound: an output whose object cannot be read (MalformedObjectError: a spec replaced
by a list, entries or marks of the wrong type; or an unexpected error reading it) is given up after
MALFORMED_RELEASE_ATTEMPTS attempts in a row, so that a broken object cannot hold a deletion (and its
namespace's) forever. Each failure shows in the output's condition; an Event records the first, and
another what was given up.
"""

from __future__ import annotations

import hashlib
import json
import logging

from jwks_operator.engine.tracked import Tracked
from jwks_operator.keys.keyset import KeySet
from jwks_operator.kube.adapter import Kube
from jwks_operator.kube.lanes import Lane, Lanes
from jwks_operator.model.errors import ApiCallError, JwksError, KindNotServedError
from jwks_operator.model.names import RELEASE_FINALIZER
from jwks_operator.publish.gateways import Context, Output, OutputError, Plan, restore
from jwks_operator.publish.gateways.base import MalformedObjectError
from jwks_operator.resource.spec import JwtSecretSpec
from jwks_operator.resource.status import REMOVING, OutputStatus
from jwks_operator.runtime.metrics import Metrics

MALFORMED_RELEASE_ATTEMPTS = (
    5  # releases that cannot read an output's object, in a row, before it is given up
)


class GatewayOutputs:
    """Writes and releases the gateway outputs of JwtSecrets (API calls in threads)."""

    def __init__(self, kube: Kube, lanes: Lanes, metrics: Metrics) -> None:
        self.kube = kube
        self.lanes = lanes
        self.metrics = metrics

    async def sync(self, tracked: Tracked, spec: JwtSecretSpec, key_set: KeySet, configmap: str) -> bool:
        """Bring every output of the spec up to date and release the ones it no longer lists; True when
        all are ready (else the caller retries with backoff)."""
        wanted = {output.id: output for output in tracked.listed_outputs}
        for output in tracked.listed_outputs:
            stamp = _stamp(output, spec, key_set, configmap)
            current = tracked.outputs.get(output.id)
            if current is not None and current.ready and tracked.output_stamps.get(output.id) == stamp:
                continue
            previous = current.objects if current is not None else ()
            context = Context(tracked.owner, spec, key_set, configmap, previous)
            status = await self._write(tracked, output, context)
            tracked.outputs[output.id] = status
            tracked.output_stamps[output.id] = stamp
        in_use = {(s.kind, name) for i, s in tracked.outputs.items() if i in wanted for name in s.objects}
        for output_id in [i for i in tracked.outputs if i not in wanted]:
            gone = tracked.outputs[output_id]
            kept = tuple(o for o in gone.objects if (gone.kind, o) not in in_use)
            try:  # an object a listed output now writes (the same Secret under a new id) stays
                await self.release(tracked, output_id, kept, [])
            except Exception as exc:
                tracked.outputs[output_id] = _failed(gone, _as_error(exc, "removing"), removing=True)
                continue
            del tracked.outputs[output_id]
            tracked.output_stamps.pop(output_id, None)
            tracked.log(logging.INFO, "removed output %s", output_id)
        return all(status.ready for status in tracked.outputs.values())

    async def release(
        self, tracked: Tracked, output_id: str, objects: tuple[str, ...], notes: list[str]
    ) -> None:
        """Take our keys out of an output's objects (raises on failure: the caller retries). An object
        whose kind the API server does not serve holds nothing of ours: skipped, with a line in `notes`."""
        output = restore(output_id)
        if output is None:
            return  # not an output this version writes
        for write in output.release(tracked.owner, objects):
            try:
                result = await self.lanes.call(Lane.OUTPUT, self.kube.write_output, write.ref, write.mutate)
            except KindNotServedError:
                note = (
                    f"output {output_id}: the API server does not serve {write.ref.kind} "
                    f"({write.ref.group}/{write.ref.version}: its CRD is not installed), so no {write.ref} "
                    "can hold an entry of this JwtSecret: nothing to take out"
                )
                tracked.log(logging.INFO, "%s", note)
                notes.append(note)
                continue
            if result != "unchanged":
                self.metrics.api_writes.labels(write.ref.kind, result.removesuffix("d")).inc()

    async def release_all(self, tracked: Tracked, notes: list[str]) -> dict[str, Exception]:
        """A deleted JwtSecret's keys out of every output: each is tried, one failing does not keep the
        others' keys trusted. Returns the failures by output id (those released leave tracked.outputs).
        `notes`: see release()."""
        failed: dict[str, Exception] = {}
        for output_id, status in list(tracked.outputs.items()):
            try:
                await self.release(tracked, output_id, status.objects, notes)
            except Exception as exc:
                failed[output_id] = exc
                continue
            del tracked.outputs[output_id]
            tracked.release_attempts.pop(output_id, None)
        return failed

    def blocked(self, tracked: Tracked, failed: dict[str, Exception]) -> tuple[list[str], list[str]]:
        """Failed releases recorded in their outputs' status; an output whose object could not be read
        MALFORMED_RELEASE_ATTEMPTS times in a row is given up (out of tracked.outputs). Returns the
        messages of the Events to record now (a new problem), and of those given up."""
        new: list[str] = []
        given_up: list[str] = []
        for output_id, exc in failed.items():
            status = tracked.outputs[output_id]
            error = _as_error(exc, "removing", restore(output_id))
            note = ""
            if isinstance(exc, MalformedObjectError) or not isinstance(exc, JwksError):
                attempts = tracked.release_attempts[output_id] = (
                    tracked.release_attempts.get(output_id, 0) + 1
                )
                if attempts >= MALFORMED_RELEASE_ATTEMPTS:
                    del tracked.outputs[output_id]
                    del tracked.release_attempts[output_id]
                    where = f"{status.kind} {', '.join(status.objects)}"
                    given_up.append(
                        f"output {output_id}: gave up removing this JwtSecret's entries from {where} after "
                        f"{attempts} attempts ({error.message}): whatever it holds of them stays there"
                    )
                    tracked.log(logging.WARNING, "%s", given_up[-1])
                    continue
                note = (
                    f" (attempt {attempts} of {MALFORMED_RELEASE_ATTEMPTS}; after the last, the finalizer "
                    f"{RELEASE_FINALIZER} is removed anyway)"
                )
            else:
                tracked.release_attempts.pop(output_id, None)
            message = f"{REMOVING}{error.message}{note}"
            if status.ready or status.reason != error.reason or not status.message.startswith(REMOVING):
                new.append(f"output {output_id}: {message}")
            tracked.outputs[output_id] = OutputStatus(
                output_id, status.kind, status.objects, False, error.reason, message
            )
        return new, given_up

    async def _write(self, tracked: Tracked, output: Output, context: Context) -> OutputStatus:
        plan: Plan | None = None
        try:
            plan = output.plan(context)
            for write in plan.writes:
                result = await self.lanes.call(Lane.OUTPUT, self.kube.write_output, write.ref, write.mutate)
                if result != "unchanged":
                    self.metrics.api_writes.labels(write.ref.kind, result.removesuffix("d")).inc()
                    tracked.log(logging.INFO, "output %s: %s %s", output.id, write.ref, result)
        except Exception as exc:
            error = _as_error(exc, "writing", output)
            tracked.log(logging.WARNING, "output %s not written: %s", output.id, error.message)
            base = tracked.outputs.get(output.id) or OutputStatus(output.id, output.kind)
            if plan is not None:  # some of its writes may have happened: a later release must reach them
                held = tuple(dict.fromkeys([*base.objects, *plan.objects]))
                base = OutputStatus(base.id, base.kind, held)
            return _failed(base, error)
        return OutputStatus(
            output.id, output.kind, plan.objects, True, "Written", _written(plan, output), plan.notes
        )


def _written(plan: Plan, output: Output) -> str:
    where = ", ".join(plan.objects) or "nothing"
    message = f"{plan.keys} key(s) in {output.kind} {where}"
    return "; ".join([message, *plan.notes])


def _failed(base: OutputStatus, error: JwksError, *, removing: bool = False) -> OutputStatus:
    message = (REMOVING if removing else "") + error.message
    return OutputStatus(base.id, base.kind, base.objects, False, error.reason, message)


def _as_error(exc: Exception, step: str, output: Output | None = None) -> JwksError:
    """An output's failure as a status-safe error; a 404 on a create means the gateway's CRD is absent."""
    missing = isinstance(exc, ApiCallError) and exc.status == 404 and output is not None
    if isinstance(exc, KindNotServedError) or missing:
        kind = output.kind if output is not None else "this output's kind"
        return OutputError(
            "KindNotInstalled", f"the API server does not serve {kind} (is the gateway's CRD installed?)"
        )
    if isinstance(exc, ApiCallError) and exc.status == 403 and output is not None:
        return OutputError(
            "Forbidden",
            f"the operator may not write {output.kind} here: enable this output in the chart "
            "(outputs.<gateway>.enabled) or grant it in the operator's RBAC",
        )
    if isinstance(exc, JwksError):
        return exc
    logging.getLogger(__name__).error("unexpected error while %s an output", step, exc_info=True)
    return OutputError(
        "UnexpectedError", f"unexpected {type(exc).__name__} while {step} (see the operator log)"
    )


def _stamp(output: Output, spec: JwtSecretSpec, key_set: KeySet, configmap: str) -> str:
    """What an output is rendered from, hashed: unchanged, it is not written again."""
    inputs = [repr(output), key_set.rendered, spec.audiences, spec.issuers, spec.algorithms, configmap]
    return hashlib.sha256(json.dumps(inputs, default=str).encode()).hexdigest()[:16]
