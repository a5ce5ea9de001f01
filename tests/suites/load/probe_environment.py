"""A Locust environment with the harness's load session in library mode, for the probe scripts.

Imported by the probes after `monkey.patch_all()` (they run in their own processes).
"""

from __future__ import annotations

import tempfile
from typing import Any

from locust import events
from locust.env import Environment

from harness.suites.load.config import LoadConfig
from harness.suites.load.session import LoadSession, session_of
from harness.suites.load.users import ApiUser


def probe_environment(user: type[ApiUser], host: str) -> tuple[Environment, LoadSession]:
    """An environment whose runner and session are initialised as `harness load` would."""
    env = Environment(user_classes=[user], events=events, host=host)
    runner: Any = env.create_local_runner()
    session = session_of(env)
    session.library = True
    # A short window: a probe case answered 429 spends the budget, and the next waits for the
    # window to turn (with 1 s, four such waits were most of the probe's time).
    session.set_plan(LoadConfig(scenario="probe", base_url=host, window_s=0.1,
                                limits={"run": 100, "get": 1000, "upload": 50},
                                out_dir=tempfile.mkdtemp(), library=True))
    events.init.fire(environment=env, runner=runner, web_ui=None)
    return env, session
