"""Request bodies read up to a cap: a client cannot make the server hold more than that."""

from __future__ import annotations

from starlette.requests import Request

from harness.server.problems import ApiError


def too_large(cap: int) -> ApiError:
    return ApiError(413, "payload_too_large", f"request body exceeds {cap} bytes")


async def read_capped(request: Request, cap: int) -> bytes:
    """The whole body, or a 413 as soon as it passes `cap` bytes (read chunk by chunk)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > cap:
        raise too_large(cap)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > cap:
            raise too_large(cap)
        chunks.append(chunk)
    return b"".join(chunks)
