"""Progress output: verbosity, the plain tick line in CI, the live line on a terminal, no markup."""

from __future__ import annotations

import io
import time

from harness.progress import Meter, meter
from harness.suites.load.run import _absorb
from harness.terminal import Terminal, status_line


class Captured(io.StringIO):
    def __init__(self, tty: bool = False) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def test_the_meter_counts_and_a_child_s_figures_replace_its_own() -> None:
    m = Meter()
    m.start_suite("lifecycle")
    for i in range(100):
        m.observe(float(i), error=i % 10 == 0)
    snap = m.snapshot()
    assert (snap.suite, snap.requests, snap.errors) == ("lifecycle", 100, 10) and snap.p95_ms == 95.0
    m.absorb(5000, 3, 400.0, 7.5)
    m.set_phase("mixed")
    line = status_line(m.snapshot())
    assert line is not None and line.startswith("lifecycle · mixed · 5,000 requests · 400.0/s · 3 errors")
    assert "p95 7.5 ms" in line
    m.start_suite(None)
    assert status_line(m.snapshot()) is None


def test_a_load_tick_takes_only_numbers() -> None:
    meter().start_suite("load")
    _absorb({"event": "tick", "requests": 12, "errors": "many", "rps": True, "p95_ms": None})
    snap = meter().snapshot()
    assert (snap.requests, snap.errors, snap.rps, snap.p95_ms) == (12, 0, None, None)
    meter().start_suite(None)


def test_verbosity() -> None:
    for verbosity, shown in ((-1, ["warning: x", "suite y: error"]), (0, ["plain", "warning: x",
                                                                            "suite y: error"]),
                             (1, ["plain", "debug: child line", "warning: x", "suite y: error"])):
        out = Captured()
        with Terminal(out, verbosity, live=False, tick_s=60) as terminal:
            for text in ("plain", "debug: child line", "warning: x", "suite y: error"):
                terminal.message(text)
        lines = [line.split("] ", 1)[1] for line in out.getvalue().splitlines()]
        assert lines == shown, verbosity


def test_ci_gets_a_plain_tick_line_while_requests_move() -> None:
    out = Captured()
    meter().start_suite("ratelimit")
    try:
        with Terminal(out, 0, live=False, tick_s=0.05):
            meter().observe(3.0, error=False)
            deadline = time.monotonic() + 5
            while "ratelimit · 1 requests" not in out.getvalue() and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(0.2)  # no new request: no second line
    finally:
        meter().start_suite(None)
    assert out.getvalue().count("ratelimit · 1 requests") == 1


def test_the_live_line_never_interprets_markup() -> None:
    out = Captured(tty=True)
    meter().start_suite("smoke")
    try:
        with Terminal(out, 0, live=True) as terminal:
            terminal.message("target said [bold red]hello[/] :smile:")
    finally:
        meter().start_suite(None)
    assert "[bold red]hello[/] :smile:" in out.getvalue()
