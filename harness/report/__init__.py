"""Turn a RunResult into files in its run folder."""
