"""The contract suite: schemathesis against contracts/openapi.yaml plus the probes it lacks."""
