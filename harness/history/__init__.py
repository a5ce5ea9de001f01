"""The observation record, its one encoder, and the JSONL history store (write, read, merge)."""

from harness.history.record import (
    RATE_LIMIT_FIELDS,
    Channel,
    Observation,
    Outcome,
    StreamKind,
    key_label,
    rate_limit_facts,
    task_digest,
)
from harness.history.store import (
    COMPRESSED_HISTORY_FILE,
    HISTORY_FILE,
    CheckedRecord,
    HistoryError,
    HistoryRecords,
    HistoryWriter,
    ObservationRecord,
    compress_history,
    history_in,
    read_history,
    read_records,
    worker_history_file,
)

__all__ = ["COMPRESSED_HISTORY_FILE", "HISTORY_FILE", "RATE_LIMIT_FIELDS", "Channel", "CheckedRecord",
           "HistoryError", "HistoryRecords", "HistoryWriter", "Observation", "ObservationRecord", "Outcome",
           "StreamKind", "compress_history", "history_in", "key_label", "rate_limit_facts", "read_history",
           "read_records", "task_digest", "worker_history_file"]
