"""Logs of a running flow: one JSON object per line for log collectors, or text for people.

`configure_logging` picks JSON when stderr is not a terminal (a container, a pipe) unless
told otherwise. A record carries a stable `event` name and its fields, so a line reads

    {"time": "2026-11-23T12:00:00.000Z", "level": "info", "logger": "driftline.run",
     "event": "progress", "message": "progress", "events_in": 120000, "events_per_s": 40211.3, ...}

and the same record in text form `2026-11-23T12:00:00.000Z info progress events_in=120000 ...`.
librdkafka's own log lines reach the `driftline.kafka` logger (see `dataflows.kafka.clients`), so
they come out in the same format.

>>> import io
>>> out = io.StringIO()
>>> _ = configure_logging("json", stream=out)
>>> log_event(logging.getLogger("driftline.run"), "run_end", "done", events_in=5)
>>> record = orjson.loads(out.getvalue()); (record["event"], record["events_in"], record["level"])
('run_end', 5, 'info')
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable
from typing import Any, TextIO

import orjson

from features.messages import iso_utc

FORMATS = ("json", "text")


def _time(record: logging.LogRecord) -> str:
    return iso_utc(int(record.created * 1000))


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    return getattr(record, "fields", None) or {}


class JsonFormatter(logging.Formatter):
    """A record as one JSON line: time, level, logger, event, message, then its fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {"time": _time(record), "level": record.levelname.lower(), "logger": record.name,
                                "event": getattr(record, "event", "log"), "message": record.getMessage()}
        line.update(_fields(record))
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


class TextFormatter(logging.Formatter):
    """A record as `time level message key=value ...` (multi-line messages stay as they are)."""

    def format(self, record: logging.LogRecord) -> str:
        fields = " ".join(f"{k}={v}" for k, v in _fields(record).items())
        text = f"{_time(record)} {record.levelname.lower()} {record.getMessage()}" + (f" {fields}" if fields else "")
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def choose_format(requested: str | None, stream: TextIO) -> str:
    """`requested`, or JSON unless `stream` is a terminal.

    >>> import io
    >>> choose_format(None, io.StringIO()), choose_format("text", io.StringIO())
    ('json', 'text')
    """
    if requested is not None:
        return requested
    return "text" if stream.isatty() else "json"


def configure_logging(requested: str | None, stream: TextIO | None = None, level: int = logging.INFO) -> str:
    """Send the `driftline` loggers to `stream` (stderr) in the chosen format; returns it."""
    stream = stream or sys.stderr
    chosen = choose_format(requested, stream)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if chosen == "json" else TextFormatter())
    logger = logging.getLogger("driftline")
    for old in list(logger.handlers):
        logger.removeHandler(old)
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    return chosen


def is_configured() -> bool:
    """True once `configure_logging` has run in this process (errors then go through logging too)."""
    return bool(logging.getLogger("driftline").handlers)


def log_event(logger: logging.Logger, event: str, message: str, level: int = logging.INFO,
              exc: BaseException | None = None, **fields: Any) -> None:
    """Log `message` with a stable `event` name and structured fields (and `exc`'s traceback)."""
    exc_info = (type(exc), exc, exc.__traceback__) if exc is not None else None
    logger.log(level, message, exc_info=exc_info, extra={"event": event, "fields": fields})


class Ticker:
    """Calls `tick()` every `interval_s` from a background thread while the block runs.

    >>> import time
    >>> calls = []
    >>> with Ticker(lambda: calls.append(1), interval_s=0.01):
    ...     time.sleep(0.05)
    >>> len(calls) > 0
    True
    """

    def __init__(self, tick: Callable[[], None], interval_s: float) -> None:
        self._tick = tick
        self._interval = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="driftline-log-ticker", daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            self._tick()

    def __enter__(self) -> Ticker:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
