"""The conformance checks: stable ids and the promise each one guards (docs/checks.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.findings import Severity

SUITE = "contract"

# Checks run by schemathesis (one id per schemathesis check that applies to this API).
SCHEMATHESIS_CHECKS: dict[str, str] = {
    "CT-SERVER-ERROR": "no request, valid or not, gets a 5xx answer (schemathesis not_a_server_error)",
    "CT-STATUS-CODE": "every status code is one the contract documents for the operation",
    "CT-CONTENT-TYPE": "every response has a Content-Type the contract documents for it",
    "CT-RESPONSE-HEADERS": "the headers the contract requires are present and valid",
    "CT-RESPONSE-SCHEMA": "every body matches the contract's schema for its status and media type",
    "CT-POSITIVE-REJECTED": "a request valid against the contract is not refused with 400/422",
    "CT-NEGATIVE-ACCEPTED": "a request that violates the contract is refused with a 4xx",
    "CT-IGNORED-AUTH": "operations that need a key refuse a request without one or with a wrong one (401)",
    "CT-USE-AFTER-FREE": "a deleted task is gone: reading it after DELETE answers 404",
    "CT-RESOURCE-AVAILABILITY": "a task is readable through the contract's links as soon as it is created",
    "CT-UNSUPPORTED-METHOD": "an undocumented method on a documented path answers 405 with an Allow header",
}

# Checks schemathesis lacks, run on every response the suite sees and by the suite's own probes.
PROJECT_CHECKS: dict[str, str] = {
    "CT-JSON-BODY": "a body whose Content-Type says JSON parses as JSON",
    "CT-ENVELOPE": "every 2xx JSON body is {\"success\": true, \"data\": ..., \"messages\": [...]}",
    "CT-PROBLEM": "every 4xx/5xx is application/problem+json with type, title, status, detail and error",
    "CT-PROBLEM-STATUS": "a problem body's `status` equals the HTTP status",
    "CT-RATE-HEADERS": "every keyed 2xx/4xx (not 401) carries well-formed X-RateLimit-Limit/-Remaining/"
                       "-Reset; a 429 also carries Retry-After",
    "CT-TASK-STATUS": "every task status is an integer code of the lifecycle in use",
    "CT-STREAM-MEDIA-TYPE": "a stream answers 200 with the negotiated media type (NDJSON for a missing or "
                            "*/* Accept), NDJSON without a charset parameter",
    "CT-STREAM-LINE": "every NDJSON line / SSE data is a JSON object matching StreamLine (ASCII-only, "
                      "SSE heartbeats as comments, increasing SSE ids)",
    "CT-STREAM-FIRST-SNAPSHOT": "the first event of a stream is a snapshot of the full task",
    "CT-STREAM-ORDER": "statuses on a stream never go back along the lifecycle",
    "CT-STREAM-AFTER-TERMINAL": "nothing follows the terminal update on a stream",
    "CT-STREAM-TERMINAL": "a stream delivers the terminal update within the deadline and the server closes "
                          "it right after",
    "CT-TRANSPORT": "the target answers every request with a complete HTTP response in time",
    "CT-RATE-LIMITED": "the paced conformance run never gets a 429 (a 429 is reported, not judged)",
    "CT-LIFECYCLE-DRIFT": "each status code means what the lifecycle in use says (--lifecycle)",
}

# Official-SDK hazards (WIRE.md sections 8, 15, 16): each finding says which client breaks and how.
SDK_CHECKS: dict[str, str] = {
    "CT-SDK-NDJSON-NON-JSON": "no non-JSON line in an NDJSON stream (JS rejects the whole run)",
    "CT-SDK-RAW-LINE-SEPARATOR": "no raw U+2028/U+2029/U+0085 in stream lines (Python requests splits "
                                 "and drops the line)",
    "CT-SDK-TERMINAL-WITHOUT-TASK": "the terminal update carries the full task in {data, fields} (Python "
                                    "builds the result from that line alone)",
    "CT-SDK-STATUS-TYPE": "status is a JSON integer, never a float or a string (Python reads 10.0 or "
                          "\"10\" as Unknown)",
    "CT-SDK-STREAM-CLOSED-EARLY": "a stream is never closed before its terminal update (JS run() hangs, "
                                  "Python burns reconnects)",
    "CT-SDK-UPLOAD-AUTH": "upload_url is absolute and takes a PUT without Authorization; uri downloads "
                          "without it (both SDKs upload without a key)",
}

CHECKS: dict[str, str] = {**SCHEMATHESIS_CHECKS, **PROJECT_CHECKS, **SDK_CHECKS}


@dataclass(frozen=True, slots=True)
class Issue:
    """One broken promise found by a rule, before it becomes a Finding.

    `key` groups repeats of the same problem (with `check` and the operation) so that a
    thousand identical answers make one finding with an occurrence count.
    """

    check: str
    message: str
    key: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)
    severity: Severity = "error"
    task_id: str | None = None
