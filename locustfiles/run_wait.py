"""run_wait: run a task, then read its NDJSON stream to the terminal update (then GET it once).

Run it (web UI on http://localhost:8089, or headless):

    export HARNESS_BASE_URL=http://127.0.0.1:8000 HARNESS_API_KEYS=inf_...
    locust -f locustfiles/run_wait.py
    locust -f locustfiles/run_wait.py --headless -u 10 -r 10 -t 60s

Environment variables, exit codes and findings: locustfiles/README.md.
"""

from harness.suites.load.session import set_scenario
from harness.suites.load.users import RunWaitUser  # noqa: F401  (Locust runs the User classes it finds here)

set_scenario("run_wait")
