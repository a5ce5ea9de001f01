"""The observation record, its one encoder, and the JSONL history store (write, read, merge)."""

from harness.history.store import (
    HISTORY_FILE,
    Channel,
    HistoryError,
    HistoryWriter,
    Observation,
    Outcome,
    StreamKind,
    now_ns,
    read_history,
    task_digest,
)

__all__ = ["HISTORY_FILE", "Channel", "HistoryError", "HistoryWriter", "Observation", "Outcome",
           "StreamKind", "now_ns", "read_history", "task_digest"]
