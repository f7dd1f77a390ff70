"""A fetched body as it arrives, decoded (gzip, deflate) by bounded steps under the size cap."""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from typing import Any

import requests

from jwks_operator.model.errors import FetchError

CHUNK = 16384
ACCEPT_ENCODING = "gzip, deflate"  # decoded here, by bounded steps (see _decoded)
MAX_CODINGS = 2


def body_chunks(response: requests.Response, limit: int) -> Iterator[bytes]:
    """The body decoded as it arrives, at most `limit` bytes of it both on the wire and decoded;
    FetchError at once for a Content-Encoding this fetcher did not ask for."""
    codings = _codings(response.headers.get("Content-Encoding", ""))
    return _capped(_decoded(_received(response, limit), codings), limit, codings)


def release(response: requests.Response) -> None:
    """End a body-less answer (a 304) by reading its empty body: its connection then goes back to the
    pool, kept alive (requests closes the connection of a response whose body was not read)."""
    response.raw.read1(CHUNK, decode_content=False)


def _capped(chunks: Iterator[bytes], limit: int, codings: list[str]) -> Iterator[bytes]:
    size = 0
    for chunk in chunks:
        size += len(chunk)
        if size > limit:
            encoding = ", ".join(codings)
            raise FetchError(f"decoded response is larger than {limit} bytes (Content-Encoding: {encoding})")
        yield chunk


def _received(response: requests.Response, limit: int) -> Iterator[bytes]:
    """The body as it arrives, still encoded, at most `limit` bytes of it."""
    size = 0
    while piece := response.raw.read1(CHUNK, decode_content=False):  # returns what has arrived
        size += len(piece)
        if size > limit:
            raise FetchError(f"response is larger than {limit} bytes")
        yield piece


def _codings(header: str) -> list[str]:
    """The Content-Encoding codings, outermost last; FetchError for one this fetcher did not ask for."""
    codings = [c.strip().lower() for c in header.split(",") if c.strip() and c.strip().lower() != "identity"]
    unknown = [c for c in codings if c not in ("gzip", "x-gzip", "deflate")]
    if unknown:
        raise FetchError(f"unsupported Content-Encoding {header.strip()!r} (asked for {ACCEPT_ENCODING})")
    if len(codings) > MAX_CODINGS:
        raise FetchError(f"refused Content-Encoding {header.strip()!r}: more than {MAX_CODINGS} codings")
    return codings


def _decoded(pieces: Iterator[bytes], codings: list[str]) -> Iterator[bytes]:
    """The body decoded, each coding undone lazily, CHUNK bytes at a time: however much a piece
    inflates to, no more than CHUNK of it exists at once per coding (the size cap then stops it)."""
    for coding in reversed(codings):
        pieces = _inflate(pieces, coding)
    return pieces


def _inflate(pieces: Iterator[bytes], coding: str) -> Iterator[bytes]:
    decoder: Any = None
    members = 0
    for piece in pieces:
        data = piece
        while data:
            if decoder is None:
                decoder = zlib.decompressobj(_wbits(coding, data))
                members += 1
            try:
                out = decoder.decompress(data, CHUNK)
                data = decoder.unconsumed_tail
                while out:
                    yield out
                    full = len(out) == CHUNK and not data  # more may wait inside the decoder
                    out = decoder.decompress(b"", CHUNK) if full else b""
            except zlib.error as exc:
                if members > 1:  # bytes after a complete gzip member that are not another member
                    return
                raise FetchError(f"response body is not valid {coding} data ({exc})") from None
            if decoder.eof:
                if coding == "deflate":
                    return
                data, decoder = decoder.unused_data + data, None  # gzip allows several members
    if decoder is not None and not decoder.eof:
        raise FetchError(f"response body is truncated {coding} data")


def _wbits(coding: str, data: bytes) -> int:
    if coding != "deflate":
        return 16 + zlib.MAX_WBITS  # gzip
    # "deflate" is zlib-wrapped by the standard, raw deflate by some servers
    zlib_header = len(data) >= 2 and data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0
    return zlib.MAX_WBITS if zlib_header else -zlib.MAX_WBITS
