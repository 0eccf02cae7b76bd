"""Live progress lines for long runs: one updating line on a terminal, a line every few
seconds otherwise (CI logs, pipes)."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import TextIO


class ProgressPrinter:
    """Calls `render()` periodically and prints what it returns until stopped.

    >>> import io
    >>> out = io.StringIO()
    >>> with ProgressPrinter(lambda: "42 events", stream=out, interval_s=0.01):
    ...     time.sleep(0.05)
    >>> "42 events" in out.getvalue()
    True
    """

    def __init__(self, render: Callable[[], str], stream: TextIO | None = None, interval_s: float | None = None) -> None:
        self._render = render
        self._stream = stream or sys.stderr
        self._tty = self._stream.isatty()
        self._interval = interval_s if interval_s is not None else (0.5 if self._tty else 5.0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="driftline-progress", daemon=True)

    def _emit(self, final: bool = False) -> None:
        line = self._render()
        if self._tty:
            self._stream.write("\r\x1b[K" + line + ("\n" if final else ""))
        else:
            self._stream.write(line + "\n")
        self._stream.flush()

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            self._emit()

    def __enter__(self) -> ProgressPrinter:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._emit(final=True)


class RateMeter:
    """Items per second over the time since the previous reading.

    >>> meter = RateMeter()
    >>> meter.rate(0) >= 0.0
    True
    """

    def __init__(self) -> None:
        self._last_t = time.monotonic()
        self._last_n = 0

    def rate(self, count: int) -> float:
        """Rate since the last call, given the running total `count`."""
        now = time.monotonic()
        elapsed = max(now - self._last_t, 1e-9)
        rate = (count - self._last_n) / elapsed
        self._last_t, self._last_n = now, count
        return rate
