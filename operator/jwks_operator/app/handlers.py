"""Kopf wiring (thin): every JwtSecret watch event goes to the engine; login via the kubernetes client.
The ConfigMaps we publish are watched outside Kopf (app/owned.py)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import kopf

from jwks_operator.engine.engine import Engine
from jwks_operator.model.names import GROUP, PLURAL, VERSION


def build_registry(engine: Engine) -> kopf.OperatorRegistry:
    """A registry with our handlers only (no Kopf finalizers, annotations or status fields)."""
    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> Any:
        return kopf.login_via_client(**kwargs)

    def news(body: kopf.Body, **_: Any) -> bool:
        return not engine.echoed(body)

    # Our own status patches echoed back are dropped by Kopf's filter (before its handler machinery).
    @kopf.on.event(GROUP, VERSION, PLURAL, registry=registry, when=news)
    async def jwtsecret_event(event: kopf.RawEvent, **_: Any) -> None:
        await engine.observe(event.get("type"), event["object"])

    # The ConfigMaps we publish are watched outside Kopf (app/owned.py), feeding engine.drift.
    return registry


class NoDiffBase(kopf.DiffBaseStorage):
    """Event handlers need no diff base (Kopf keeps one for change handlers): none is built, read or
    stored. Kopf's own would deep-copy every body of every event to build one."""

    def build(self, *, body: kopf.Body, extra_fields: Iterable[Any] | None = None) -> kopf.BodyEssence:
        return kopf.BodyEssence()

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        return None


class NoProgress(kopf.ProgressStorage):
    """Event handlers keep no progress (Kopf keeps it for change handlers' retries): none is kept."""

    def fetch(self, *, key: kopf.HandlerId, body: kopf.Body) -> kopf.ProgressRecord | None:
        return None

    def store(
        self, *, key: kopf.HandlerId, record: kopf.ProgressRecord, body: kopf.Body, patch: kopf.Patch
    ) -> None:
        return None

    def purge(self, *, key: kopf.HandlerId, body: kopf.Body, patch: kopf.Patch) -> None:
        return None

    def touch(self, *, body: kopf.Body, patch: kopf.Patch, value: str | None) -> None:
        return None

    def clear(self, *, essence: kopf.BodyEssence) -> kopf.BodyEssence:
        return essence


def build_settings(*, standalone: bool = True) -> kopf.OperatorSettings:
    """Kopf settings: no Kopf-posted events, bounded watch streams, no CRD scanning, no diff base or
    progress storage (event handlers use neither), standalone by default."""
    settings = kopf.OperatorSettings()
    settings.posting.enabled = False
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 10
    settings.peering.standalone = standalone
    # The CRDs are installed before the operator: one discovery at startup, no CRD list/watch (RBAC).
    settings.scanning.disabled = True
    # Kopf writes no finalizer, progress or diff-base for event handlers alone, but on every event it strips
    # this finalizer from the object when no handler needs one: a name of our own, not Kopf's default, so
    # another Kopf operator's finalizer on our ConfigMaps or JwtSecrets stays.
    settings.persistence.finalizer = f"{GROUP}/finalizer"
    settings.persistence.diffbase_storage = NoDiffBase()
    settings.persistence.progress_storage = NoProgress()
    return settings
