"""agent_chat: two-turn conversations with an agent, the first with a client tool round trip.

Turn one offers the client `calculator` and asks for 42 * 17 (the result is posted to
`POST /tools/{id}`, the answer must hold 714); turn two is a second message in the same chat.
Time to first delta, gap between deltas and turn latency: `agent.first_delta`,
`agent.delta_gap`, `agent.turn` (thresholds like `agent_chat:agent.first_delta.p99<2s`).

Run it (web UI on http://localhost:8089, or headless):

    export HARNESS_BASE_URL=http://127.0.0.1:8000 HARNESS_API_KEYS=inf_...
    locust -f locustfiles/agent_chat.py
    locust -f locustfiles/agent_chat.py --headless -u 10 -r 10 -t 60s

Every message (two per conversation) is a billable agent run on a real target (the `run` budget and --max-tasks).
Environment variables, exit codes and findings: locustfiles/README.md.
"""

from harness.suites.load.session import set_scenario
from harness.suites.load.users import AgentChatUser  # noqa: F401  (Locust runs the User classes it finds here)

set_scenario("agent_chat")
