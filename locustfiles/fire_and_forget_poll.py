"""fire_and_forget_poll: run a task, then poll GET /tasks/{id}/status at an interval (a full
GET /tasks/{id} on each change, as the JS SDK does) until a terminal status.

Run it (web UI on http://localhost:8089, or headless):

    export HARNESS_BASE_URL=http://127.0.0.1:8000 HARNESS_API_KEYS=inf_...
    locust -f locustfiles/fire_and_forget_poll.py
    locust -f locustfiles/fire_and_forget_poll.py --headless -u 10 -r 10 -t 60s

Environment variables, exit codes and findings: locustfiles/README.md.
"""

from harness.suites.load.session import set_scenario
from harness.suites.load.users import PollUser  # noqa: F401  (Locust runs the User classes it finds here)

set_scenario("fire_and_forget_poll")
