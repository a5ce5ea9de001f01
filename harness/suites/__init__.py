"""Suites drive a target and return a SuiteResult; they never print or exit."""
