"""Misbehaving targets: each proves the harness ends within its deadline, with a finding or a
clean refusal, no traceback, no key in any output, and no request to a host nobody allowed.

The matrix (issue #13, items 1-9):

1. redirect to another origin (127.0.0.2): test_redirects.py (ApiClient, rate-limit lanes, the
   contract session); the Locust users: tests/suites/load/transport_probe.py
2. TLS certificate for another name: tests/net/test_tls.py
3. upload URL / file URI on another host: test_file_host.py
4. the key echoed in headers, bodies, errors (run folder, load CSVs, stdout/stderr): test_echoed_key.py
5. hostile text in repro commands: tests/net/test_repro.py
6. answers dripping a byte a second: test_slow_drip.py, tests/net/test_lanes.py, test_load_reads.py
7. a body past the cap, an endless line, CR-only SSE: test_huge_answers.py, test_load_reads.py
8. X-RateLimit-Remaining past int64 through the renderer: tests/report/test_render_hostile.py
9. a worker refusing a master's plan: test_master_plan.py (and tests/suites/load/test_facts.py)

`servers.py` holds the small raw-socket servers they share.
"""
