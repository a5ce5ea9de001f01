"""The conformance suite's parts: sans-I/O response and stream rules, pacing, schemathesis, probes.

`harness.suites.conformance` assembles them into `run_conformance`.
"""
