"""One pass over observations.jsonl into the compact aggregates the charts need.

Memory is bounded by the number of requests (17 bytes each, in typed arrays, not Python objects)
plus one small int-keyed entry per task and per (observer, task). Stream events count as one
request per connection (its first answer).
"""

from __future__ import annotations

import math
from array import array
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from harness.history import HistoryError, Observation, read_history

STREAM_CHANNELS = frozenset({"ndjson", "sse"})
CHANNEL_ORDER = ("run", "get", "status", "cancel", "delete", "list", "files", "upload", "download",
                 "ndjson", "sse", "agent_run", "chat")
# Answer classes for throughput; the index is what `HistoryStats.req_class` stores.
CLASSES = ("2xx", "3xx", "4xx", "429", "5xx", "no answer")
NO_ANSWER = CLASSES.index("no answer")


def answer_class(http: int | None, answered: bool) -> int:
    if http is None or not answered:
        return NO_ANSWER
    if http == 429:
        return 3
    if http >= 500:
        return 4
    if http >= 400:
        return 2
    return 1 if http >= 300 else 0


_LATEST_EPOCH_S = 2.0**32  # 2106: beyond it datetime and time_t give up on some platforms
_LONGEST_NS = 86_400 * 10**9
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1

@dataclass
class RateSeries:
    """X-RateLimit-Remaining as one key saw it in one group: (completion epoch s, remaining)."""

    times: array[float] = field(default_factory=lambda: array("d"))
    remaining: array[int] = field(default_factory=lambda: array("q"))


class HistoryStats:
    """Aggregates of a history, fed one observation at a time by `add`."""

    def __init__(self, terminal: Iterable[int] = ()) -> None:
        self.terminal = frozenset(terminal)
        self.observations = 0
        self.skipped = 0  # observations whose fields could not be used
        self.error: str | None = None  # why reading stopped early, if it did
        self.t_min = math.inf  # epoch seconds, earliest send
        self.t_max = -math.inf  # epoch seconds, latest completion
        self.channels: list[str] = []
        self._channel_codes: dict[str, int] = {}
        # One entry per request (a stream connection counts once).
        self.req_time: array[float] = array("d")  # completion (send when no answer), epoch s
        self.req_latency_ms: array[float] = array("d")  # NaN when no answer
        self.req_channel: array[int] = array("h")
        self.req_class: array[int] = array("b")
        self.rate: dict[tuple[str, str], RateSeries] = {}
        # 429s per limit group ("?" when the answer named none): Remaining is -1 when absent.
        self.r429: dict[str, RateSeries] = {}
        self.transitions: Counter[tuple[int, int]] = Counter()
        self.repeats = 0  # consecutive equal statuses (not drawn)
        self.odd_statuses = 0  # statuses that are not integers
        # Keyed by hash, not by the strings: a million (observer, task) pairs stay ~100 MB smaller,
        # and a collision (odds ~n^2/2^64) could at worst add one count to a chart.
        self._last: dict[int, int] = {}  # hash((observer, task)) -> last status
        self.run_sent: dict[int, int] = {}  # hash(task) -> earliest accepted run send_ns
        self.terminal_seen: dict[int, tuple[int, int]] = {}  # hash(task) -> (first recv_ns, status)

    def add(self, obs: Observation) -> None:
        self.observations += 1
        try:
            self._add(obs)
        except (TypeError, ValueError, OverflowError):
            self.skipped += 1

    def _add(self, obs: Observation) -> None:
        wall = float(obs.wall)
        # The target's answers and our own clocks are all the history holds: a time that no
        # calendar or chart can take (NaN, before 1970, after 2106) or a negative or day-long
        # latency is not plotted, and is counted as skipped.
        if not 0.0 <= wall < _LATEST_EPOCH_S:
            raise ValueError("wall clock out of range")
        recv = obs.recv_ns
        if recv is not None and (type(recv) is not int or type(obs.send_ns) is not int
                                 or not 0 <= recv - obs.send_ns < _LONGEST_NS):
            raise ValueError("latency out of range")
        latency_ns = recv - obs.send_ns if recv is not None else None
        done = wall + latency_ns / 1e9 if latency_ns is not None else wall
        if wall < self.t_min:
            self.t_min = wall
        if done > self.t_max:
            self.t_max = done
        channel = obs.channel
        http = obs.http if type(obs.http) is int and 0 <= obs.http <= 999 else None
        if channel not in STREAM_CHANNELS or obs.seq is None or obs.seq == 0:
            code = self._channel_codes.get(channel)
            if code is None:
                code = self._channel_codes[channel] = len(self.channels)
                self.channels.append(channel)
            klass = answer_class(http, latency_ns is not None)
            self.req_time.append(done)
            self.req_latency_ms.append(
                latency_ns / 1e6 if latency_ns is not None and klass != NO_ANSWER else math.nan)
            self.req_channel.append(code)
            self.req_class.append(klass)
            extra = obs.extra
            remaining = extra.get("rl_remaining") if extra else None
            if type(remaining) is not int or not _INT64_MIN <= remaining <= _INT64_MAX:
                remaining = None  # not an integer the typed arrays can hold: not charted
            group = str(extra.get("rl_group") or "?") if extra else "?"
            if remaining is not None:
                key = (group, str(obs.key or "-"))
                series = self.rate.get(key)
                if series is None:
                    series = self.rate[key] = RateSeries()
                series.times.append(done)
                series.remaining.append(remaining)
            if http == 429:
                rejected = self.r429.get(group)
                if rejected is None:
                    rejected = self.r429[group] = RateSeries()
                rejected.times.append(done)
                rejected.remaining.append(-1 if remaining is None else remaining)
        status = obs.status
        task = obs.task
        if status is None or task is None:
            return
        if type(status) is not int:
            self.odd_statuses += 1
            return
        pair_key = hash((obs.observer, task))
        previous = self._last.get(pair_key)
        if previous is not None:
            if previous != status:
                self.transitions[(previous, status)] += 1
            else:
                self.repeats += 1
        self._last[pair_key] = status
        if channel == "run" and http is not None and http < 300:
            task_key = hash(task)
            sent = self.run_sent.get(task_key)
            if sent is None or obs.send_ns < sent:
                self.run_sent[task_key] = obs.send_ns
        if status in self.terminal and recv is not None:
            task_key = hash(task)
            seen = self.terminal_seen.get(task_key)
            if seen is None or recv < seen[0]:
                self.terminal_seen[task_key] = (recv, status)

    @property
    def requests(self) -> int:
        return len(self.req_time)

    @property
    def rejected(self) -> int:
        """How many answers were 429."""
        return sum(len(series.times) for series in self.r429.values())

    def time_to_terminal(self) -> tuple[list[float], list[int], int]:
        """Seconds from each accepted run to its first terminal status, the statuses, and the
        number of accepted runs for which no terminal status was observed."""
        seconds: list[float] = []
        statuses: list[int] = []
        missing = 0
        for task, sent in self.run_sent.items():
            seen = self.terminal_seen.get(task)
            if seen is None:
                missing += 1
            elif seen[0] >= sent:
                seconds.append((seen[0] - sent) / 1e9)
                statuses.append(seen[1])
        return seconds, statuses, missing


def collect(path: Path | None, terminal: Iterable[int] = ()) -> HistoryStats:
    """Read a history file (absent: empty stats); a bad line stops reading and is noted."""
    stats = HistoryStats(terminal)
    if path is None or not path.is_file():
        return stats
    try:
        for obs in read_history(path):
            stats.add(obs)
    except HistoryError as exc:
        stats.error = str(exc)
    except (OSError, UnicodeDecodeError) as exc:
        stats.error = f"{type(exc).__name__}: {exc}"
    return stats
