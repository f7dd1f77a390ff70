"""Logging setup: text for people, JSON lines for log pipelines (never key material).

A message may echo what a spec author wrote (an issuer, a kid): text lines escape its control characters
(no forged line, no terminal escape), JSON escapes them by itself.

Tracebacks keep their frames and the exception's type but not its message: an exception raised while
handling keys or Secrets may quote the data it choked on (a UnicodeDecodeError shows the byte).

While the operator runs, lines are written by a thread of their own (`off_the_loop`): its event loop only
queues each record, instead of waiting in `write` for the GIL its API threads hold.
"""

from __future__ import annotations

import contextlib
import json
import logging
import logging.handlers
import queue
import traceback
from collections.abc import Iterator
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from jwks_operator.keys.members import printable

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None] | tuple[None, None, None]


def scrubbed(exc_info: ExcInfo) -> str:
    """A traceback without the exception's message (frames, then the exception's type)."""
    kind, _, tb = exc_info
    frames = "".join(traceback.format_tb(tb))
    name = kind.__name__ if kind is not None else "None"
    return f"Traceback (most recent call last):\n{frames}{name} (message withheld: it may quote data)"


class TextFormatter(logging.Formatter):
    """`time level logger: message`, with scrubbed tracebacks."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        # The message escaped; a traceback, appended after this, keeps its lines.
        return printable(super().formatMessage(record), None)

    def formatException(self, ei: ExcInfo) -> str:
        return scrubbed(ei)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and any `extra` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = (
                    value if isinstance(value, str | int | float | bool) or value is None else str(value)
                )
        if record.exc_info:
            entry["exception"] = scrubbed(record.exc_info)
        elif record.exc_text:  # scrubbed already (_Handoff)
            entry["exception"] = record.exc_text
        return json.dumps(entry)


def setup(*, verbose: bool, fmt: str) -> None:
    """Configure the root logger; Kopf's per-object chatter and urllib3's only when verbose."""
    handler = logging.StreamHandler()
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    if not verbose:
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
        logging.getLogger("urllib3").setLevel(logging.WARNING)


class _Handoff(logging.handlers.QueueHandler):
    """Queues each record for the writer thread's handlers to format: its message merged now (its
    arguments may change afterwards), its traceback scrubbed now (no frame, and none of their locals,
    waits in the queue)."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        record.msg, record.args = record.getMessage(), None
        if record.exc_info:
            record.exc_text, record.exc_info = scrubbed(record.exc_info), None
        return record


@contextlib.contextmanager
def off_the_loop() -> Iterator[None]:
    """While the block runs, the root logger's handlers write from a thread of their own; every record
    queued is written when the block ends (then they write in the caller's thread again)."""
    root = logging.getLogger()
    handlers = root.handlers[:]
    records: queue.SimpleQueue[logging.LogRecord | None] = queue.SimpleQueue()
    writer = logging.handlers.QueueListener(records, *handlers, respect_handler_level=True)
    writer.start()
    root.handlers[:] = [_Handoff(records)]
    try:
        yield
    finally:
        root.handlers[:] = handlers  # records of other threads from now on are written directly
        writer.stop()  # writes what is queued, then the thread ends
        while True:  # and what another thread queued after that
            try:
                left = records.get_nowait()
            except queue.Empty:
                break
            if left is not None:
                writer.handle(left)
