"""Request bodies read up to a cap and within a deadline: a client cannot make the server hold
more than the cap, nor hold a request open by sending its body a byte at a time.

The deadline scales with the body's size: `timeout_s` plus a second per MiB declared (or, with no
Content-Length, per MiB of the cap), so a large upload over a slow link still fits.
"""

from __future__ import annotations

import asyncio

from starlette.requests import Request

from harness.server.problems import ApiError

BODY_RATE = 1 << 20  # bytes a second a body may arrive at, at least, past the first timeout_s


def too_large(cap: int) -> ApiError:
    return ApiError(413, "payload_too_large", f"request body exceeds {cap} bytes")


def too_slow(deadline_s: float) -> ApiError:
    return ApiError(408, "request_timeout", f"request body not received within {deadline_s:.3g} s")


def body_deadline(declared: str, cap: int, timeout_s: float) -> float:
    """Seconds the whole body of a request declaring `declared` bytes may take to arrive."""
    size = min(int(declared), cap) if declared.isdigit() else cap
    return timeout_s + size / BODY_RATE


async def read_capped(request: Request, cap: int, timeout_s: float,
                      too_big: ApiError | None = None) -> bytes:
    """The whole body; a 413 (`too_big`) as soon as it passes `cap` bytes (read chunk by chunk),
    a 408 when it has not all arrived within its deadline."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > cap:
        raise too_big or too_large(cap)
    deadline_s = body_deadline(declared, cap, timeout_s)
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(deadline_s):
            async for chunk in request.stream():
                size += len(chunk)
                if size > cap:
                    raise too_big or too_large(cap)
                chunks.append(chunk)
    except TimeoutError:
        raise too_slow(deadline_s) from None
    return b"".join(chunks)
