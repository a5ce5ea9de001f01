"""mixed: a blend by weight: run_wait 4, fire_and_forget_poll 3, stream_sse 2, upload 1.

Run it (web UI on http://localhost:8089, or headless):

    export HARNESS_BASE_URL=http://127.0.0.1:8000 HARNESS_API_KEYS=inf_...
    locust -f locustfiles/mixed.py
    locust -f locustfiles/mixed.py --headless -u 20 -r 10 -t 60s

Environment variables, exit codes and findings: locustfiles/README.md.
"""

from harness.suites.load.session import set_scenario
from harness.suites.load.users import PollUser, RunWaitUser, SseUser, UploadUser  # noqa: F401  (Locust runs these)

set_scenario("mixed")
