"""Named, opt-in bugs that make the reference server wrong on purpose.

Each fault exists to prove that some check of the harness catches it; the list is
documented in docs/faults.md.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from enum import StrEnum

from harness.server.encoding import dump


class Fault(StrEnum):
    """One fault; its value is the name `--fault` takes."""

    STATUS_REGRESSION = "status-regression"
    STREAM_WITHOUT_TERMINAL = "stream-without-terminal"
    EVENTS_AFTER_TERMINAL = "events-after-terminal"
    NO_RATE_LIMIT = "no-rate-limit"
    OVER_ADMIT = "over-admit"
    UNDER_ADMIT = "under-admit"
    REMAINING_NOT_COUNTING = "remaining-not-counting"
    COMPLETED_WITHOUT_OUTPUT = "completed-without-output"
    INVALID_KEY_ACCEPTED = "invalid-key-accepted"
    CROSS_KEY_READ = "cross-key-read"
    SERVER_ERROR_ON_INVALID_INPUT = "server-error-on-invalid-input"
    UPLOAD_BYTES_ALTERED = "upload-bytes-altered"
    RESET_IN_PAST = "reset-in-past"
    SHARED_BUCKET = "shared-bucket"
    RATE_LIMITED_SIDE_EFFECT = "rate-limited-side-effect"
    SLOW_READS = "slow-reads"
    FLOAT_STATUS = "float-status"
    CANCEL_IGNORED = "cancel-ignored"
    SPONTANEOUS_CANCEL = "spontaneous-cancel"
    LOST_TASK = "lost-task"
    DUPLICATE_ID = "duplicate-id"
    SETUP_ALWAYS = "setup-always"
    NO_HEARTBEATS = "no-heartbeats"
    RUN_STATUS_QUEUED = "run-status-queued"
    FAILED_WITHOUT_ERROR = "failed-without-error"
    NDJSON_COMMENT_HEARTBEAT = "ndjson-comment-heartbeat"
    RAW_LINE_SEPARATORS = "raw-line-separators"
    TERMINAL_WITHOUT_TASK = "terminal-without-task"
    STRING_STATUS = "string-status"
    UPLOAD_URL_REQUIRES_AUTH = "upload-url-requires-auth"
    PROBLEM_STATUS_MISMATCH = "problem-status-mismatch"
    NO_ENVELOPE = "no-envelope"
    MISSING_RATE_LIMIT_HEADERS = "missing-rate-limit-headers"
    NO_SNAPSHOT = "no-snapshot"
    STREAM_IGNORES_ACCEPT = "stream-ignores-accept"
    STREAM_STATUS_REGRESSION = "stream-status-regression"
    READ_AFTER_WRITE_DELAY = "read-after-write-delay"
    DELETE_KEEPS_TASK = "delete-keeps-task"
    NULL_FILENAME_REFUSED = "null-filename-refused"
    NEGATIVE_SIZE_ACCEPTED = "negative-size-accepted"
    STREAM_NOT_CLOSED = "stream-not-closed"
    UNKNOWN_TASK_GONE = "unknown-task-gone"
    ERRORS_AS_TEXT = "errors-as-text"
    NO_ALLOW_HEADER = "no-allow-header"
    LIMIT_HEADER_DOUBLED = "limit-header-doubled"
    REMAINING_ON_429 = "remaining-on-429"
    GROUPS_BLOCK_TOGETHER = "groups-block-together"
    SPARSE_RATE_HEADERS = "sparse-rate-headers"
    PENALTY_WINDOW = "penalty-window"
    PRIVATE_FIRST_TO_CLOUD = "private-first-to-cloud"
    STALLS = "stalls"
    # Agent chats (the AG- checks).
    RUN_REOPENED = "run-reopened"
    TOOL_RESULT_IGNORED = "tool-result-ignored"
    TOOL_REDISPATCH = "tool-redispatch"
    MESSAGES_REORDERED = "messages-reordered"
    DELTA_GAP = "delta-gap"
    CHAT_IDLE_MID_RUN = "chat-idle-mid-run"
    STOP_IGNORED = "stop-ignored"
    CHAT_CROSS_KEY = "chat-cross-key"
    APP_NOT_FOUND_AS_422 = "app-not-found-as-422"
    GENERIC_ERROR_TITLES = "generic-error-titles"
    UNANSWERED_READS = "unanswered-reads"
    HEARTBEATS_ONLY = "heartbeats-only"
    UNANSWERED_STREAMS = "unanswered-streams"
    AGENT_RUNS_FAIL = "agent-runs-fail"


FAULTS: dict[Fault, str] = {
    Fault.STATUS_REGRESSION: "GET /tasks/{id} shows the task's previous status on every second read.",
    Fault.STREAM_WITHOUT_TERMINAL:
        "Streams close after the last non-terminal update, without the terminal one.",
    Fault.EVENTS_AFTER_TERMINAL: "Streams send one more update after the terminal update before closing.",
    Fault.NO_RATE_LIMIT: "Limits are counted and reported in the headers but never enforced (no 429).",
    Fault.OVER_ADMIT: "Each rate-limit group admits limit+1 requests per window.",
    Fault.UNDER_ADMIT: "Each rate-limit group refuses from the limit-th request of a window (one early 429).",
    Fault.REMAINING_NOT_COUNTING: "X-RateLimit-Remaining stays at the limit instead of counting down.",
    Fault.COMPLETED_WITHOUT_OUTPUT: "Completed tasks carry output null.",
    Fault.INVALID_KEY_ACCEPTED: "Any bearer token, or none, is accepted (as an anonymous key).",
    Fault.CROSS_KEY_READ: "Tasks are readable and cancellable with any valid key, not only their owner's.",
    Fault.SERVER_ERROR_ON_INVALID_INPUT: "Input that fails validation answers 500 instead of 422.",
    Fault.UPLOAD_BYTES_ALTERED: "PUT to an upload URL stores the bytes with the last byte flipped.",
    Fault.RESET_IN_PAST: "X-RateLimit-Reset names the start of the window, a second already past.",
    Fault.SHARED_BUCKET: "All keys share one rate-limit bucket per group.",
    Fault.RATE_LIMITED_SIDE_EFFECT: "A 429 on POST /apps/run or POST /files still creates the task or file.",
    Fault.SLOW_READS: "GET /tasks/{id} and /status answer after an extra 50 ms.",
    Fault.FLOAT_STATUS: "Task status is sent as a JSON float (10.0), which the Python SDK reads as Unknown.",
    Fault.CANCEL_IGNORED: "POST /tasks/{id}/cancel answers 200 but the task runs on to its end.",
    Fault.SPONTANEOUS_CANCEL: "Every 4th task is cancelled by the server once it is running, unasked.",
    Fault.LOST_TASK: "Every 5th task stays Queued forever (until cancelled).",
    Fault.DUPLICATE_ID: "Every 7th run gets the id of the run before it.",
    Fault.SETUP_ALWAYS: "Workers forget their warmth: every run goes through Preparing, Serving, Setting Up.",
    Fault.NO_HEARTBEATS: "Streams send no heartbeats and no keep-alive updates, only real changes.",
    Fault.RUN_STATUS_QUEUED: "POST /apps/run answers the new task with status 2 (Queued) instead of 1.",
    Fault.FAILED_WITHOUT_ERROR: "Failed (and Rejected) tasks carry error null.",
    Fault.NDJSON_COMMENT_HEARTBEAT:
        "NDJSON streams open with a `: ping` comment line and use it as heartbeat.",
    Fault.RAW_LINE_SEPARATORS: "Stream lines are raw UTF-8 with charset=utf-8, and logs carry a raw U+2028.",
    Fault.TERMINAL_WITHOUT_TASK:
        "The terminal stream update carries only `{status}` instead of the full task.",
    Fault.STRING_STATUS: "Task status is sent as a numeric string (\"10\"), which both SDKs read as Unknown.",
    Fault.UPLOAD_URL_REQUIRES_AUTH:
        "PUT to an upload URL answers 401 unless it carries the owner's bearer key.",
    Fault.PROBLEM_STATUS_MISMATCH: "Problem bodies say `status: 400` whatever the HTTP status is.",
    Fault.NO_ENVELOPE: "2xx JSON bodies are bare DTOs, without the {success, data, messages} envelope.",
    Fault.MISSING_RATE_LIMIT_HEADERS:
        "Error answers (4xx) of keyed operations carry no X-RateLimit-* headers.",
    Fault.NO_SNAPSHOT: "Streams skip the snapshot on connect: the first line is the next change.",
    Fault.STREAM_IGNORES_ACCEPT:
        "Streams are always NDJSON, even when the client asks for text/event-stream.",
    Fault.STREAM_STATUS_REGRESSION:
        "Live streams repeat an earlier update after a later one (status goes back).",
    Fault.READ_AFTER_WRITE_DELAY: "GET /tasks/{id} answers 404 for the first 0.3 s of a task's life.",
    Fault.DELETE_KEEPS_TASK: "DELETE /tasks/{id} answers 204 but the task stays readable.",
    Fault.NULL_FILENAME_REFUSED: "POST /files refuses filename null with 422 (the Python SDK sends null).",
    Fault.NEGATIVE_SIZE_ACCEPTED: "POST /files accepts a negative declared size instead of refusing it.",
    Fault.STREAM_NOT_CLOSED:
        "Streams stay open after the terminal update, heartbeating until the client leaves.",
    Fault.UNKNOWN_TASK_GONE: "An unknown task id answers 410 Gone, a status the contract does not document.",
    Fault.ERRORS_AS_TEXT: "Error answers (4xx/5xx) are text/plain one-liners instead of problem+json.",
    Fault.NO_ALLOW_HEADER: "405 Method Not Allowed answers carry no Allow header.",
    Fault.LIMIT_HEADER_DOUBLED: "X-RateLimit-Limit says twice the limit the server enforces.",
    Fault.REMAINING_ON_429: "A 429 says X-RateLimit-Remaining 1 instead of 0.",
    Fault.GROUPS_BLOCK_TOGETHER: "Once one group of a key is exhausted, every group of that key answers 429 "
                                    "until the window ends.",
    Fault.SPARSE_RATE_HEADERS: "Every 10th admitted answer carries no X-RateLimit-* headers.",
    Fault.PENALTY_WINDOW:
        "A key refused with 429 in a group stays refused in that group for the next window.",
    Fault.PRIVATE_FIRST_TO_CLOUD:
        "infra private_first takes a free cloud worker even when one of the key's private workers is free.",
    Fault.STALLS: "Task reads stall: in the first second of every three, GET /tasks/{id} and its /status "
                  "answer only when the second ends (a hiccup a closed-model load test hides).",
    Fault.RUN_REOPENED: "An agent run that ended is shown working again once (an `agent_runs` event), "
                        "then ended again.",
    Fault.TOOL_RESULT_IGNORED: "A client tool's posted result is accepted but the next assistant "
                               "message answers without it.",
    Fault.TOOL_REDISPATCH: "After a client tool's result, the agent asks for the same call again under "
                           "a new invocation id (the client runs the tool twice).",
    Fault.MESSAGES_REORDERED: "GET /chats/{id} lists the chat's messages newest first.",
    Fault.DELTA_GAP: "Chat streams skip every third delta of a message (its final text has them all).",
    Fault.CHAT_IDLE_MID_RUN: "While a client tool awaits its result, the chat stream shows the run "
                             "`input_required` (the Python SDK stops reading there).",
    Fault.STOP_IGNORED: "POST /chats/{id}/stop answers 200 but the run goes on to its end.",
    Fault.CHAT_CROSS_KEY: "Chats and tool invocations are readable, streamable, stoppable and "
                          "answerable with any valid key.",
    Fault.APP_NOT_FOUND_AS_422:
        "A run naming an unknown app answers 422 validation_failed instead of 404 app_not_found.",
    Fault.GENERIC_ERROR_TITLES:
        "Problem titles are HTTP reason phrases (Unauthorized, Not Found, ...), not the documented ones.",
    Fault.UNANSWERED_READS:
        "Every 5th task read (GET /tasks/{id}, /status) never answers: it is held until the client leaves.",
    Fault.HEARTBEATS_ONLY:
        "Streams forward only status changes: no log updates, no keep-alive updates, heartbeats between.",
    Fault.UNANSWERED_STREAMS:
        "Every 2nd task stream never answers: no head, held until the client leaves.",
    Fault.AGENT_RUNS_FAIL:
        "Every agent run fails after its first words: the message ends failed, the run failed.",
}


class UnknownFault(ValueError):
    """A fault name that the server does not know."""


class Faults:
    """The set of faults switched on for one server."""

    def __init__(self, names: Iterable[str] = ()) -> None:
        names = list(names)
        unknown = [n for n in names if n not in FAULTS]
        if unknown:
            raise UnknownFault(f"unknown fault {unknown[0]!r}; known faults: {', '.join(sorted(FAULTS))}")
        self.names = frozenset(Fault(n) for n in names)

    def __contains__(self, fault: object) -> bool:
        # A misspelt name must fail loudly, not read as "off" and hide the fault it meant.
        if isinstance(fault, Fault) or (isinstance(fault, str) and fault in FAULTS):
            return fault in self.names
        raise UnknownFault(f"not a fault: {fault!r}")

    def __bool__(self) -> bool:
        return bool(self.names)


class StreamFaults:
    """The stream faults of one server as hooks at the fixed points of one task stream."""

    def __init__(self, faults: Faults) -> None:
        self._faults = faults
        self._replay = Fault.STREAM_STATUS_REGRESSION in faults
        self._previous: bytes | None = None

    def sse(self, wanted: bool) -> bool:
        """Whether SSE is sent when `wanted`: never with stream-ignores-accept."""
        return wanted and Fault.STREAM_IGNORES_ACCEPT not in self._faults

    def media_type(self, media: str) -> str:
        return media + "; charset=utf-8" if Fault.RAW_LINE_SEPARATORS in self._faults else media

    def recode(self, line: bytes) -> bytes:
        """raw-line-separators: the update as raw UTF-8 rather than escaped ASCII."""
        if Fault.RAW_LINE_SEPARATORS not in self._faults:
            return line
        return json.dumps(json.loads(line), separators=(",", ":"), ensure_ascii=False).encode("utf-8")

    def opening(self, sse: bool) -> bytes:
        """Bytes before the first update: a `: ping` comment with ndjson-comment-heartbeat."""
        return b": ping\n" if self._comment_heartbeat(sse) else b""

    def heartbeat(self, sse: bool, heartbeat: bytes) -> bytes:
        return b": ping\n" if self._comment_heartbeat(sse) else heartbeat

    def silent_when_idle(self) -> bool:
        """no-heartbeats: neither heartbeats nor keep-alive updates while the task is quiet."""
        return Fault.NO_HEARTBEATS in self._faults

    def keepalive_updates(self) -> bool:
        """Whether a quiet stream sends a non-heartbeat update each progress interval."""
        return Fault.HEARTBEATS_ONLY not in self._faults

    def drops(self, line: bytes) -> bool:
        """heartbeats-only: a change that is not a status change is not sent."""
        if Fault.HEARTBEATS_ONLY not in self._faults:
            return False
        return "status" not in json.loads(line).get("fields", [])

    def snapshot_fields(self, fields: list[str], terminal: bool) -> list[str] | None:
        """The `fields` of the snapshot on connect; None to send none (no-snapshot)."""
        if Fault.NO_SNAPSHOT not in self._faults:
            return fields
        return ["status"] if terminal else None

    def terminal(self, line: bytes, status: Callable[[], object]) -> bytes | None:
        """The terminal update as sent; None to close without it (stream-without-terminal)."""
        if Fault.STREAM_WITHOUT_TERMINAL in self._faults:
            return None
        if Fault.TERMINAL_WITHOUT_TASK in self._faults:
            return dump({"data": {"status": status()}, "fields": ["status"]})
        return line

    def after_terminal(self) -> list[list[str]]:
        """The `fields` of updates sent after the terminal one (events-after-terminal)."""
        return [["logs"]] if Fault.EVENTS_AFTER_TERMINAL in self._faults else []

    def stays_open(self) -> bool:
        """stream-not-closed: heartbeats after the terminal update until the client leaves."""
        return Fault.STREAM_NOT_CLOSED in self._faults

    def replay(self, sent: bytes) -> bytes | None:
        """stream-status-regression: once, the line before `sent` again (the snapshot or an
        earlier change: an older status); None the first time, when there is none before."""
        if not self._replay:
            return None
        previous, self._previous = self._previous, sent
        if previous is None:
            return None
        self._replay = False
        return previous

    def _comment_heartbeat(self, sse: bool) -> bool:
        return not sse and Fault.NDJSON_COMMENT_HEARTBEAT in self._faults
