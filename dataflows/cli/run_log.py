"""What `driftline run` logs: the start with a config summary (secrets redacted), progress
every epoch (at least 5 s apart), and the end summary; a terminal in text format keeps the
live progress line instead of progress records.

>>> import io, orjson
>>> from features.config import parse_config
>>> from dataflows.cli.logs import configure_logging
>>> out = io.StringIO()
>>> _ = configure_logging("json", stream=out)
>>> config = parse_config({"source": {"topic": "rides"}, "kafka": {"sasl.password": "pw"},
...     "schema": {"entity": "a", "event_time": "ts", "fields": {"a": "string"}}})
>>> with RunLog("ingest", config, "k:9092", Execution(), "single process", stream=out):
...     pass
>>> [orjson.loads(line)["event"] for line in out.getvalue().splitlines()]
['run_start', 'run_end']
>>> "pw" in out.getvalue()
False
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any, TextIO

from dataflows.counters import FlowCounters
from dataflows.flows.registry import FLOWS
from dataflows.cli.logs import Ticker, log_event
from dataflows.cli.progress import ProgressPrinter, RateMeter
from dataflows.flows.runner import Execution, resume_epoch
from dataflows.cli.status_lines import flow_progress, flow_summary
from features.config import Config

LOGGER = logging.getLogger("driftline.run")
MIN_PROGRESS_INTERVAL_S = 5.0


def start_fields(flow: str, config: Config, bootstrap: str, execution: Execution, origin: str,
                 metrics_port: int | None = None) -> dict[str, Any]:
    """The run's configuration as log fields; Kafka properties with secret values redacted."""
    return {
        "flow": flow,
        "config": str(config.path) if config.path else None,
        "bootstrap": bootstrap,
        "input_topic": config.source.topic,
        "output_topics": list(FLOWS[flow].output_topics(config)),
        "feature_sets": [fs.name for fs in config.feature_sets],
        "kafka": config.kafka.shown(),
        "workers": execution.workers,
        "process_id": execution.process_id,
        "addresses": list(execution.addresses) if execution.addresses else None,
        "cluster_from": origin,
        "recovery_dir": str(execution.recovery_dir) if execution.recovery_dir else None,
        "snapshot_interval_s": execution.epoch_interval_s,
        "resumed_from_epoch": resume_epoch(execution.recovery_dir) if execution.recovery_dir else None,
        "metrics_port": metrics_port,
    }


def progress_fields(counters: FlowCounters) -> Any:
    """A function returning the progress fields: totals so far and events/s since the last call.

    >>> counters = FlowCounters(); counters.add({"events_in": 3, "rejected.not_json": 1})
    >>> fields = progress_fields(counters)(); fields["events_in"], fields["rejected"]
    (3, 1)
    """
    meter = RateMeter()

    def fields() -> dict[str, Any]:
        seen = counters.get("events_in")
        return {"events_in": seen, "events_per_s": round(meter.rate(seen), 1), "valid": counters.get("valid"),
                "rejected": counters.total("rejected."), "features_out": counters.get("features_out"),
                "late": counters.get("late")}

    return fields


def end_fields(counters: FlowCounters) -> dict[str, Any]:
    """Every counter at the end, with the elapsed time and the average rate."""
    elapsed = max(time.monotonic() - counters.started, 1e-9)
    return {"elapsed_s": round(elapsed, 3), "events_per_s": round(counters.get("events_in") / elapsed, 1),
            "counters": counters.snapshot()}


class RunLog:
    """Logs a run's start on entry, its progress while it runs, and its end on exit.

    On exit by an exception (SIGTERM, a crash) the end record says `stopped` and carries the
    counters so far; the exception goes on to the caller.
    """

    def __init__(self, flow: str, config: Config, bootstrap: str, execution: Execution, origin: str,
                 counters: FlowCounters | None = None, metrics_port: int | None = None,
                 log_format: str = "json", stream: TextIO | None = None,
                 min_progress_interval_s: float = MIN_PROGRESS_INTERVAL_S) -> None:
        self._counters = counters or FlowCounters()
        self._start = start_fields(flow, config, bootstrap, execution, origin, metrics_port)
        self._late_topic = config.source.late_topic
        stream = stream or sys.stderr
        if log_format == "text" and stream.isatty():
            self._progress: Any = ProgressPrinter(flow_progress(self._counters), stream=stream)
        else:
            fields = progress_fields(self._counters)
            self._progress = Ticker(lambda: log_event(LOGGER, "progress", "progress", **fields()),
                                    max(execution.epoch_interval_s, min_progress_interval_s))
        self._text = log_format == "text"

    def __enter__(self) -> RunLog:
        resumed = self._start["resumed_from_epoch"]
        how = "fresh start" if resumed is None else f"resuming from the snapshot of epoch {resumed}"
        log_event(LOGGER, "run_start", f"starting flow {self._start['flow']!r} ({how})", **self._start)
        self._progress.__enter__()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        self._progress.__exit__(exc_type, *rest)
        outcome = "finished" if exc_type is None else "stopped"
        message = f"flow {self._start['flow']!r} {outcome}"
        if self._text:  # people read the summary; the fields are for machines
            log_event(LOGGER, "run_end", message + "\n" + flow_summary(self._counters, self._late_topic))
        else:
            log_event(LOGGER, "run_end", message, outcome=outcome, flow=self._start["flow"],
                      process_id=self._start["process_id"], **end_fields(self._counters))
