"""Many open NDJSON task streams with heartbeats flowing: how late do the heartbeats arrive?

Method:
- The reference server runs as a real process (`harness.net.reference.reference_server`) with
  `--heartbeat 1` (and --speed 1), with enough keys that creating N tasks stays inside the
  run limit of the contract's own 60 s window (80 tasks per key; the window is not shortened).
- N `infsh/sleep` tasks of 3600 s are created over keep-alive connections (one per key); 16
  run on the cloud workers, the rest wait queued, and every one streams.
- N connections then send `GET /tasks/{id}/stream` with `Accept: application/x-ndjson`
  (an asyncio Protocol per connection on uvloop, parsing the HTTP/1.1 head, the chunked
  framing and the lines in `data_received`: no HTTP library, no task per stream; at most 100
  connections opening at a time). A stream counts as open once its first line (the snapshot)
  arrives. The soft RLIMIT_NOFILE is raised to the hard limit where needed (the client and
  the server each hold one socket per stream).
- For every heartbeat line, lag = (time since the previous line on that connection) - the
  heartbeat interval, timed on the client's monotonic clock when the chunk is read. The
  server times each heartbeat from its previous line, so on an idle loop the lag is ~0.
- "steady" figures count heartbeats whose previous line arrived after the last stream opened
  (until the end of the hold); "all" includes the opening phase. The client's own event-loop
  lag is sampled every 20 ms (reported for the hold and the opening separately) so a slow
  client can be told from a slow server, and the client's garbage collector is frozen during
  the hold for the same reason.
- The server is pinned to one CPU and the client to the other; the server's CPU share and
  RSS during the hold come from /proc.
"""

from __future__ import annotations

import asyncio
import gc
import json
import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import urlsplit

from benchmarks.common import (
    BenchmarkError,
    busy_share,
    core_ticks,
    cpu_layout,
    cpu_seconds,
    ms,
    percentile,
    pin,
    pinned_self,
    raise_nofile,
    rss_bytes,
)
from harness.net.reference import fresh_keys, reference_server

NAME = "streams"
GOAL_STREAMS = 10_000
GOAL_P99_MS = 250.0
HEARTBEAT_LINE = b'{"type":"heartbeat"}'


@dataclass
class Options:
    streams: int = 10_000
    hold_seconds: float = 12.0
    heartbeat: float = 1.0
    tasks_per_key: int = 80
    open_concurrency: int = 100
    sleep_seconds: int = 3600

    @classmethod
    def quick(cls) -> Options:
        return cls(streams=200, hold_seconds=4.0)


@dataclass
class Stream:
    key: str
    task_id: str
    opened_at: float | None = None
    last_line: float | None = None
    closed: bool = False
    error: str | None = None
    heartbeats: int = 0
    updates: int = 0

    @property
    def alive(self) -> bool:
        return self.opened_at is not None and not self.closed and self.error is None


@dataclass
class Shared:
    interval: float
    # (receive time, time the previous line was received, lag s) of every heartbeat
    lags: list[tuple[float, float, float]] = field(default_factory=list)


# -- raw HTTP/1.1 ---------------------------------------------------------------------------

async def _read_head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
    lines = head.split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return status, headers


async def _read_chunk(reader: asyncio.StreamReader) -> bytes | None:
    """One chunk of a chunked body; None at the last chunk."""
    size_line = await reader.readuntil(b"\r\n")
    size = int(size_line.split(b";", 1)[0].strip(), 16)
    if size == 0:
        await reader.readuntil(b"\r\n")
        return None
    data = await reader.readexactly(size + 2)
    return data[:size]


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    if "content-length" in headers:
        return await reader.readexactly(int(headers["content-length"]))
    parts = []
    while (chunk := await _read_chunk(reader)) is not None:
        parts.append(chunk)
    return b"".join(parts)


async def _create_tasks(host: str, port: int, key: str, count: int, seconds: int) -> list[str]:
    """POST /apps/run `count` times over one keep-alive connection."""
    body = json.dumps({"app": "infsh/sleep", "input": {"seconds": seconds}}).encode()
    request = (f"POST /apps/run HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {key}\r\n"
               f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
               ).encode("latin-1") + body
    reader, writer = await asyncio.open_connection(host, port)
    ids = []
    try:
        for _ in range(count):
            writer.write(request)
            status, headers = await _read_head(reader)
            payload = await _read_body(reader, headers)
            if status != 200:
                raise BenchmarkError(f"POST /apps/run answered {status}: {payload[:200]!r}")
            ids.append(str(json.loads(payload)["data"]["id"]))
    finally:
        writer.close()
    return ids


def _is_heartbeat(line: bytes) -> bool:
    if line == HEARTBEAT_LINE:
        return True
    if len(line) > 200:
        return False
    try:
        value = json.loads(line)
    except ValueError:
        return False
    return isinstance(value, dict) and value.get("type") == "heartbeat"


class _StreamReader(asyncio.Protocol):
    """One NDJSON stream read straight from the socket: the HTTP head, then chunked framing,
    then lines, all in `data_received` (no StreamReader, no task per stream), so one client
    process keeps up with 10,000 streams' heartbeats. A line is timed when its bytes arrive."""

    def __init__(self, stream: Stream, request: bytes, shared: Shared) -> None:
        self.stream, self.request, self.shared = stream, request, shared
        self.loop = asyncio.get_running_loop()
        self.opened: asyncio.Future[None] = self.loop.create_future()
        self.transport: asyncio.Transport | None = None
        self.head_done = False
        self.raw = bytearray()  # bytes not yet parsed (head or chunk framing)
        self.lines = bytearray()  # body bytes not yet split into lines
        self.chunk_left = 0  # body bytes (plus the chunk's CRLF) still due in the current chunk
        self.closing = False  # we closed it: not an error

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        self.raw += data
        try:
            if not self.head_done and not self._head():
                return
            self._chunks()
        except ValueError as exc:
            self._fail(f"{type(exc).__name__}: {exc}"[:120])
            return
        stream, shared = self.stream, self.shared
        lines = self.lines
        while (newline := lines.find(b"\n")) >= 0:
            line = bytes(lines[:newline])
            del lines[:newline + 1]
            if _is_heartbeat(line):
                stream.heartbeats += 1
                if stream.last_line is not None:
                    shared.lags.append((now, stream.last_line, now - stream.last_line - shared.interval))
            else:
                stream.updates += 1
            if stream.opened_at is None:
                stream.opened_at = now
                if not self.opened.done():
                    self.opened.set_result(None)
            stream.last_line = now

    def _head(self) -> bool:
        end = self.raw.find(b"\r\n\r\n")
        if end < 0:
            return False
        head = bytes(self.raw[:end]).decode("latin-1").split("\r\n")
        del self.raw[:end + 4]
        status = int(head[0].split(" ", 2)[1])
        headers = {name.strip().lower(): value.strip()
                   for name, sep, value in (line.partition(":") for line in head[1:]) if sep}
        if status != 200:
            raise ValueError(f"HTTP {status}")
        if headers.get("transfer-encoding", "").lower() != "chunked":
            raise ValueError("stream not chunked")
        self.head_done = True
        return True

    def _chunks(self) -> None:
        raw = self.raw
        while raw:
            if self.chunk_left:
                take = min(self.chunk_left, len(raw))
                self.lines += raw[:take]
                del raw[:take]
                self.chunk_left -= take
                if not self.chunk_left:
                    self.lines[-2:] = b""  # the CRLF after the chunk's data
                continue
            end = raw.find(b"\r\n")
            if end < 0:
                return
            size = int(bytes(raw[:end]).split(b";", 1)[0].strip(), 16)
            del raw[:end + 2]
            if size == 0:  # the last chunk: the server ended the stream
                self.stream.closed = True
                self._finish()
                return
            self.chunk_left = size + 2

    def _fail(self, error: str) -> None:
        self.stream.error = error
        self._finish()

    def _finish(self) -> None:
        if not self.opened.done():
            self.opened.set_result(None)
        if self.transport is not None:
            self.transport.close()

    def close(self) -> None:
        self.closing = True
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closing and not self.stream.closed and self.stream.error is None:
            self.stream.error = f"connection lost: {exc}"[:120] if exc else "connection closed"
        if not self.opened.done():
            self.opened.set_result(None)


async def _hold(stream: Stream, host: str, port: int, opening: asyncio.Semaphore,
                shared: Shared) -> _StreamReader | None:
    """Open one stream (at most `opening` at a time) and wait for its snapshot; the protocol
    reads the rest. Returns the protocol, to close at the end."""
    request = (f"GET /tasks/{stream.task_id}/stream HTTP/1.1\r\nHost: {host}:{port}\r\n"
               f"Authorization: Bearer {stream.key}\r\nAccept: application/x-ndjson\r\n\r\n"
               ).encode("latin-1")
    loop = asyncio.get_running_loop()
    try:
        async with opening:
            _, protocol = await loop.create_connection(
                lambda: _StreamReader(stream, request, shared), host, port)
            await protocol.opened
            return protocol
    except OSError as exc:
        stream.error = f"{type(exc).__name__}: {exc}"[:120]
        return None


async def _loop_lag(samples: list[tuple[float, float]], period: float = 0.02) -> None:
    while True:
        start = time.monotonic()
        await asyncio.sleep(period)
        samples.append((time.monotonic(), time.monotonic() - start - period))


def _lag_stats(lags: list[float]) -> dict[str, Any]:
    return {"n": len(lags), "p50_ms": ms(percentile(lags, 50)), "p90_ms": ms(percentile(lags, 90)),
            "p99_ms": ms(percentile(lags, 99)), "max_ms": ms(max(lags) if lags else None),
            "min_ms": ms(min(lags) if lags else None)}


async def _client(url: str, keys: list[str], options: Options, pid: int,
                  server_cpus: frozenset[int] | None) -> dict[str, Any]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    loop = asyncio.get_running_loop()

    started = time.monotonic()
    counts = [min(options.tasks_per_key, options.streams - i * options.tasks_per_key)
              for i in range(len(keys))]
    created = await asyncio.gather(*(_create_tasks(host, port, key, count, options.sleep_seconds)
                                     for key, count in zip(keys, counts, strict=True) if count > 0))
    create_seconds = time.monotonic() - started
    streams = [Stream(key, task_id) for key, ids in zip(keys, created, strict=False) for task_id in ids]
    print(f"  {NAME}: created {len(streams)} tasks in {create_seconds:.2f} s; opening streams",
          flush=True)

    shared = Shared(options.heartbeat)
    opening = asyncio.Semaphore(options.open_concurrency)
    loop_lags: list[tuple[float, float]] = []
    monitor = loop.create_task(_loop_lag(loop_lags))
    open_started = time.monotonic()
    readers = [loop.create_task(_hold(s, host, port, opening, shared)) for s in streams]
    await asyncio.wait(readers, timeout=120.0)
    all_open = time.monotonic()
    opened = sum(1 for s in streams if s.opened_at is not None)
    print(f"  {NAME}: {opened}/{len(streams)} streams open after {all_open - open_started:.2f} s; "
          f"holding {options.hold_seconds:g} s", flush=True)

    gc.collect()
    gc.freeze()
    gc.disable()
    cpu_before = cpu_seconds(pid)
    core_before = core_ticks(server_cpus)
    try:
        await asyncio.sleep(options.hold_seconds)
    finally:
        hold_end = time.monotonic()
        cpu_after = cpu_seconds(pid)
        core_busy = busy_share(core_before, core_ticks(server_cpus))
        rss = rss_bytes(pid)
        alive = sum(1 for s in streams if s.alive)
        monitor.cancel()
        for reader in readers:
            if not reader.done():
                reader.cancel()
            elif not reader.cancelled() and reader.exception() is None:
                protocol = reader.result()
                if protocol is not None:
                    protocol.close()
        await asyncio.gather(monitor, *readers, return_exceptions=True)
        gc.enable()
        gc.unfreeze()

    all_lags = [lag for _, _, lag in shared.lags]
    steady = [lag for t, previous, lag in shared.lags if previous >= all_open and t <= hold_end]
    client_steady = [lag for t, lag in loop_lags if t >= all_open]
    client_opening = [lag for t, lag in loop_lags if t < all_open]
    by_second: list[dict[str, Any]] = []
    for second in range(math.ceil(hold_end - open_started)):
        bucket = [lag for t, _, lag in shared.lags
                  if open_started + second <= t < open_started + second + 1]
        if bucket:
            by_second.append({"t_s": second, "n": len(bucket), "p99_ms": ms(percentile(bucket, 99)),
                              "max_ms": ms(max(bucket))})
    errors = Counter(s.error for s in streams if s.error)
    server_busy = ((cpu_after - cpu_before) / (hold_end - all_open)
                   if cpu_before is not None and cpu_after is not None and hold_end > all_open
                   else None)
    others = (max(0.0, core_busy - server_busy)
              if core_busy is not None and server_busy is not None else None)
    hold = hold_end - all_open
    return {
        "streams_requested": options.streams,
        "tasks_created": len(streams),
        "create_seconds": round(create_seconds, 3),
        "streams_opened": opened,
        "open_seconds": round(all_open - open_started, 3),
        "streams_open_at_end": alive,
        "streams_closed_by_server": sum(1 for s in streams if s.closed),
        "stream_errors": dict(errors.most_common(5)),
        "hold_seconds": round(hold, 3),
        "heartbeats_received": sum(s.heartbeats for s in streams),
        "update_lines_received": sum(s.updates for s in streams),
        "lag_steady": _lag_stats(steady),
        "lag_all": _lag_stats(all_lags),
        "lag_by_second": by_second,
        "client_loop_lag": {"p99_ms": ms(percentile(client_steady, 99)),
                            "max_ms": ms(max(client_steady) if client_steady else None),
                            "opening_p99_ms": ms(percentile(client_opening, 99)),
                            "opening_max_ms": ms(max(client_opening) if client_opening else None)},
        "server_cpu_busy": None if server_busy is None else round(server_busy, 3),
        "others_on_server_core": None if others is None else round(others, 3),
        "server_rss_mb": round(rss / 2**20, 1) if rss is not None else None,
    }


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop for the client when installed (the server runs on it too): cheaper per read."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def run(options: Options) -> dict[str, Any]:
    soft, _hard = raise_nofile(options.streams * 2 + 512)
    if soft != -1 and soft < options.streams + 256:
        raise BenchmarkError(f"RLIMIT_NOFILE is {soft}; {options.streams} streams need more")
    layout = cpu_layout()
    keys = fresh_keys(max(1, math.ceil(options.streams / options.tasks_per_key)))
    started = time.time()
    timeout = 60.0 + 60.0 + options.hold_seconds + 60.0
    with reference_server(keys=keys, speed=1.0,
                          extra_args=["--heartbeat", f"{options.heartbeat:g}"]) as ref:
        pin(ref.process.pid, layout.server)
        with pinned_self(layout.client):
            try:
                with asyncio.Runner(loop_factory=_loop_factory()) as runner:
                    figures = runner.run(asyncio.wait_for(
                        _client(ref.url, keys, options, ref.process.pid, layout.server), timeout))
            except TimeoutError as exc:
                raise BenchmarkError(f"streams benchmark exceeded {timeout:g} s") from exc
    steady = figures["lag_steady"]
    p99 = steady["p99_ms"]
    met = (options.streams >= GOAL_STREAMS and figures["streams_open_at_end"] >= GOAL_STREAMS
           and p99 is not None and p99 < GOAL_P99_MS)
    problems = []
    if figures["streams_open_at_end"] < options.streams:
        problems.append(f"only {figures['streams_open_at_end']} of {options.streams} streams open "
                        f"at the end; errors {figures['stream_errors']}")
    if not steady["n"]:
        problems.append("no heartbeat received in the steady phase")
    return {
        "benchmark": NAME,
        "title": "Open NDJSON streams with heartbeats: heartbeat lag",
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "valid": not problems,
        "problems": problems,
        "goal": {"metric": "streams_open_at_end and lag_steady.p99_ms",
                 "threshold": {"streams": GOAL_STREAMS, "p99_ms": GOAL_P99_MS},
                 "met": met, "note": None if options.streams >= GOAL_STREAMS
                 else f"only {options.streams} streams requested (--quick?): goal not assessed"},
        **figures,
        "config": {"streams": options.streams, "heartbeat_s": options.heartbeat,
                   "hold_seconds": options.hold_seconds, "keys": len(keys),
                   "tasks_per_key": options.tasks_per_key, "rate_window_s": "contract (60)",
                   "open_concurrency": options.open_concurrency,
                   "task": f"infsh/sleep seconds={options.sleep_seconds}, --speed 1",
                   "pinning": layout.describe(), "rlimit_nofile": soft},
        "method": [line.strip() for line in (__doc__ or "").split("\n- ")[1:]],
    }


def _verdict(goal: dict[str, Any]) -> str:
    if goal.get("note"):
        return "goal not assessed: fewer streams than the goal's"
    return "met" if goal.get("met") else "NOT met"


def markdown(result: dict[str, Any]) -> list[str]:
    steady = result.get("lag_steady", {})
    every = result.get("lag_all", {})
    goal = result.get("goal", {})
    cfg = result.get("config", {})
    loop_lag = result.get("client_loop_lag", {})
    return [
        f"| streams open at end | **{result.get('streams_open_at_end')}** of "
        f"{result.get('streams_requested')} (opened {result.get('streams_opened')} in "
        f"{result.get('open_seconds')} s; errors {result.get('stream_errors') or 'none'}) |",
        f"| heartbeat lag, steady (goal p99 < {GOAL_P99_MS:g} ms) | p50 {steady.get('p50_ms')} ms, "
        f"**p99 {steady.get('p99_ms')} ms**, max {steady.get('max_ms')} ms over {steady.get('n')} "
        f"heartbeats ({_verdict(goal)}) |",
        f"| heartbeat lag, incl. opening | p50 {every.get('p50_ms')} ms, p99 {every.get('p99_ms')} ms, "
        f"max {every.get('max_ms')} ms |",
        f"| client loop lag | hold: p99 {loop_lag.get('p99_ms')} ms, max {loop_lag.get('max_ms')} ms; "
        f"opening: p99 {loop_lag.get('opening_p99_ms')} ms, max {loop_lag.get('opening_max_ms')} ms |",
        f"| server during hold | CPU busy {result.get('server_cpu_busy')}, RSS "
        f"{result.get('server_rss_mb')} MB; other processes on its CPU "
        f"{result.get('others_on_server_core')} |",
        f"| setup | heartbeat {cfg.get('heartbeat_s')} s, hold {cfg.get('hold_seconds')} s, "
        f"{cfg.get('keys')} keys; {cfg.get('pinning')} |",
    ]
