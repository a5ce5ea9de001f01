"""A stream's inbox: the engine drops updates in, the stream waits for one or for its deadline."""

from __future__ import annotations

import asyncio
from collections import deque

# (task version, the update's JSON line, terminal?)
Update = tuple[int, bytes, bool]


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class Inbox:
    """Updates for one stream, in order.

    `next` waits with one future and one timer handle. `asyncio.wait_for(queue.get(), t)`
    made a task per wait and, on a heartbeat (the common case: a quiet task), cancelled it
    and raised twice; with 10,000 streams that was most of the server's time.
    """

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: deque[Update] = deque()
        self._waiter: asyncio.Future[None] | None = None

    def put_nowait(self, item: Update) -> None:
        self._items.append(item)
        if self._waiter is not None:
            _wake(self._waiter)

    async def next(self, timeout: float) -> Update | None:
        """The next update, or None once `timeout` seconds passed without one. A timeout of 0
        gives None after one turn of the loop, as wait_for did: the caller's keep-alive goes
        first, and a caller looping on it still lets the loop run."""
        if timeout <= 0:
            await asyncio.sleep(0)
            return None
        if not self._items:
            loop = asyncio.get_running_loop()
            waiter = self._waiter = loop.create_future()
            timer = loop.call_later(timeout, _wake, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
                self._waiter = None
            if not self._items:
                return None
        return self._items.popleft()
