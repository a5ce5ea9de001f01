"""Conformance, lifecycle, rate-limit and load harness for the inference.sh task API."""

__version__ = "0.1.0"
