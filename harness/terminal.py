"""The CLI's progress output on stderr: timestamped lines, and on a terminal a live status line.

Verbosity: -1 quiet (warnings and errors only), 0 normal, 1 verbose (also `debug: ` lines, e.g.
the load processes' own log). Without a terminal (CI) the live line becomes a plain line every
`tick_s` seconds while requests move. Every text is printed as text: rich markup in a message
(the target's bytes can reach one) is never interpreted.
"""

from __future__ import annotations

import sys
import threading
import time
from types import TracebackType
from typing import Any, TextIO

from harness.progress import Snapshot, meter
from harness.redaction import redact

DEBUG = "debug: "


def status_line(snap: Snapshot) -> str | None:
    """One line of what the run is doing now, or None between suites."""
    if snap.suite is None:
        return None
    parts = [snap.suite + (f" · {snap.phase}" if snap.phase else ""), f"{snap.requests:,} requests"]
    if snap.rps is not None:
        parts.append(f"{snap.rps:,.1f}/s")
    parts.append(f"{snap.errors:,} errors")
    if snap.p95_ms is not None:
        parts.append(f"p95 {snap.p95_ms:.3g} ms")
    parts.append(f"{snap.elapsed_s:.0f} s")
    return " · ".join(parts)


def _important(text: str) -> bool:
    lowered = text.lower()
    return "warning" in lowered or "error" in lowered or "interrupted" in lowered


class Terminal:
    """Progress messages and the live line; use as a context manager around a run."""

    def __init__(self, stream: TextIO | None = None, verbosity: int = 0, live: bool | None = None,
                 tick_s: float = 10.0) -> None:
        self.stream = stream or sys.stderr
        self.verbosity = verbosity
        self.live = self.stream.isatty() if live is None else live
        self.tick_s = tick_s
        self._live: Any = None
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self._last_ticked = -1

    def message(self, text: str) -> None:
        """A progress message (already one line); filtered by the verbosity."""
        debug = text.startswith(DEBUG)
        if (debug and self.verbosity < 1) or (self.verbosity < 0 and not _important(text)):
            return
        line = f"[{time.strftime('%H:%M:%S')}] {redact(text)}"
        if self._live is not None:
            self._live.console.print(line, markup=False, highlight=False, emoji=False)
        else:
            print(line, file=self.stream, flush=True)

    def __enter__(self) -> Terminal:
        if self.verbosity < 0:
            return self
        if self.live:
            from rich.console import Console
            from rich.live import Live
            from rich.text import Text

            def render() -> Text:
                return Text(redact(status_line(meter().snapshot()) or ""), style="dim")

            console = Console(file=self.stream, markup=False, highlight=False, emoji=False)
            self._live = Live(get_renderable=render, console=console, refresh_per_second=4,
                              transient=True, redirect_stdout=False, redirect_stderr=False)
            self._live.start()
        else:
            self._ticker = threading.Thread(target=self._tick, name="progress-ticker", daemon=True)
            self._ticker.start()
        return self

    def _tick(self) -> None:
        while not self._stop.wait(self.tick_s):
            snap = meter().snapshot()
            line = status_line(snap)
            if line is not None and snap.requests != self._last_ticked:
                self._last_ticked = snap.requests
                self.message(line)

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(timeout=1.0)
        if self._live is not None:
            self._live.stop()
            self._live = None
