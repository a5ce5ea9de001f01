"""Chat streams: NDJSON typed events (`chats`, `chat_messages`, `agent_runs`, `delta`) and heartbeats.

The snapshot first (see `AgentRuntime.subscribe`), then each change as it happens; the stream
closes after the `chats` event that shows the run ended. While the run waits on a person
(approval), the stream stays open with heartbeats.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from harness.server.agents import AgentRuntime, Chat

NDJSON = "application/x-ndjson"
HEARTBEAT = b'{"type":"heartbeat"}\n'


class ChatStream:
    """One client's stream of one chat; iterate it for the bytes to send."""

    media_type = NDJSON

    def __init__(self, runtime: AgentRuntime, chat: Chat, heartbeat_interval: float) -> None:
        self.runtime, self.chat, self.heartbeat_interval = runtime, chat, heartbeat_interval

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[bytes]:
        lines, queue = self.runtime.subscribe(self.chat)
        yield b"".join(line + b"\n" for line in lines)
        if queue is None:
            return
        try:
            while True:
                try:
                    line = await asyncio.wait_for(queue.get(), self.heartbeat_interval)
                except TimeoutError:
                    yield HEARTBEAT
                    continue
                if line is None:
                    return
                yield line + b"\n"
        finally:
            self.runtime.unsubscribe(self.chat, queue)
