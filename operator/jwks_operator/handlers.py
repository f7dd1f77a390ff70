"""Kopf wiring (thin): every JwtSecret watch event goes to the engine; login via the kubernetes client."""

from __future__ import annotations

from typing import Any

import kopf

from .engine import Engine
from .names import GROUP, MANAGED_SELECTOR, PLURAL, VERSION


def build_registry(engine: Engine) -> kopf.OperatorRegistry:
    """A registry with our handlers only (no Kopf finalizers, annotations or status fields)."""
    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> Any:
        return kopf.login_via_client(**kwargs)

    @kopf.on.event(GROUP, VERSION, PLURAL, registry=registry)
    async def jwtsecret_event(event: kopf.RawEvent, **_: Any) -> None:
        await engine.observe(event.get("type"), event["object"])

    # No client-side label filter: a ConfigMap relabelled by hand arrives as DELETED without the label.
    @kopf.on.event("", "v1", "configmaps", registry=registry)
    async def published_event(event: kopf.RawEvent, **_: Any) -> None:
        engine.drift(event.get("type"), event["object"])

    return registry


def build_settings(*, standalone: bool = True) -> kopf.OperatorSettings:
    """Kopf settings: no Kopf-posted events, bounded watch streams, no CRD scanning, standalone by default."""
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
    # Watch only the ConfigMaps we publish (server-side), so memory stays flat in big clusters.
    settings.watching.label_selectors["configmaps"] = MANAGED_SELECTOR
    return settings
