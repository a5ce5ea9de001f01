"""A scaled phase of the reference server that a cancel or a stop cuts short."""

from __future__ import annotations

import asyncio


async def sleep_unless(event: asyncio.Event, seconds: float) -> bool:
    """Sleep `seconds`, waking early when `event` is set; True if it was set (before or during)."""
    if event.is_set():
        return True
    try:
        await asyncio.wait_for(event.wait(), seconds)
    except TimeoutError:
        # wait_for yields once more after its timeout fires: the event can be set right there.
        return event.is_set()
    return True
