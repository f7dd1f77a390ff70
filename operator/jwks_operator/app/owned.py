"""The watch of the ConfigMaps we publish, outside Kopf: one ListWatch thread per watched namespace (or
one for the cluster), each event handed to `engine.drift` on the event loop. It runs while this replica
leads (Kopf pauses its own watches likewise): a replica that starts leading lists them afresh."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from kubernetes import client

from jwks_operator.kube.listwatch import Deliver, ListWatch
from jwks_operator.kube.watch_http import WatchHttp
from jwks_operator.model.names import MANAGED_SELECTOR

JOIN_TIMEOUT = 5.0  # seconds a stop waits for each thread (its stream is shut at once)


class OwnedWatch:
    """Start and stop the ConfigMap watches; `drift(type, object)` is called on `loop` for each event."""

    def __init__(
        self,
        api_client: client.ApiClient,
        namespaces: Sequence[str],
        drift: Callable[[str | None, Mapping[str, Any]], None],
        loop: asyncio.AbstractEventLoop,
        *,
        timeout: int = 300,
    ) -> None:
        self.api_client, self.namespaces, self.drift, self.loop = api_client, namespaces, drift, loop
        self.timeout = timeout
        self._running: list[tuple[ListWatch, threading.Thread]] = []

    @property
    def running(self) -> bool:
        return bool(self._running)

    def start(self) -> None:
        """Start watching (a no-op when running): a fresh list, then the watch."""
        if self._running:
            return
        deliver: Deliver = self._deliver
        scopes: list[str | None] = [*self.namespaces] or [None]
        for namespace in scopes:
            api = WatchHttp(self.api_client, "configmaps", namespace=namespace, selector=MANAGED_SELECTOR)
            watch = ListWatch(api, deliver, timeout=self.timeout)
            name = f"jwks-watch-configmaps{'-' + namespace if namespace else ''}"
            thread = threading.Thread(target=watch.run, name=name, daemon=True)
            thread.start()
            self._running.append((watch, thread))

    def stop(self, *, join: bool = False) -> None:
        """Stop watching: each stream is shut (its thread ends on its own; `join`: wait for it, briefly;
        not from the event loop)."""
        running, self._running = self._running, []
        for watch, _ in running:
            watch.stop()
        for _, thread in running if join else ():
            thread.join(JOIN_TIMEOUT)

    def _deliver(self, event_type: str | None, obj: Mapping[str, Any]) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: the operator is stopping
            self.loop.call_soon_threadsafe(self.drift, event_type, obj)
