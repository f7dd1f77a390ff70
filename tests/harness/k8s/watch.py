"""Watches: what one watcher sees of a change, and the stream of events a watch request gets."""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import aiohttp.web

from tests.harness.k8s.kinds import Kind, Obj

DEFAULT_TIMEOUT = 1800.0  # seconds a watch lasts without `timeoutSeconds`


@dataclass
class Watcher:
    """One open watch: its resource, namespace (None: all) and selector; `None` queued ends it."""

    kind: Kind
    namespace: str | None
    selector: Callable[[Obj], bool]
    queue: asyncio.Queue[Obj | None] = field(default_factory=asyncio.Queue)


def watch_event(watcher: Watcher, type_: str, old: Obj | None, new: Obj | None) -> Obj | None:
    """The event one watcher sees: selector transitions become ADDED/DELETED."""
    obj = new if new is not None else old
    assert obj is not None
    if watcher.namespace is not None and obj["metadata"].get("namespace") != watcher.namespace:
        return None
    was = old is not None and type_ != "ADDED" and watcher.selector(old)
    now = type_ != "DELETED" and new is not None and watcher.selector(new)
    if type_ == "DELETED":
        return {"type": "DELETED", "object": copy.deepcopy(new)} if was or watcher.selector(obj) else None
    if was and now:
        return {"type": type_, "object": copy.deepcopy(new)}
    if now:
        return {"type": "ADDED", "object": copy.deepcopy(new)}
    if was:
        return {"type": "DELETED", "object": copy.deepcopy(new)}
    return None


def expired(since: str) -> Obj:
    """The ERROR event of a resume from a resourceVersion older than the server keeps (410 Gone)."""
    status = {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "code": 410,
        "reason": "Expired",
        "message": f"too old resource version: {since}",
    }
    return {"type": "ERROR", "object": status}


def bookmark(kind: Kind, resource_version: str) -> Obj:
    """A BOOKMARK event: only the kind and a resourceVersion to resume from."""
    meta = {"resourceVersion": resource_version}
    obj = {"kind": kind.kind, "apiVersion": kind.api_version, "metadata": meta}
    return {"type": "BOOKMARK", "object": obj}


async def stream(
    raw: aiohttp.web.BaseRequest,
    watcher: Watcher,
    backlog: list[Obj],
    timeout: float,
    bookmark_at_end: Callable[[], Obj] | None = None,
) -> aiohttp.web.StreamResponse:
    """Send the backlog, then the watcher's events until `timeout` seconds, an ERROR event, the end of
    its queue or the client going away. `bookmark_at_end` (allowWatchBookmarks): a BOOKMARK is sent
    when the timeout ends the stream, as a real server sends one before it closes a watch."""
    response = aiohttp.web.StreamResponse(headers={"Content-Type": "application/json"})
    await response.prepare(raw)
    deadline = asyncio.get_running_loop().time() + timeout
    try:
        for event in backlog:
            await response.write(json.dumps(event).encode() + b"\n")
        while backlog[-1:] == [] or backlog[-1]["type"] != "ERROR":
            remaining = deadline - asyncio.get_running_loop().time()
            try:
                if remaining <= 0:
                    raise TimeoutError
                item = await asyncio.wait_for(watcher.queue.get(), remaining)
            except TimeoutError:
                if bookmark_at_end is not None:
                    await response.write(json.dumps(bookmark_at_end()).encode() + b"\n")
                break
            if item is None:
                break
            await response.write(json.dumps(item).encode() + b"\n")
        await response.write_eof()
    except (ConnectionError, asyncio.CancelledError):
        pass
    return response


def iter_events(lines: Iterator[bytes]) -> Iterator[Obj]:
    """Parse a watch stream (for tests)."""
    for line in lines:
        if line.strip():
            yield json.loads(line)
