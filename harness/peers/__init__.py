"""Adapters that let the tools users already run read the contract as the harness does.

`schemathesis_hooks` is the extension for the plain schemathesis CLI (`contracts/schemathesis.toml`
loads it); the harness's own contract suite loads the same module.
"""
