"""stream_sse: run a task, then read its SSE stream (Accept: text/event-stream) to the end.

Run it (web UI on http://localhost:8089, or headless):

    export HARNESS_BASE_URL=http://127.0.0.1:8000 HARNESS_API_KEYS=inf_...
    locust -f locustfiles/stream_sse.py
    locust -f locustfiles/stream_sse.py --headless -u 10 -r 10 -t 60s

Environment (keys come only from the environment and are never logged or written):
  HARNESS_BASE_URL       target base URL (or Locust's --host); a non-loopback host must be
                         listed in HARNESS_ALLOW_HOSTS (load tests create billable tasks)
  HARNESS_API_KEYS       comma-separated keys, taken round-robin by the users
                         (else INFERENCE_API_KEY); with --worker, set it on every worker
  HARNESS_RATE_WINDOW    rate-limit window in seconds of a scaled test server
                         (default: contracts/limits.yaml, 60)
  HARNESS_DEADLINE       seconds a task may take before it counts as lost (default 60)
  HARNESS_MAX_TASKS      tasks the whole run may create, all processes together (default 500)
  HARNESS_ARRIVAL_RATE   open model: iterations per second (5, 5/s, 300/m); -u is the pool
  HARNESS_POLL_INTERVAL  seconds between polls (default from the read budget)
  HARNESS_THRESHOLDS     ';'-separated SLOs, e.g. "get_task.p95<200ms;errors<0.1%"
  HARNESS_LOAD_DIR       output folder (default reports/locust-<UTC time>)
  HARNESS_ALLOW_HOSTS    comma-separated non-loopback hosts that may be loaded

When a test stops, its history is checked (lifecycle invariants, rate limits, thresholds,
errors): findings are logged and written to <HARNESS_LOAD_DIR>/findings.json, and the exit
code is 1 (2 when the target was refused). Locust's own options work as usual (--csv,
--master/--worker, --processes, --stop-timeout ...).
"""

from harness.load.session import set_scenario
from harness.load.users import SseUser  # noqa: F401  (Locust runs the User classes it finds here)

set_scenario("stream_sse")
