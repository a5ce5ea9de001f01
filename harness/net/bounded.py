"""A request whose whole answer has a deadline and a size cap: a trickle or a flood is an error.

httpx's timeouts are per read, so a target that sends a byte every few seconds would hold a
plain request forever; and `.content` reads a body of any size into memory.
"""

from __future__ import annotations

import time

import httpx

from harness.net import deadline

READ_CAP = 16 * 2**20  # bytes of one answer the harness holds at most
ANSWER_DEADLINE_S = 30.0  # seconds for one whole answer (head and body), unless a caller says less
# Seconds a task stream may stay silent: twice the contract's longest heartbeat interval (15 s).
STREAM_IDLE_S = 30.0


def bounded_request(client: httpx.Client, method: str, url: str, deadline_s: float, *,
                    cap: int = READ_CAP, **kwargs: object) -> httpx.Response:
    """`client.request`, with the whole answer in `deadline_s` and `cap` decoded bytes at most.

    The run's deadline (harness/net/deadline.py) is checked first and shortens `deadline_s`."""
    deadline.check_deadline()
    deadline_s = deadline.capped(deadline_s)
    end = time.monotonic() + deadline_s
    with client.stream(method, url, **kwargs) as response:  # type: ignore[arg-type]
        body = bytearray()
        for chunk in response.iter_bytes():
            body += chunk
            if len(body) > cap:
                raise httpx.ReadError(f"the answer to {method} {url} passed {cap} bytes",
                                      request=response.request)
            if time.monotonic() > end:
                raise httpx.ReadTimeout(f"the answer to {method} {url} took more than {deadline_s:g} s",
                                        request=response.request)
        headers = [(k, v) for k, v in response.headers.items() if k.lower() != "content-encoding"]
        return httpx.Response(response.status_code, headers=headers, content=bytes(body),
                              request=response.request)
