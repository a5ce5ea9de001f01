"""Where a task ran: its `worker_id` against what its `infra` and `workers` allow.

The pools come from `GET /workers` (the cloud pool and the key's private workers) read just
before the run: `cloud` runs on a cloud worker, `private` on one of the key's own,
`private_first` on a free private worker when there is one (else cloud), and `workers` names
the only workers allowed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

INFRAS = frozenset(("cloud", "private", "private_first"))


@dataclass(frozen=True)
class WorkerView:
    """The workers a key saw: pool by id, and the ids not busy at the time."""

    pools: dict[str, str]
    free: frozenset[str]

    def free_private(self, allowed: Sequence[str] | None = None) -> list[str]:
        return sorted(w for w in self.free if self.pools.get(w) == "private"
                      and (allowed is None or w in allowed))


def worker_view(data: Any) -> WorkerView | None:
    """The view of a `GET /workers` answer's `data` (a list of workers); None if it is not one."""
    if not isinstance(data, list):
        return None
    pools: dict[str, str] = {}
    free: set[str] = set()
    for worker in data:
        if not isinstance(worker, dict) or not isinstance(worker.get("id"), str):
            return None
        pools[worker["id"]] = str(worker.get("pool"))
        if worker.get("busy") is False:
            free.add(worker["id"])
    return WorkerView(pools, frozenset(free))


def placement_problem(worker_id: Any, infra: Any, workers: Sequence[str] | None,
                      before: WorkerView) -> str | None:
    """What is wrong with where a task ran, or None. `before`: GET /workers just before the run."""
    infra = "cloud" if infra is None else infra
    if workers is not None and worker_id not in workers:
        return f"ran on worker {worker_id!r}, not one of the workers asked for {list(workers)[:5]}"
    pool = before.pools.get(worker_id)
    if pool is None:
        return f"ran on worker {worker_id!r}, which GET /workers does not list for this key"
    if infra == "cloud" and pool != "cloud":
        return f"infra cloud ran on the {pool} worker {worker_id!r}"
    if infra == "private" and pool != "private":
        return f"infra private ran on the {pool} worker {worker_id!r}, not one of the key's own"
    if infra == "private_first" and pool != "private":
        free = before.free_private(workers)
        if free:
            return (f"infra private_first ran on the {pool} worker {worker_id!r} while the key's "
                    f"private worker(s) {free[:3]} were free (GET /workers just before the run)")
    return None
