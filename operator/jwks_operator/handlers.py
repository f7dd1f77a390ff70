"""Kopf wiring (thin): every JwtSecret watch event goes to the engine; login via the kubernetes client."""

from __future__ import annotations

from typing import Any

import kopf

from .engine import Engine
from .outputs import GROUP, PLURAL, VERSION


def build_registry(engine: Engine) -> kopf.OperatorRegistry:
    """A registry with our handlers only (no Kopf finalizers, annotations or status fields)."""
    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> Any:
        return kopf.login_via_client(**kwargs)

    @kopf.on.event(GROUP, VERSION, PLURAL, registry=registry)
    async def jwtsecret_event(event: kopf.RawEvent, **_: Any) -> None:
        await engine.observe(event.get("type"), event["object"])

    return registry


def build_settings(*, standalone: bool = True) -> kopf.OperatorSettings:
    """Kopf settings: no Kopf-posted events, bounded watch streams, quiet peering by default."""
    settings = kopf.OperatorSettings()
    settings.posting.enabled = False
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 10
    settings.peering.standalone = standalone
    settings.persistence.finalizer = f"{GROUP}/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=GROUP)
    return settings
