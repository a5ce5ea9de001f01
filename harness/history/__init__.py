"""The observation record, its one encoder, and the JSONL history store (write, read, merge)."""

from harness.history.record import (
    RATE_LIMIT_FIELDS,
    Channel,
    Observation,
    Outcome,
    StreamKind,
    rate_limit_facts,
    task_digest,
)
from harness.history.store import HISTORY_FILE, HistoryError, HistoryWriter, read_history, worker_history_file

__all__ = ["HISTORY_FILE", "RATE_LIMIT_FIELDS", "Channel", "HistoryError", "HistoryWriter", "Observation",
           "Outcome", "StreamKind", "rate_limit_facts", "read_history", "task_digest", "worker_history_file"]
