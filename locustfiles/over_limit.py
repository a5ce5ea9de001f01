"""over_limit: every key sends twice its documented budget per window; the excess must
be refused with 429 (problem body, Retry-After, Remaining 0, consistent Reset), never more
than the limit admitted, no early 429, and nothing else. Needs about 4 users per key x
group lane and a run of at least two windows.

Run it (web UI on http://localhost:8089, or headless):

    export HARNESS_BASE_URL=http://127.0.0.1:8000 HARNESS_API_KEYS=inf_...
    locust -f locustfiles/over_limit.py
    locust -f locustfiles/over_limit.py --headless -u 24 -r 24 -t 150s

Environment variables, exit codes and findings: locustfiles/README.md.
"""

from harness.suites.load.session import set_scenario
from harness.suites.load.users import OverLimitUser  # noqa: F401  (Locust runs the User classes it finds here)

set_scenario("over_limit")
