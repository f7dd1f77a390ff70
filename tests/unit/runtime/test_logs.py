"""Log output never carries an exception's message: it may quote key material."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from jwks_operator.runtime.logs import JsonFormatter, TextFormatter

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
