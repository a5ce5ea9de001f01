"""Every suite, in run order. The runner and the CLI know suites only through this table."""

from __future__ import annotations

from harness.suites import agents, contract, lifecycle, load, ratelimit, smoke
from harness.suites.base import Suite

# The rate-limit suite spends whole windows of budget, so it goes last.
SUITES: dict[str, Suite] = {suite.name: suite for suite in (
    contract.SUITE, smoke.SUITE, agents.SUITE, lifecycle.SUITE, load.SUITE, ratelimit.SUITE)}
