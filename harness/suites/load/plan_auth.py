"""A secret shared by a load master and its workers: the master signs each plan, a worker that
has the secret runs only a plan signed with it.

Locust's master port (ZeroMQ) has no authentication: anyone who reaches it can act as a master
and send plans. With `HARNESS_MASTER_TOKEN` set on both sides, the master sends an HMAC of the
plan with it (never the token), and a worker with a token refuses any plan without the right
HMAC. It authenticates plans; it encrypts nothing, so keep the port on a private network.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping

TOKEN_ENV = "HARNESS_MASTER_TOKEN"


def master_token(env: Mapping[str, str] | None = None) -> str:
    """The shared secret of this machine ("" when none is set)."""
    return (os.environ if env is None else env).get(TOKEN_ENV, "").strip()


def sign(plan: str, token: str) -> str:
    """The plan's HMAC-SHA256 with the token, hex."""
    return hmac.new(token.encode(), plan.encode(), hashlib.sha256).hexdigest()


def plan_refusal(plan: str | None, mac: object, token: str) -> str | None:
    """Why a worker holding `token` must not run `plan` (signed `mac`), or None."""
    if not token:
        return None  # this worker asked for no proof
    if not plan or not isinstance(mac, str) or not mac:
        return f"the master sent no plan signed with {TOKEN_ENV} (this worker has one set)"
    if not hmac.compare_digest(mac, sign(plan, token)):
        return f"the master's plan is not signed with this worker's {TOKEN_ENV}"
    return None
