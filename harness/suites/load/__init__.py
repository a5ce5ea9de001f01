"""The load suite: Locust scenarios, HDR metrics, pacing, and the headless runner.

Importing this package does not import Locust (and so does not monkey-patch the process with
gevent); only `users`, `session`, `master` and `worker` do, and those run in their own processes
(or under `locust -f`).
"""
