"""Kopf settings: why the one persistence setting left is needed (Kopf's own processing, no cluster)."""

from __future__ import annotations

from typing import Any

import kopf
import pytest
from kopf._cogs.structs import bodies, patches, references
from kopf._core.actions import lifecycles, loggers
from kopf._core.engines import indexing
from kopf._core.reactor import inventory, processing

from jwks_operator.app.handlers import build_registry, build_settings
from jwks_operator.model.names import GROUP, PLURAL

KOPF_FINALIZER = kopf.OperatorSettings().persistence.finalizer


async def kopf_event(
    registry: kopf.OperatorRegistry,
    settings: kopf.OperatorSettings,
    resource: references.Resource,
    raw: bodies.RawBody,
) -> patches.Patch:
    """Kopf's own processing of one MODIFIED event of `raw` (no cluster): the patch it would apply."""
    body, patch = bodies.Body(raw), patches.Patch()
    logger = loggers.LocalObjectLogger(body=body, settings=settings)
    await processing.process_resource_causes(
        lifecycle=lifecycles.all_at_once,
        indexers=indexing.OperatorIndexers(),
        registry=registry,
        settings=settings,
        resource=resource,
        raw_event={"type": "MODIFIED", "object": raw},
        body=body,
        patch=patch,
        memory=inventory.ResourceMemory(),
        local_logger=logger,
        event_logger=logger,
        stream_pressure=None,
        operator_paused=None,
        consistency_time=None,
    )
    return patch


async def finalizers_after_an_event(settings: kopf.OperatorSettings, finalizers: list[str]) -> list[str]:
    """The finalizers of a ConfigMap after Kopf handled one event of it with an event handler only."""
    registry = kopf.OperatorRegistry()

    @kopf.on.event("", "v1", "configmaps", registry=registry)
    async def seen(**_: Any) -> None:
        pass

    raw: bodies.RawBody = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "x", "namespace": "n", "finalizers": list(finalizers)},
    }
    configmaps = references.Resource(group="", version="v1", plural="configmaps", namespaced=True)
    patch = await kopf_event(registry, settings, configmaps, raw)
    assert not dict(patch), "an event handler alone makes Kopf write no annotation or status"
    for change in patch.fns:
        change(raw)
    return raw["metadata"].get("finalizers") or []


@pytest.mark.asyncio
async def test_another_kopf_operators_finalizer_is_left_alone() -> None:
    others = [KOPF_FINALIZER, "example.com/cleanup"]
    assert await finalizers_after_an_event(build_settings(), others) == others
    # Kopf's default would strip it: the reason build_settings names a finalizer of its own.
    assert await finalizers_after_an_event(kopf.OperatorSettings(), others) == ["example.com/cleanup"]


def test_settings() -> None:
    settings = build_settings(standalone=False)
    assert settings.persistence.finalizer == "jwks.dev/finalizer"
    assert not settings.posting.enabled
    assert settings.scanning.disabled
    assert not settings.peering.standalone
    assert "configmaps" not in settings.watching.label_selectors  # watched outside Kopf (app/owned.py)


def test_kopf_watches_jwtsecrets_only() -> None:
    registry = build_registry(object())  # type: ignore[arg-type]  # the handlers are not called here
    selectors = [h.selector for h in registry._watching.get_all_handlers()]
    assert [(s.group, s.any_name) for s in selectors if s is not None] == [(GROUP, PLURAL)]


class Engine:
    """Records what Kopf hands to the engine; an event of resourceVersion "7" echoes our patch."""

    def __init__(self) -> None:
        self.observed: list[str] = []

    def echoed(self, body: Any) -> bool:
        return bool(body["metadata"]["resourceVersion"] == "7")

    async def observe(self, event_type: str | None, body: Any) -> None:
        self.observed.append(body["metadata"]["resourceVersion"])


@pytest.mark.asyncio
async def test_kopf_drops_the_echo_of_our_status_patch_before_the_handler() -> None:
    engine = Engine()
    registry = build_registry(engine)  # type: ignore[arg-type]
    settings = build_settings()
    jwtsecrets = references.Resource(group=GROUP, version="v1alpha1", plural=PLURAL, namespaced=True)
    for version in ("6", "7", "8"):
        raw: bodies.RawBody = {
            "apiVersion": f"{GROUP}/v1alpha1",
            "kind": "JwtSecret",
            "metadata": {"name": "x", "namespace": "n", "uid": "u", "resourceVersion": version},
        }
        await kopf_event(registry, settings, jwtsecrets, raw)
    assert engine.observed == ["6", "8"]
