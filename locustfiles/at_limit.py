"""at_limit: every key sends exactly its documented budget per window (run 100, get
1000, upload 50 per window), evenly spread from the next window boundary; no 429 may
come back. Needs enough users for every key x group lane (about 2 per lane) and a run
of at least two windows.

Run it (web UI on http://localhost:8089, or headless):

    export HARNESS_BASE_URL=http://127.0.0.1:8000 HARNESS_API_KEYS=inf_...
    locust -f locustfiles/at_limit.py
    locust -f locustfiles/at_limit.py --headless -u 12 -r 12 -t 150s

Environment variables, exit codes and findings: locustfiles/README.md.
"""

from harness.suites.load.session import set_scenario
from harness.suites.load.users import AtLimitUser  # noqa: F401  (Locust runs the User classes it finds here)

set_scenario("at_limit")
