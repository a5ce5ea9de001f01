"""Reading answers on the load users' gevent client within a size cap and deadlines.

geventhttpclient's `content` reads a body of any size into memory, its `readline` holds a line
of any length, and its timeouts are per read: a target that floods, never ends a line, or
drips a byte a second would hold a load user (and its memory) for as long as it likes. Here a
body is read in chunks up to the harness's one cap (`harness.net.bounded.READ_CAP`), a stream
in what arrives (its decoder caps lines and the stream), and the callers time the whole.
"""

from __future__ import annotations

import zlib
from typing import Any

from geventhttpclient.response import HTTPConnectionClosed

from harness.net.bounded import READ_CAP

CHUNK = 1 << 16


class AnswerCut(Exception):
    """The harness stopped reading an answer; `reason` is stable (it names an error kind)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class AnswerTooLarge(AnswerCut):
    """An answer (decoded) past the cap."""


class AnswerTimeout(AnswerCut, TimeoutError):
    """An answer, or a stream's silence, past its deadline."""


class NoAnswer(AnswerTimeout):
    """No answer at all (not even its head) by the deadline: indeterminate, never an error."""


def read_body(response: Any, cap: int = READ_CAP) -> bytes:
    """The body of a FastResponse, decoded, at most `cap` bytes (AnswerTooLarge past it).

    The connection is released in any case (closed unless the whole answer was read). The body
    is cached on the response, so a later `response.content` does not read again.
    """
    raw = response._response
    coding = (response.headers.get("content-encoding") or "identity").strip().lower()
    try:
        if coding not in ("identity", "gzip", "x-gzip", "deflate"):
            # Nobody asked for it (the users send no Accept-Encoding): an answer not to read.
            raise AnswerCut(f"answer with an unrequested content encoding {coding[:40]!r}")
        inflate = None if coding == "identity" else zlib.decompressobj(
            47 if "gzip" in coding else zlib.MAX_WBITS)
        body = bytearray()
        while chunk := raw.read(CHUNK):
            if inflate is not None:
                # Bounded inflation: a small compressed answer may not expand past the cap.
                chunk = inflate.decompress(chunk, cap + 1 - len(body))
            body += chunk
            if len(body) > cap:
                raise AnswerTooLarge(f"answer longer than {cap} bytes (not read further)")
    except zlib.error as exc:
        raise AnswerCut(f"answer not decodable as {coding}: {exc}") from None
    finally:
        raw.release()
    content = bytes(body)
    response._cached_content = content
    return content


def read_some(raw: Any) -> bytes:
    """What a streamed answer (an HTTPSocketResponse) holds or next receives; b"" at its end.

    Unlike `readline`, returns as soon as any bytes are there and never waits for a line end,
    so the caller's decoder decides about lines (LF, CR, CRLF) and their size.
    """
    buffer = raw._body_buffer
    while not buffer:
        if raw.message_complete:
            return b""
        sock = raw._sock
        if sock is None:
            raise HTTPConnectionClosed("connection closed.")
        try:
            data = sock.recv(raw.block_size)
            raw.feed(data)
        except BaseException:
            raw.release()
            raise
        if not data and not raw.message_complete and not buffer:
            raw.release()
            raise HTTPConnectionClosed("connection closed before the end of the answer")
    chunk = bytes(buffer)
    del buffer[:]
    return chunk
