"""Before any suite: is this the API we were told, and does it take our keys?"""

from __future__ import annotations

import httpx

from harness.checks.envelope import envelope_gaps

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
    with httpx.Client(timeout=timeout_s, follow_redirects=False) as client:
        for index, key in enumerate(keys, 1):
            try:
                response = client.get(base_url + PROBE_PATH, headers={"Authorization": f"Bearer {key}"})
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
                body = response.json() if len(response.content) <= READ_CAP else None
            except ValueError:
                body = None
            gaps = ["the body is not JSON"] if body is None else envelope_gaps(body)
            if gaps:
                raise PreflightError(f"GET {PROBE_PATH} is not answered with the contract's "
                                     f"{{success, data, messages}} envelope ({'; '.join(gaps)}): is "
                                     "the base URL the API's root?")
