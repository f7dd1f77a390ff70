"""The emulated API server (server.py) on a loopback port, in a thread with its own event loop, so that
sync tests and a separate operator process can talk to it over HTTP."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import kmock
import yaml
from kubernetes import client, config

from tests.harness.k8s.server import ApiServer
from tests.harness.k8s.store import EVENT_LOG

T = TypeVar("T")


class EmulatedCluster:
    """The ApiServer on a loopback port, in a thread with its own event loop.

    `cel=False` serves the CRDs without their CEL rules, like an API server older than Kubernetes 1.25.
    Subclasses may serve a subclass of ApiServer (`server`).
    """

    server: type[ApiServer] = ApiServer

    def __init__(
        self, crds: Sequence[Mapping[str, Any]] = (), *, history: int = EVENT_LOG, cel: bool = True
    ) -> None:
        self.crds = crds
        self.history = history
        self.cel = cel
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name="k8s-emulator")
        self._stop: asyncio.Event | None = None
        self._serving: Any = None
        self.api: ApiServer | None = None
        self.url = ""

    def __enter__(self) -> EmulatedCluster:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(30)
        return self

    async def _start(self) -> None:
        self._stop = asyncio.Event()
        started = asyncio.get_running_loop().create_future()

        async def serve() -> None:
            async with (
                self.server(crds=self.crds, history=self.history, cel=self.cel) as api,
                kmock.Server(api, host="127.0.0.1") as server,
            ):
                self.api = api
                self.url = str(server.url).rstrip("/")
                started.set_result(None)
                assert self._stop is not None
                await self._stop.wait()
                api.shutdown_watches()
                await asyncio.sleep(0.05)

        self._serving = asyncio.get_running_loop().create_task(serve())
        await started

    def call(self, fn: Callable[[ApiServer], T]) -> T:
        """Run `fn(api)` in the server's loop (thread-safe inspection and fault injection)."""

        async def run() -> T:
            assert self.api is not None
            return fn(self.api)

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(10)

    def write_kubeconfig(self, path: Path) -> Path:
        path.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "current-context": "emulator",
                    "clusters": [{"name": "emulator", "cluster": {"server": self.url}}],
                    "users": [{"name": "emulator", "user": {}}],
                    "contexts": [
                        {"name": "emulator", "context": {"cluster": "emulator", "user": "emulator"}}
                    ],
                }
            )
        )
        return path

    def api_client(self, path: Path) -> client.ApiClient:
        api: client.ApiClient = config.new_client_from_config(str(self.write_kubeconfig(path)))  # type: ignore[no-untyped-call]
        return api

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        async def stop() -> None:
            assert self._stop is not None
            self._stop.set()
            await asyncio.wait_for(self._serving, 10)

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(15)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
