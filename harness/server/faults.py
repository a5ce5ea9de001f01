"""Named, opt-in bugs that make the reference server wrong on purpose.

Each fault exists to prove that some check of the harness catches it; the list is
documented in docs/faults.md.
"""

from __future__ import annotations

from collections.abc import Iterable

FAULTS: dict[str, str] = {
    "status-regression": "GET /tasks/{id} shows the task's previous status on every second read.",
    "stream-without-terminal": "Streams close after the last non-terminal update, without the terminal one.",
    "events-after-terminal": "Streams send one more update after the terminal update before closing.",
    "no-rate-limit": "Limits are counted and reported in the headers but never enforced (no 429).",
    "over-admit": "Each rate-limit group admits limit+1 requests per window.",
    "under-admit": "Each rate-limit group refuses from the limit-th request of a window (one early 429).",
    "remaining-not-counting": "X-RateLimit-Remaining stays at the limit instead of counting down.",
    "completed-without-output": "Completed tasks carry output null.",
    "invalid-key-accepted": "Any bearer token, or none, is accepted (as an anonymous key).",
    "cross-key-read": "Tasks are readable and cancellable with any valid key, not only their owner's.",
    "server-error-on-invalid-input": "Input that fails validation answers 500 instead of 422.",
    "upload-bytes-altered": "PUT to an upload URL stores the bytes with the last byte flipped.",
    "reset-in-past": "X-RateLimit-Reset names the start of the window, a second already past.",
    "shared-bucket": "All keys share one rate-limit bucket per group.",
    "rate-limited-side-effect": "A 429 on POST /apps/run or POST /files still creates the task or file.",
    "slow-reads": "GET /tasks/{id} and /status answer after an extra 50 ms.",
    "float-status": "Task status is sent as a JSON float (10.0), which the Python SDK reads as Unknown.",
    "cancel-ignored": "POST /tasks/{id}/cancel answers 200 but the task runs on to its end.",
    "spontaneous-cancel": "Every 4th task is cancelled by the server once it is running, unasked.",
    "lost-task": "Every 5th task stays Queued forever (until cancelled).",
    "duplicate-id": "Every 7th run gets the id of the run before it.",
    "setup-always": "Workers forget their warmth: every run goes through Preparing, Serving, Setting Up.",
    "no-heartbeats": "Streams send no heartbeats and no keep-alive updates, only real changes.",
    "run-status-queued": "POST /apps/run answers the new task with status 2 (Queued) instead of 1.",
    "failed-without-error": "Failed tasks carry error null.",
    "ndjson-comment-heartbeat": "NDJSON streams open with a `: ping` comment line and use it as heartbeat.",
    "raw-line-separators": "Stream lines are raw UTF-8 with charset=utf-8, and logs carry a raw U+2028.",
    "terminal-without-task": "The terminal stream update carries only `{status}` instead of the full task.",
    "string-status": "Task status is sent as a numeric string (\"10\"), which both SDKs read as Unknown.",
    "upload-url-requires-auth": "PUT to an upload URL answers 401 unless it carries the owner's bearer key.",
    "problem-status-mismatch": "Problem bodies say `status: 400` whatever the HTTP status is.",
    "no-envelope": "2xx JSON bodies are bare DTOs, without the {success, data, messages} envelope.",
    "missing-rate-limit-headers": "Error answers (4xx) of keyed operations carry no X-RateLimit-* headers.",
    "no-snapshot": "Streams skip the snapshot on connect: the first line is the next change.",
    "stream-ignores-accept": "Streams are always NDJSON, even when the client asks for text/event-stream.",
    "stream-status-regression": "Live streams repeat an earlier update after a later one (status goes back).",
    "read-after-write-delay": "GET /tasks/{id} answers 404 for the first 0.3 s of a task's life.",
    "delete-keeps-task": "DELETE /tasks/{id} answers 204 but the task stays readable.",
    "null-filename-refused": "POST /files refuses filename null with 422 (the Python SDK sends null).",
    "negative-size-accepted": "POST /files accepts a negative declared size instead of refusing it.",
    "stream-not-closed": "Streams stay open after the terminal update, heartbeating until the client leaves.",
    "unknown-task-gone": "An unknown task id answers 410 Gone, a status the contract does not document.",
    "errors-as-text": "Error answers (4xx/5xx) are text/plain one-liners instead of problem+json.",
    "no-allow-header": "405 Method Not Allowed answers carry no Allow header.",
    "limit-header-doubled": "X-RateLimit-Limit says twice the limit the server enforces.",
    "remaining-on-429": "A 429 says X-RateLimit-Remaining 1 instead of 0.",
    "groups-block-together": "Once one group of a key is exhausted, every group of that key answers 429 "
                             "until the window ends.",
    "sparse-rate-headers": "Every 10th admitted answer carries no X-RateLimit-* headers.",
    "penalty-window": "A key refused with 429 in a group stays refused in that group for the next window.",
}


class UnknownFault(ValueError):
    """A fault name that the server does not know."""


class Faults:
    """The set of faults switched on for one server."""

    def __init__(self, names: Iterable[str] = ()) -> None:
        names = list(names)
        unknown = [n for n in names if n not in FAULTS]
        if unknown:
            known = ", ".join(sorted(FAULTS))
            raise UnknownFault(f"unknown fault {unknown[0]!r}; known faults: {known}")
        self.names = frozenset(names)

    def __contains__(self, name: object) -> bool:
        return name in self.names

    def __bool__(self) -> bool:
        return bool(self.names)
