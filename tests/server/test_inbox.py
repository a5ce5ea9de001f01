"""A stream's inbox: updates in order, None at the deadline, and no busy loop on a zero wait."""

from __future__ import annotations

import asyncio
import resource

from harness.server.inbox import Inbox
from harness.server.serve import raise_open_files_limit


def test_updates_in_order_none_at_the_deadline_and_a_put_wakes_the_waiter() -> None:
    async def main() -> None:
        inbox = Inbox()
        inbox.put_nowait((1, b"a", False))
        inbox.put_nowait((2, b"b", True))
        assert await inbox.next(1.0) == (1, b"a", False)
        assert await inbox.next(1.0) == (2, b"b", True)
        loop = asyncio.get_running_loop()
        start = loop.time()
        assert await inbox.next(0.05) is None
        assert loop.time() - start >= 0.04
        loop.call_later(0.01, inbox.put_nowait, (3, b"c", False))
        assert await inbox.next(5.0) == (3, b"c", False)
        inbox.put_nowait((4, b"d", False))
        assert await inbox.next(0) is None  # a zero wait times out first, as wait_for did
        assert await inbox.next(0.01) == (4, b"d", False)

    asyncio.run(asyncio.wait_for(main(), 10))


def test_the_server_raises_its_open_files_limit_to_the_hard_limit() -> None:
    before = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        raise_open_files_limit()
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        assert soft == hard or hard == resource.RLIM_INFINITY
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, before)
