"""A simulator of correct histories: tasks walk the lifecycle, observers sample it linearizably."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from harness.contract import Lifecycle
from harness.history import Observation

MS = 1_000_000


@dataclass
class SimTask:
    id: str
    path: list[int]
    times: list[int]  # when each status of `path` took effect (ns)
    run_send: int
    cancel_send: int | None = None
    observations: list[Observation] = field(default_factory=list)

    def status_at(self, t: int) -> int:
        status = self.path[0]
        for s, at in zip(self.path, self.times, strict=True):
            if at <= t:
                status = s
        return status

    @property
    def end(self) -> int:
        return self.times[-1]


def walk(lc: Lifecycle, rng: random.Random, cancelled: bool) -> list[int]:
    """A path from Received to a terminal status along allowed edges."""
    if rng.random() < 0.05:
        return [lc.rejected] if lc.rejected is not None else [lc.initial[0]]
    path = [lc.initial[0]]
    while not lc.is_terminal(path[-1]):
        options = [s for s in lc.transitions[path[-1]]]
        cancel_edges = [s for s in options if s in (lc.cancelling, lc.cancelled)]
        if cancelled and cancel_edges and rng.random() < 0.3:
            path.append(rng.choice(cancel_edges))
            continue
        normal = [s for s in options if s not in (lc.cancelling, lc.cancelled)] or options
        path.append(rng.choice(normal))
    return path


def _digest(lc: Lifecycle, status: int) -> dict[str, object]:
    return {"status": status, "output": status == lc.completed,
            "error": status in (lc.failed, lc.rejected)}


def simulate(lc: Lifecycle, seed: int, tasks: int, observers: int, streams: int) -> list[Observation]:
    """A history with no anomaly, in append (receive-time) order."""
    rng = random.Random(seed)
    out: list[Observation] = []
    sims: list[SimTask] = []
    for index in range(tasks):
        start = rng.randint(0, 50) * MS
        path = walk(lc, rng, cancelled=rng.random() < 0.3)
        times = [start + MS]
        for _ in path[1:]:
            times.append(times[-1] + rng.randint(1, 20) * MS)
        task = SimTask(f"t{index}", path, times, start)
        if any(s in (lc.cancelling, lc.cancelled) for s in path):
            first = next(i for i, s in enumerate(path) if s in (lc.cancelling, lc.cancelled))
            task.cancel_send = times[first] - rng.randint(0, max(0, times[first] - times[first - 1])) \
                if first else times[0]
            # The cancel is answered once it took effect.
            out.append(Observation(task.id, "canceller", "cancel", task.cancel_send,
                                   times[first] + MS // 2, 0.0, http=200,
                                   **_digest(lc, path[first])))  # type: ignore[arg-type]
        out.append(Observation(task.id, "runner", "run", start, times[0] + MS // 10, 0.0, http=200,
                               extra={"deadline_s": 10.0}, **_digest(lc, path[0])))  # type: ignore[arg-type]
        sims.append(task)
    for o in range(observers):
        clock = rng.randint(0, 5) * MS
        for task in rng.sample(sims, len(sims)):
            clock = max(clock, task.run_send + MS)
            while True:
                send = clock
                recv = send + rng.randint(1, 6) * MS
                point = rng.randint(send, recv)
                status = task.status_at(point)
                out.append(Observation(task.id, f"o{o}", rng.choice(["get", "status"]), send, recv, 0.0,
                                       http=200, **_digest(lc, status)))  # type: ignore[arg-type]
                clock = recv + rng.randint(0, 8) * MS
                if lc.is_terminal(status) and rng.random() < 0.6:
                    break
    for s in range(streams):
        task = rng.choice(sims)
        conn_send = task.run_send + rng.randint(1, 40) * MS
        opened = conn_send + MS
        conn = f"s{s}"
        seq = 0
        snapshot = task.status_at(opened)
        out.append(Observation(task.id, "streamer", "ndjson", conn_send, opened + 1, 0.0, http=200,
                               conn=conn, seq=seq, kind="update", **_digest(lc, snapshot)))  # type: ignore[arg-type]
        last = opened + 1
        if not lc.is_terminal(snapshot):
            for status, at in zip(task.path, task.times, strict=True):
                if at <= opened:
                    continue
                if rng.random() < 0.5:
                    seq += 1
                    out.append(Observation(task.id, "streamer", "ndjson", conn_send, (last + at) // 2, 0.0,
                                           http=200, conn=conn, seq=seq, kind="heartbeat"))
                seq += 1
                out.append(Observation(task.id, "streamer", "ndjson", conn_send, at + 2, 0.0, http=200,
                                       conn=conn, seq=seq, kind="update", **_digest(lc, status)))  # type: ignore[arg-type]
                last = at + 2
        seq += 1
        out.append(Observation(task.id, "streamer", "ndjson", conn_send, last + 3, 0.0, http=200,
                               conn=conn, seq=seq, kind="close"))
    out.sort(key=lambda obs: obs.recv_ns or 0)
    return out
