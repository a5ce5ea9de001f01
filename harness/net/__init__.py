"""The I/O the suites share: API clients, recording, stream decoding, repro commands, server processes."""
