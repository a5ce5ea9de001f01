"""agent_chat: send an agent a message, read the chat stream to its end, GET the chat.

Run it (web UI on http://localhost:8089, or headless):

    export HARNESS_BASE_URL=http://127.0.0.1:8000 HARNESS_API_KEYS=inf_...
    locust -f locustfiles/agent_chat.py
    locust -f locustfiles/agent_chat.py --headless -u 10 -r 10 -t 60s

Every message is a billable agent run on a real target (the `run` budget and --max-tasks).
Environment variables, exit codes and findings: locustfiles/README.md.
"""

from harness.suites.load.session import set_scenario
from harness.suites.load.users import AgentChatUser  # noqa: F401  (Locust runs the User classes it finds here)

set_scenario("agent_chat")
