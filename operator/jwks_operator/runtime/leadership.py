"""Which replica leads, as Kopf's peering decides it (HA with `--peering`).

Kopf pauses its watch streams while a live peer has a higher priority (or the same one: then all
pause), but the refresh engine has its own timers: it must pause too, or every standby would fetch and
write. Kopf keeps that decision in a private toggle per peering object, handed to
`kopf._core.engines.peering.process_peering_event`; `Leadership.install()` wraps that function to watch
the toggle (tests/e2e/test_ha.py runs two real operators against one peering object, so a Kopf upgrade
that changes this fails there, not in a cluster). Standalone operators (no `--peering`) always lead.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from kopf._core.engines import peering as kopf_peering

log = logging.getLogger(__name__)


class _ObservedToggle:
    """Kopf's `conflicts_found` toggle, reporting each change to its owner."""

    def __init__(self, toggle: Any, changed: Callable[[], None]) -> None:
        self._toggle, self._changed = toggle, changed

    def is_on(self) -> bool:
        return bool(self._toggle.is_on())

    def is_off(self) -> bool:
        return bool(self._toggle.is_off())

    async def turn_to(self, state: bool) -> None:
        await self._toggle.turn_to(state)
        self._changed()


class Leadership:
    """Leads when standalone, or when every peering object this operator joined shows no conflict."""

    def __init__(self, *, standalone: bool, on_change: Callable[[bool], None] = lambda _: None) -> None:
        self.standalone = standalone
        self.on_change = on_change
        self._toggles: dict[int, Any] = {}
        self._leading: bool | None = True if standalone else None  # None: no peering decision yet

    @property
    def leading(self) -> bool:
        return bool(self._leading)

    def install(self) -> None:
        """Observe Kopf's peering decisions (no-op when standalone). Undone by `uninstall()`."""
        if self.standalone:
            return
        original = kopf_peering.process_peering_event

        @functools.wraps(original)
        async def observed(*args: Any, conflicts_found: Any = None, **kwargs: Any) -> None:
            if conflicts_found is not None:
                self._toggles.setdefault(id(conflicts_found), conflicts_found)
                self._update()
                conflicts_found = _ObservedToggle(conflicts_found, self._update)
            await original(*args, conflicts_found=conflicts_found, **kwargs)

        observed.__wrapped_original__ = original  # type: ignore[attr-defined]
        kopf_peering.process_peering_event = observed

    def uninstall(self) -> None:
        current = kopf_peering.process_peering_event
        original = getattr(current, "__wrapped_original__", None)
        if original is not None:
            kopf_peering.process_peering_event = original

    def _update(self) -> None:
        leading = self.standalone or (bool(self._toggles) and all(t.is_off() for t in self._toggles.values()))
        if leading != self._leading:
            self._leading = leading
            log.info("this replica %s", "now leads" if leading else "stands by (another replica leads)")
            self.on_change(leading)
