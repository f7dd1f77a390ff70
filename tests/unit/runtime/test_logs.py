"""Log output never carries an exception's message: it may quote key material."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import sys
import threading
from collections.abc import Iterator

import pytest

from jwks_operator.runtime.logs import JsonFormatter, TextFormatter, off_the_loop

DATA = bytes([0xFF]) + b"-SECRET-"  # what a broken Secret value might hold


def record_of_failure() -> logging.LogRecord:
    try:
        DATA.decode()
    except UnicodeDecodeError:
        record = logging.getLogger("t").makeRecord("t", logging.ERROR, __file__, 1, "failed", (), None)
        record.exc_info = sys.exc_info()
        return record
    raise AssertionError("no error")


@pytest.mark.parametrize("formatter", [TextFormatter(), JsonFormatter()], ids=["text", "json"])
def test_tracebacks_keep_frames_and_type_but_not_the_message(formatter: logging.Formatter) -> None:
    out = formatter.format(record_of_failure())
    text = json.loads(out)["exception"] if isinstance(formatter, JsonFormatter) else out
    assert "UnicodeDecodeError (message withheld" in text
    assert "record_of_failure" in text, "the frames stay"
    assert "0xff" not in text
    assert "SECRET" not in text


def test_text_lines_escape_control_characters_of_the_message() -> None:
    """A message may echo an issuer or a kid a spec author wrote: it cannot start a forged line or send a
    terminal escape; a traceback appended to the line keeps its own lines."""
    record = logging.getLogger("t").makeRecord(
        "t",
        logging.WARNING,
        __file__,
        1,
        "conflict on issuer %s",
        ("https://i/\n2026 INFO forged\x1b[2J",),
        None,
    )
    line = TextFormatter().format(record)
    assert line.endswith("t: conflict on issuer https://i/\\n2026 INFO forged\\x1b[2J")
    assert "\n" not in line
    assert "\x1b" not in line
    assert JsonFormatter().format(record).isprintable(), "JSON escapes them by itself"
    failure = TextFormatter().format(record_of_failure())
    assert failure.count("\n") > 2, "the traceback's lines"


@contextlib.contextmanager
def only(handler: logging.Handler) -> Iterator[None]:
    """The root logger with `handler` alone, at INFO, for the block (then as it was)."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    root.handlers[:], root.level = [handler], logging.INFO
    try:
        yield
    finally:
        root.handlers[:], root.level = saved


def test_off_the_loop_writes_from_a_thread_of_its_own_with_scrubbed_tracebacks_and_all_lines_in_order(
    capsys: pytest.CaptureFixture[str],
) -> None:
    stream = io.StringIO()
    writers: set[str] = set()

    class Recording(logging.StreamHandler):  # type: ignore[type-arg]
        def emit(self, record: logging.LogRecord) -> None:
            writers.add(threading.current_thread().name)
            super().emit(record)

    handler = Recording(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    log = logging.getLogger("jwks_operator.test")
    with only(handler):
        with off_the_loop():
            assert root.handlers != [handler]
            kids = ["k1"]
            log.info("published %s", kids)
            kids.append("k2")  # after the call: the line says what was true when it was logged
            try:
                DATA.decode()
            except UnicodeDecodeError:
                log.exception("failed on %d bytes", len(DATA))
            for n in range(100):
                log.info("line %d", n)
        assert root.handlers == [handler]
        log.info("after")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["message"] for line in lines] == [
        "published ['k1']",
        "failed on 9 bytes",
        *(f"line {n}" for n in range(100)),
        "after",
    ]
    assert "UnicodeDecodeError (message withheld" in lines[1]["exception"]
    assert "SECRET" not in stream.getvalue()
    assert threading.current_thread().name in writers, "after the block: written directly"
    assert len(writers) == 2, "inside it: by another thread"
    assert capsys.readouterr().err == "", "no logging error"


def test_off_the_loop_text_lines_carry_the_scrubbed_traceback_too() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(TextFormatter())
    with only(handler), off_the_loop():
        try:
            DATA.decode()
        except UnicodeDecodeError:
            logging.getLogger("jwks_operator.test").exception("failed")
    out = stream.getvalue()
    assert "jwks_operator.test: failed\nTraceback (most recent call last):" in out
    assert "UnicodeDecodeError (message withheld" in out
    assert "SECRET" not in out
    assert "0xff" not in out
