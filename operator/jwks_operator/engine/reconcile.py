"""One JwtSecret's pass: resolve its keys, publish them, report the outcome in its status.

Errors never replace the last published keys: they show in the status and are retried with backoff
(fetch errors on their URL's schedule, others on the JwtSecret's own). A pass of a generation that a
newer one replaced meanwhile publishes and reports nothing: the newer one's pass, next, does.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta

from jwks_operator.engine.publisher import Publisher
from jwks_operator.engine.scheduler import Scheduler
from jwks_operator.engine.sources import Backoff, Sources
from jwks_operator.engine.tracked import ObjKey, Target, Tracked
from jwks_operator.engine.url_source import UrlSource
from jwks_operator.keys import static as static_keys
from jwks_operator.keys.keyset import KeySet
from jwks_operator.kube.adapter import Kube
from jwks_operator.kube.lanes import Lane, Lanes
from jwks_operator.model.errors import ApiCallError, JwksError
from jwks_operator.resource.spec import JwtSecretSpec
from jwks_operator.resource.status import Outcome, build_status, merge_patch, new_problems
from jwks_operator.runtime.metrics import Metrics

TIMESTAMPS_ONLY = frozenset({"lastFetchTime"})
STALE_MARGIN = 0.01  # seconds past the staleAfter deadline, so the check sees it passed


class UnexpectedError(JwksError):
    """An error no step expects (a bug, or data changed by hand beyond what we parse): reported with the
    step and its type only (its text may hold key material), retried with backoff."""

    reason = "UnexpectedError"

    def __init__(self, step: str, exc: Exception) -> None:
        super().__init__(f"unexpected {type(exc).__name__} while {step} (see the operator log)")


class Reconciler:
    """Brings one JwtSecret's output and status in line with its spec and source."""

    def __init__(
        self,
        kube: Kube,
        lanes: Lanes,
        sources: Sources,
        publisher: Publisher,
        *,
        retry: Backoff,
        metrics: Metrics,
        resync_interval: float,
        objects: Mapping[ObjKey, Tracked],
        forget: Callable[[ObjKey], None],
    ) -> None:
        self.kube = kube
        self.lanes = lanes
        self.sources = sources
        self.publisher = publisher
        self.scheduler: Scheduler = sources.scheduler
        self.clock = sources.clock
        self.retry = retry
        self.metrics = metrics
        self.resync_interval = resync_interval
        self.objects = objects  # the current generation of each JwtSecret
        self.forget = forget  # the JwtSecret is gone (its status could not be written: 404)

    async def reconcile(self, tracked: Tracked) -> None:
        """Resolve, publish and report, once its URL (if any) was fetched (`first_fetch`, or the URL's own
        refresh)."""
        async with tracked.lock:  # shared by its generations: a pass of an older one finishes first
            if not self.current(tracked):
                return
            tracked.reconciled = True
            outcome = await self._attempt(tracked)
            outcome = replace(outcome, outputs=tuple(tracked.outputs.values()))
            if not self.current(tracked):
                self._superseded(tracked)
                return
            try:
                await self._report(tracked, outcome)
            except Exception as exc:  # the next pass recomputes the same patch: nothing half-written
                tracked.report_failures += 1
                delay = self.retry.delay(tracked.report_failures, getattr(exc, "retry_after", None))
                self.scheduler.schedule(("obj", tracked.key), delay)
                if isinstance(exc, ApiCallError):
                    why = exc.message
                    tracked.log(logging.WARNING, "status update failed (retry in %.0fs): %s", delay, why)
                else:
                    why = UnexpectedError("reporting the status", exc).message
                    tracked.log(logging.ERROR, "%s; retry in %.0fs", why, delay, exc_info=True)
            else:
                tracked.report_failures = 0
                if self.resync_interval > 0:
                    spread = random.uniform(0.9, 1.1)  # noqa: S311 - load spreading, not crypto
                    self.scheduler.schedule(("resync", tracked.key), self.resync_interval * spread)

    def current(self, tracked: Tracked) -> bool:
        """Whether `tracked` is still the JwtSecret's current generation (not replaced, not deleted)."""
        return self.objects.get(tracked.key) is tracked

    def _superseded(self, tracked: Tracked) -> None:
        """A newer generation replaced `tracked` during its pass: hand over what the pass published (the
        newer one's pass runs next, under the same lock); a deleted JwtSecret leaves a shared target."""
        newer = self.objects.get(tracked.key)
        if newer is not None and newer.uid == tracked.uid:
            newer.take_over(tracked)
        else:
            shared = tracked.target if tracked.target is not None and tracked.target.shared else None
            if shared is not None or tracked.outputs:
                self.publisher.withdraw(tracked, shared)

    async def _attempt(self, tracked: Tracked) -> Outcome:
        """Resolve and publish the keys; the outcome says what the status should report."""
        spec = tracked.spec
        base = Outcome(
            source=spec.describe_source() if spec else "invalid",
            generation=tracked.generation,
            key_set=tracked.published or tracked.stored_keys(),
            fetched_at=tracked.fetched_at,
            failures=tracked.failures,
        )
        if spec is None or tracked.spec_error is not None:
            assert tracked.spec_error is not None
            return replace(_at(base, tracked.target), error=tracked.spec_error, failures=0)
        base = replace(base, warnings=tuple(spec.warnings()))
        source = self.sources.get(tracked.source_key)
        if source is not None:
            base = replace(base, failures=source.failures, refresh=source.basis)
        step = "resolving the keys"
        try:
            key_set, fetched_at = await self._resolve(tracked, spec, source)
            if not self.current(tracked):
                return base  # replaced meanwhile: reconcile() drops this outcome
            if tracked.listed_outputs and not tracked.holds_release:
                step = "adding the release finalizer"  # before anything is written into shared objects
                await self.publisher.hold(tracked)
            step = "publishing the keys"
            target = await self.publisher.publish(tracked, spec, key_set)
            moved = True  # the outputs point at the new target: the previous one may go
            if tracked.listed_outputs or tracked.outputs:
                moved = await self._outputs(tracked, spec, key_set, target.name)
            if moved or tracked.target is None:
                await self.publisher.finish_move(tracked, target)
            if not tracked.listed_outputs and not tracked.outputs and tracked.holds_release:
                await self.publisher.let_go(tracked)
        except JwksError as exc:
            return replace(self._failed(tracked, base, source, exc), write_failed=step.startswith("publish"))
        except Exception as exc:  # not a JwksError: a bug, or an output edited beyond what we parse
            tracked.log(logging.ERROR, "unexpected error while %s", step, exc_info=True)
            failed = self._failed(tracked, base, source, UnexpectedError(step, exc))
            return replace(failed, write_failed=step.startswith("publish"))
        if key_set != tracked.published or tracked.fetched_at is None:  # when these keys were obtained
            tracked.fetched_at = fetched_at
        tracked.published, tracked.failures = key_set, 0
        if source is not None:
            self._watch_staleness(tracked, source)
        return replace(
            _at(base, tracked.target),
            key_set=tracked.published,
            fetched_at=tracked.fetched_at,
            error=source.health(tracked.policy, self.clock.now()) if source else None,
            failures=source.failures if source else 0,
        )

    def _watch_staleness(self, tracked: Tracked, source: UrlSource) -> None:
        """While refreshes fail, reconcile at the staleAfter deadline, so Stale shows when it becomes true
        (not at the next failed retry, which backoff may put minutes later)."""
        if source.error is None or source.expires_at is None:
            return
        deadline = source.expires_at + timedelta(seconds=tracked.policy.stale_after)
        left = (deadline - self.clock.now()).total_seconds()
        if left >= 0:
            self.scheduler.schedule(("obj", tracked.key), left + STALE_MARGIN)

    async def _outputs(self, tracked: Tracked, spec: JwtSecretSpec, key_set: KeySet, target: str) -> bool:
        """Write the gateway outputs (`target`: the ConfigMap they may point at); while one is not written,
        retry with backoff. True when all are written."""
        if await self.publisher.gateways.sync(tracked, spec, key_set, target):
            tracked.output_failures = 0
            return True
        tracked.output_failures += 1
        self.scheduler.schedule(("obj", tracked.key), self.retry.delay(tracked.output_failures))
        return False

    def _failed(self, tracked: Tracked, base: Outcome, source: UrlSource | None, exc: JwksError) -> Outcome:
        """The outcome of a failed attempt (the published keys stay), with a retry planned."""
        if source is None or exc is not source.error:  # fetch errors retry on the source's schedule
            tracked.failures += 1
            delay = self.retry.delay(tracked.failures, getattr(exc, "retry_after", None))
            self.scheduler.schedule(("obj", tracked.key), delay)
            base = replace(base, failures=tracked.failures)
        # Where the keys are: until a new target is written and the previous one removed, the previous.
        return replace(_at(base, tracked.target), error=exc)

    async def first_fetch(self, tracked: Tracked) -> None:
        """If the URL `tracked` reads was never fetched, fetch it (or wait for the fetch under way): the
        start of its pass."""
        tracked.reconciled = True  # not caught up again after this fetch: its pass goes on
        source = self.sources.get(tracked.source_key)
        if source is not None and await self.sources.first_fetch(source):
            self._catch_up(source)

    def _catch_up(self, source: UrlSource) -> None:
        """After a source's first fetch, its subscribers resumed after a restart are reconciled too: they
        waited for this fetch, and a revalidation of an unchanged document reconciles nobody."""
        for key in source.subscribers:
            subscriber = self.objects.get(key)
            if subscriber is not None and not subscriber.reconciled:
                self.scheduler.schedule(("obj", key), 0.0)

    async def _resolve(
        self, tracked: Tracked, spec: JwtSecretSpec, source: UrlSource | None
    ) -> tuple[KeySet, datetime]:
        """The keys to publish and when they were obtained."""
        now = self.clock.now()
        if source is not None:
            key_set, recheck = source.keys_for(spec.algorithms, spec.retain_removed_for, now)
            if recheck is not None:  # publish again without the retained key once it expires
                self.scheduler.schedule(("obj", tracked.key), recheck)
            return key_set, source.changed_at or now
        if spec.kind == "jwks":
            assert spec.jwks is not None
            return static_keys.keys_from_jwks(spec.jwks["keys"], algorithms=spec.algorithms), now
        if spec.kind == "pem":
            assert spec.pem is not None
            return static_keys.keys_from_pem(spec.pem, kid=spec.kid, algorithms=spec.algorithms), now
        ref = spec.secret_ref
        assert ref is not None
        read = self.kube.read_secret_key
        where = (tracked.namespace, ref.name, ref.key, tracked.name, tracked.uid)
        secret = await self.lanes.call(Lane.OUTPUT, read, *where)
        key_set = static_keys.key_from_hmac(
            secret.raw, kid=ref.kid, algorithms=spec.algorithms, exportable=secret.exportable
        )
        return key_set, now

    async def _report(self, tracked: Tracked, outcome: Outcome) -> None:
        """Patch the status if anything but its timestamps changed; Warning events for new problems."""
        new = build_status(outcome, tracked.status, self.clock.now())
        conditions = [(str(c["type"]), str(c["status"])) for c in new["conditions"]]
        outputs = [(o.id, o.ready) for o in outcome.outputs]
        self.metrics.set_object(tracked.namespace, tracked.name, int(new["keyCount"]), conditions, outputs)
        patch = merge_patch(tracked.status, new)
        if patch is None or set(patch) <= TIMESTAMPS_ONLY:
            return  # a revalidation that changed nothing writes nothing
        try:
            written = await self.lanes.call(
                Lane.STATUS, self.kube.patch_status, tracked.namespace, tracked.name, patch
            )
            self.metrics.api_writes.labels("JwtSecret/status", "patch").inc()
        except Exception as exc:
            if getattr(exc, "status", None) == 404:
                self.forget(tracked.key)
                return
            raise
        problems = new_problems(tracked.status, new)
        tracked.status = new
        if isinstance(written, Mapping):
            tracked.wrote_status(written)
        for reason, message in problems:
            tracked.log(logging.WARNING, "%s: %s", reason, message)
            self.publisher.event(tracked, "Warning", reason, message)


def _at(outcome: Outcome, target: Target | None) -> Outcome:
    """The outcome naming `target` as where the keys are (None: nowhere yet)."""
    if target is None:
        return outcome
    return replace(outcome, target_kind=target.kind, target_name=target.name, target_shared=target.shared)
