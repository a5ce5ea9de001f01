"""Load testing with Locust: shared users, metrics, pacing and the headless runner.

Importing `harness.load` does not import Locust (and so does not monkey-patch the process with
gevent); only `harness.load.users`, `harness.load.session`, `harness.load.master` and
`harness.load.worker` do, and those run in their own processes (or under `locust -f`).
"""
