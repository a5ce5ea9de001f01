"""uvicorn's httptools protocol with the guards uvicorn lacks: a header deadline and a header cap.

uvicorn arms its keep-alive timer only after a response, so a connection that sends nothing, or
never finishes its headers, stays open forever; httptools also takes headers of any size.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class HeadersTooLarge(Exception):
    """Raised inside the parser to stop it at the header cap."""


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """Close a connection whose request headers are not complete in time (408) or too big (431)."""

    header_timeout: float = 10.0
    max_header_bytes: int = 64 * 1024

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._awaiting_headers = True
        self._header_bytes = 0
        self._parsed_header_bytes = 0
        self._headers_too_large = False
        self._header_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        # Headers still incomplete are counted by the read: httptools buffers a header until it
        # ends, so a never-ending one is seen only here.
        if self._awaiting_headers:
            self._header_bytes += len(data)
        super().data_received(data)
        if (self._awaiting_headers and self._header_bytes > self.max_header_bytes
                and not self.transport.is_closing()):
            self._refuse(431, "Request Header Fields Too Large")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._awaiting_headers = True
        self._header_bytes = 0
        self._parsed_header_bytes = 0
        self._headers_too_large = False
        if self._header_deadline is None:
            self._arm_header_deadline()

    def on_url(self, url: bytes) -> None:
        self._count_parsed(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_parsed(len(name) + len(value) + 4)
        super().on_header(name, value)

    def _count_parsed(self, size: int) -> None:
        """Count headers that arrived whole in one read; past the cap, stop the parser."""
        self._parsed_header_bytes += size
        if self._parsed_header_bytes > self.max_header_bytes:
            self._headers_too_large = True
            raise HeadersTooLarge

    def send_400_response(self, msg: str) -> None:
        # uvicorn answers any parser error, ours included, with a 400.
        if self._headers_too_large:
            self._refuse(431, "Request Header Fields Too Large")
        else:
            super().send_400_response(msg)

    def on_headers_complete(self) -> None:
        self._awaiting_headers = False
        self._disarm_header_deadline()
        super().on_headers_complete()

    def _arm_header_deadline(self) -> None:
        self._header_deadline = self.loop.call_later(self.header_timeout, self._headers_late)

    def _disarm_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_late(self) -> None:
        self._header_deadline = None
        if self.transport.is_closing():
            return
        if self._header_bytes:
            self._refuse(408, "Request Timeout")
        else:
            self.transport.close()  # nothing was asked: nothing to answer

    def _refuse(self, status: int, reason: str) -> None:
        """Answer a plain-text error and close, as uvicorn does for a malformed request."""
        self._disarm_header_deadline()
        body = reason.encode()
        self.transport.write(
            f"HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain; charset=utf-8\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n".encode() + body)
        self.transport.close()


def guarded_protocol(header_timeout: float, max_header_bytes: int) -> type[GuardedHttpToolsProtocol]:
    """The protocol class with these limits (uvicorn builds one instance per connection)."""
    return type("GuardedHttpToolsProtocol", (GuardedHttpToolsProtocol,),
                {"header_timeout": header_timeout, "max_header_bytes": max_header_bytes})
