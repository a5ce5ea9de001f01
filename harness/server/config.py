"""The settings of one reference server."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ServerConfig:
    """Everything `harness serve` can set."""

    keys: list[str]
    rate_window: float | None = None
    speed: float = 1.0
    # The agent runs' phases (thinking, server tools, writing); None: `speed`.
    agent_speed: float | None = None
    faults: list[str] = field(default_factory=list)
    heartbeat_interval: float = 10.0
    progress_interval: float = 20.0
    cloud_workers: int = 16
    private_workers: int = 2
    retention_seconds: float = 3600.0
    max_finished_tasks: int = 10_000
    # Admission: a run arriving while this many tasks wait for a worker (Received or Queued) is
    # created already ended, Rejected (13), with an error. None: every run is admitted.
    max_queued: int | None = None
    max_upload_bytes: int = 10 * 1024 * 1024
    max_files: int = 10_000
    max_stored_bytes: int = 256 * 1024 * 1024
    # One key past its quota loses its own oldest files, never another key's.
    max_files_per_key: int = 1000
    max_stored_bytes_per_key: int = 64 * 1024 * 1024
    max_files_per_request: int = 100
    # Connections: request headers must arrive within header_timeout seconds and fit in
    # max_header_bytes; an idle keep-alive connection closes after idle_timeout seconds.
    header_timeout: float = 10.0
    max_header_bytes: int = 64 * 1024
    idle_timeout: int = 5
    # A JSON body past this answers 413: the server reads it in chunks and stops at the cap.
    max_body_bytes: int = 1024 * 1024
    # A request body (JSON or upload) not all in within this many seconds, plus 1 s per MiB,
    # answers 408: a client dripping its body cannot hold a request open.
    body_timeout: float = 10.0  # seconds a request body may take to arrive, plus 1 s per MiB
    # New name -> a built-in app's name: the app answers only to the new name (a target whose
    # apps are not called infsh/*, to prove the harness's target profile).
    app_names: dict[str, str] = field(default_factory=dict)
