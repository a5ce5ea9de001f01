"""`python -m harness.suites.load.worker --master-host H [--master-port P]`: one Locust worker process.

It knows every scenario's users; the master decides which run. Keys come from this
process's environment (`HARNESS_API_KEYS`); the target URL and the phase settings come from
the master. Start one per core on each load machine (`harness load --worker --master-host H`).
"""

from __future__ import annotations

from gevent import monkey  # type: ignore[import-untyped]

monkey.patch_all()

import argparse  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402
from typing import Any  # noqa: E402

from locust import events  # noqa: E402
from locust.env import Environment  # noqa: E402
from locust.log import setup_logging  # noqa: E402

from harness.settings import Settings, api_keys_from_env  # noqa: E402
from harness.suites.load import users as user_module  # noqa: E402
from harness.suites.load.scenarios import SCENARIOS  # noqa: E402

USER_CLASSES = [getattr(user_module, name) for name in
                dict.fromkeys(n for s in SCENARIOS.values() for n in s.users)]
DEFAULT_PORT: int = Settings.model_fields["master_port"].default


def run(master_host: str, master_port: int, logfile: str | None = None) -> int:
    setup_logging("INFO", logfile)  # type: ignore[no-untyped-call]
    if not api_keys_from_env():
        logging.getLogger("harness.load").error(
            "no API key: set HARNESS_API_KEYS (or INFERENCE_API_KEY) on this worker")
        return 2
    env = Environment(user_classes=USER_CLASSES, events=events)
    runner: Any = env.create_worker_runner(master_host, master_port)
    hooks: Any = events
    hooks.init.fire(environment=env, runner=runner, web_ui=None)
    runner.greenlet.join()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.suites.load.worker")
    parser.add_argument("--master-host", required=True)
    parser.add_argument("--master-port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--logfile")
    args = parser.parse_args(argv)
    return run(args.master_host, args.master_port, args.logfile)


if __name__ == "__main__":
    sys.exit(main())
