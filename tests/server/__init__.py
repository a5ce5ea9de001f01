"""Tests of the reference server (harness/server), one file per module or concern."""
