"""stream_sse: run a task, then read its SSE stream (Accept: text/event-stream) to the end.

Run it (web UI on http://localhost:8089, or headless):

    export HARNESS_BASE_URL=http://127.0.0.1:8000 HARNESS_API_KEYS=inf_...
    locust -f locustfiles/stream_sse.py
    locust -f locustfiles/stream_sse.py --headless -u 10 -r 10 -t 60s

Environment variables, exit codes and findings: locustfiles/README.md.
"""

from harness.suites.load.session import set_scenario
from harness.suites.load.users import SseUser  # noqa: F401  (Locust runs the User classes it finds here)

set_scenario("stream_sse")
