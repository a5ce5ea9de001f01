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


class CutAnswer(httpx.ReadTimeout):
    """An answer whose head came but whose body did not, in time: a wrong answer, not a missing one."""


def unanswered(exc: BaseException) -> bool:
    """Whether a request's answer never came (a timeout before its head): indeterminate, not wrong.

    The harness's one rule: an answer that never came is counted as indeterminate, a wrong or cut
    answer is a finding (the lifecycle checker reads the same from `Observation.recv_ns`).
    """
    return isinstance(exc, httpx.TimeoutException) and not isinstance(exc, CutAnswer)


def bounded_request(client: httpx.Client, method: str, url: str, deadline_s: float, *,
                    cap: int = READ_CAP, **kwargs: object) -> httpx.Response:
    """`client.request`, with the whole answer in `deadline_s` and `cap` decoded bytes at most.

    The run's deadline (harness/net/deadline.py) is checked first and shortens `deadline_s`."""
    deadline.check_deadline()
    deadline_s = deadline.capped(deadline_s)
    try:
        return _read_within(client, method, url, deadline_s, cap, kwargs)
    except httpx.TimeoutException:
        # A wait the run's deadline cut short says nothing of the target: the suite stops there.
        deadline.check_deadline()
        raise


def _read_within(client: httpx.Client, method: str, url: str, deadline_s: float, cap: int,
                 kwargs: dict[str, object]) -> httpx.Response:
    end = time.monotonic() + deadline_s
    with client.stream(method, url, **kwargs) as response:  # type: ignore[arg-type]
        body = bytearray()
        try:
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > cap:
                    raise httpx.ReadError(f"the answer to {method} {url} passed {cap} bytes",
                                          request=response.request)
                if time.monotonic() > end:
                    raise CutAnswer(f"the answer to {method} {url} took more than {deadline_s:g} s",
                                    request=response.request)
        except httpx.TimeoutException as exc:
            if isinstance(exc, CutAnswer):
                raise
            # The head came, the body stalled: the answer is cut, not missing.
            raise CutAnswer(f"the body of the answer to {method} {url} stalled: {exc}",
                            request=response.request) from exc
        headers = [(k, v) for k, v in response.headers.items() if k.lower() != "content-encoding"]
        return httpx.Response(response.status_code, headers=headers, content=bytes(body),
                              request=response.request)
