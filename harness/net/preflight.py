"""Before any suite: is this the API we were told, and does it take our keys?"""

from __future__ import annotations

from urllib.parse import quote

import httpx

from harness.checks.envelope import envelope_gaps
from harness.net.bounded import bounded_request
from harness.net.client import response_data
from harness.net.tls import policy
from harness.profile import Profile

# A read in the `get` group: cheap, creates nothing, and needs a valid key.
PROBE_PATH = "/tasks?limit=1"
READ_CAP = 1 << 20


class PreflightError(Exception):
    """The target cannot be tested as configured; `unreachable` tells exit 3 from exit 2."""

    def __init__(self, message: str, unreachable: bool = False) -> None:
        super().__init__(message)
        self.unreachable = unreachable


def preflight(base_url: str, keys: list[str], timeout_s: float = 10.0) -> None:
    """Raise PreflightError unless the target answers and accepts every key with the envelope."""
    with httpx.Client(timeout=timeout_s, follow_redirects=False, verify=policy().context()) as client:
        for index, key in enumerate(keys, 1):
            try:
                response = bounded_request(client, "GET", base_url + PROBE_PATH, timeout_s, cap=READ_CAP,
                                           headers={"Authorization": f"Bearer {key}"})
            except httpx.HTTPError as exc:
                raise PreflightError(f"target {base_url} unreachable: {type(exc).__name__}: {exc}",
                                     unreachable=True) from exc
            which = f"API key #{index}" if len(keys) > 1 else "the API key"
            if response.status_code in (401, 403):
                raise PreflightError(f"the target refused {which} (HTTP {response.status_code} on "
                                     f"GET {PROBE_PATH}): check --api-key / HARNESS_API_KEYS")
            if response.status_code != 200:
                raise PreflightError(f"GET {PROBE_PATH} with {which} answered HTTP {response.status_code}, "
                                     "not 200: is the base URL the API's root?")
            try:
                body = response.json()
            except ValueError:
                body = None
            gaps = ["the body is not JSON"] if body is None else envelope_gaps(body)
            if gaps:
                raise PreflightError(f"GET {PROBE_PATH} is not answered with the contract's "
                                     f"{{success, data, messages}} envelope ({'; '.join(gaps)}): is "
                                     "the base URL the API's root?")


# Roles whose app preflight runs (and cancels, for `slow`); `file` needs an upload first and
# `invalid` must be refused: both are judged by the suites themselves.
RUN_ROLES = ("quick", "failing", "setup", "flow", "slow")


def preflight_apps(base_url: str, key: str, profile: Profile, budget: int,
                   timeout_s: float = 10.0) -> int:
    """Run each mapped app once: a missing app or a refused input is PreflightError naming the
    roles. Returns the tasks created (they count against the budget, which must hold them all)."""
    roles = [role for role in RUN_ROLES if profile.get(role) is not None]
    if len(roles) >= budget:
        raise PreflightError(f"the task budget (--max-tasks {budget}) cannot hold the {len(roles)} "
                             "preflight runs of the mapped apps and any suite run")
    created = 0
    problems: list[str] = []
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(timeout=timeout_s, follow_redirects=False, headers=headers,
                      verify=policy().context()) as client:
        for role in roles:
            app = profile.get(role)
            assert app is not None
            try:
                response = bounded_request(client, "POST", base_url + "/apps/run", timeout_s, cap=READ_CAP,
                                           json=app.body())
            except httpx.HTTPError as exc:
                raise PreflightError(f"POST /apps/run failed: {type(exc).__name__}: {exc}",
                                     unreachable=True) from exc
            if 200 <= response.status_code < 300:
                created += 1
                task = response_data(response)
                if role == "slow" and isinstance(task, dict) and isinstance(task.get("id"), str):
                    try:  # best effort: the task is billed either way
                        bounded_request(client, "POST", f"{base_url}/tasks/{quote(task['id'], safe='')}"
                                        "/cancel", timeout_s, cap=READ_CAP)
                    except httpx.HTTPError:
                        pass
            elif response.status_code == 404:
                problems.append(f"{role}: the target has no app {app.app!r}")
            elif response.status_code == 422:
                problems.append(f"{role}: {app.app!r} refused the input {app.input!r}")
            elif response.status_code != 429:
                problems.append(f"{role}: {app.app!r} answered HTTP {response.status_code}")
    if problems:
        hint = ("map the target's own apps in [apps.<role>] tables of harness.toml (see `harness "
                "init`)" if profile.builtin else "fix the [apps.<role>] tables")
        raise PreflightError(f"the apps the suites would run are not usable: {'; '.join(problems)}; {hint}")
    return created
