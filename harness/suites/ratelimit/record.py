"""The suite's exchanges written to the run's history, through the one observation encoder."""

from __future__ import annotations

from pathlib import Path

from harness.checks.ratelimit import (
    Exchange,
)
from harness.history import Channel, HistoryWriter, Observation, rate_limit_facts
from harness.suites.ratelimit.session import Session, exchange_data


def write_history(session: Session, path: Path) -> None:
    names = session.names
    fields = (("rl_remaining", names.remaining), ("rl_limit", names.limit), ("rl_reset", names.reset),
              ("retry_after", names.retry_after))
    with HistoryWriter(path) as history:
        for x in session.exchanges:
            extra = rate_limit_facts(x.header, x.group, fields)
            extra.update(rl_role=x.role, rl_req=x.idx)
            if x.follows:
                extra["rl_follows"] = list(x.follows)
            if x.error:
                extra["error"] = x.error
            if x.admitted and x.group in ("run", "upload") and x.role != "verify":
                data = exchange_data(x)
                item = data[0] if isinstance(data, list) and data else data
                if isinstance(item, dict) and "id" in item:
                    extra["rl_task" if x.group == "run" else "rl_file"] = str(item["id"])
            timed_out = x.error is not None and "timed out" in x.error.lower()
            history.append(Observation(
                None, x.observer, channel_of(x), x.send_ns, x.done_ns if x.answered else None, x.wall,
                http=x.http, outcome="ok" if x.answered else "timeout" if timed_out else "error",
                key=x.key, extra=extra))


def channel_of(x: Exchange) -> Channel:
    if x.method == "POST" and x.path.startswith("/apps/run"):
        return "run"
    if x.method == "POST" and x.path.startswith("/files"):
        return "files"
    if x.path.startswith("/tasks/"):
        return "get"
    return "list"
