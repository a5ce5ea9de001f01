"""`harness init`: a commented harness.toml to start a real target's configuration from."""

from __future__ import annotations

from harness.profile import ROLES

HEADER = '''# harness.toml: settings for `harness check`, the suite commands and `locust -f`. Each key
# is also a flag (--max-tasks) and a variable (HARNESS_MAX_TASKS), which override what is here;
# docs/configuration.md lists them all. Keys never go in this file: pass them with --api-key or
# HARNESS_API_KEYS / INFERENCE_API_KEY.

# base_url = "{base_url}"
# allow_hosts = ["{host}"]   # a non-loopback host the suites may create (billable) tasks on
# max_tasks = 500            # budget of billable runs for one run
# rate_window = 60           # the target's rate-limit window in seconds
# deadline = 60              # seconds a task may take before it counts as lost

# The target profile: which of your apps each suite runs. A check that needs a role you do not
# map is reported as skipped, with the reason. "$FILE" in an input becomes an uploaded file's URI.
# Optional keys per role: setup, infra ("cloud" | "private" | "private_first"), workers,
# expect_output (a JSON subset the output must contain); the agent role: agent_config.
'''

EXAMPLES = {
    "quick": 'app = "acme/echo@1.2.0"\ninput = { message = "hello" }',
    "slow": 'app = "acme/sleep"\ninput = { seconds = 30 }',
    "failing": 'app = "acme/echo"\ninput = { message = "" }',
    "invalid": 'app = "acme/echo"\ninput = { message = 12345 }',
    "file": 'app = "acme/thumbnail"\ninput = { image = "$FILE" }',
    "setup": 'app = "acme/flux"\nsetup = { model = "schnell" }\ninput = { prompt = "a lighthouse" }',
    "flow": 'app = "acme/caption-flow"\ninput = { message = "hi" }',
    "agent": 'app = "infsh/claude-sonnet-4@latest"\nagent_config = { system_prompt = "You help with math." }',
}

SUITE_TABLES = '''
# Suite options (each also a flag and a HARNESS_* variable of the same name):
# [load]
# scenarios = ["mixed"]      # run_wait, fire_and_forget_poll, stream_sse, upload, at_limit, ...
# users = 10
# duration = "30s"
# limit_groups = ["get", "upload"]   # leave out "run" on a real target: each slot is a billable task
# [ratelimit]
# groups = ["run", "get", "upload"]
# [lifecycle]
# tasks = 24
# [contract]
# max_examples = 20
'''

THRESHOLDS = '''
# SLO gates of the load suite (also --threshold):
# [thresholds]
# get_task = "p95<200ms"
# errors = "<0.1%"
'''


def config_template(base_url: str = "https://api.example.com") -> str:
    """The commented file: every setting, one [apps.<role>] table per role (commented out)."""
    host = base_url.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0]
    parts = [HEADER.format(base_url=base_url, host=host)]
    for role, what in ROLES.items():
        body = "\n".join(f"# {line}" for line in EXAMPLES[role].splitlines())
        parts.append(f"\n# [apps.{role}]   # {what}\n{body}\n")
    parts.append(SUITE_TABLES)
    parts.append(THRESHOLDS)
    return "".join(parts)
