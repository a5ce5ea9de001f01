"""Benchmarks of the reference server, run by `make bench` (`python -m benchmarks`).

Every figure is a ratio against a baseline measured in the same run, or a latency measured
against the clock of the receiving side: the machines this runs on are shared and noisy, so
no benchmark asserts an absolute rate. Results go to `reports/bench/` (one JSON file per
benchmark plus `latest.md`).
"""
