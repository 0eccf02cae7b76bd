"""The drift flow: events -> base-window summaries (`drift.summaries`) and drift events
(`drift.events`).

Two stateful steps after ingestion:

1. keyed by input partition, a `PartitionWindows` decides lateness (`PartitionClocks`, as
   the features flow) and summarises the partition's batches (`EventBatch`, the columns
   every flow decodes) into each monitor's base windows, one numpy update per column and
   window; it sends each monitor the partials its watermark closed, with the watermark;
2. keyed by monitor, a `WindowCloser` merges the partitions' partials once the stream's
   watermark (the slowest partition's) passes a window's end, and the monitor's
   `DriftEngine` tests the base window and the scale windows it closes against the
   reference and applies the alert policy; its `ExpectationMonitor` checks the base
   window's expectations and schema versions (`features.monitors.expectation_checks`).

Late events are counted; they are written to `<topic>.late` only when this flow owns the
dead letters (`Config.dead_letter_flow`), so each late event is written once.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Dataflow, Stream
from bytewax.inputs import FixedPartitionedSource
from bytewax.operators import StatefulBatchLogic
from bytewax.outputs import Sink

from dataflows.counters import FlowCounters
from dataflows.flows.ingest import ingest_batches, wall_clock_ms
from dataflows.kafka.io import OutMessage
from features.config import Config
from features.config_values import ConfigError
from features.monitors.engine import DriftEngine
from features.monitors.events import summary_message
from features.monitors.reference import Reference, load_monitor_references
from features.monitors.base_windows import Closed, Partial, PartitionWindows, WindowCloser
from features.monitors.expectation_checks import ExpectationMonitor, hold_back
from features.event_batch import EventBatch
from features.messages import encode, late_event_message
from features.partition_progress import NEVER

# (monitor, partition, the partition's watermark, the partials it closed)
Progress = tuple[str, int, int, list[Partial]]


class _PartitionLogic(StatefulBatchLogic[EventBatch, Any, PartitionWindows]):
    def __init__(self, windows: PartitionWindows, config: Config, counters: FlowCounters,
                 clock_ms: Callable[[], int]) -> None:
        self.windows = windows
        self.write_late = config.dead_letter_flow == "drift"
        self.source_topic = config.source.topic
        self.late_topic = config.source.late_topic
        self.counters = counters
        self.clock_ms = clock_ms

    def _items(self, partition: int, watermark: int, partials: list[Partial]) -> list[Any]:
        by_monitor: dict[str, list[Partial]] = {m.name: [] for m in self.windows.monitors}
        for p in partials:
            by_monitor[p.monitor].append(p)
        return [(name, (name, partition, watermark, parts)) for name, parts in by_monitor.items()]

    def on_batch(self, values: list[EventBatch]) -> tuple[list[Any], bool]:
        started = time.perf_counter()
        batch = EventBatch.concat(values)
        partials, late, watermarks = self.windows.add_batch(batch)
        partition = int(batch.partitions[0])
        out: list[Any] = self._items(partition, self.windows.watermark(partition), partials)
        if late.size:
            self.counters.add({"drift.late": int(late.size), **({"late": int(late.size)} if self.write_late else {})})
            if self.write_late:
                now = self.clock_ms()
                out += [OutMessage(self.late_topic, batch.entities[i].encode(), encode(late_event_message(
                    self.source_topic, int(batch.partitions[i]), int(batch.offsets[i]), batch.entities[i],
                    int(batch.times[i]), w, batch.record(i), now)))
                    for i, w in zip(late.tolist(), watermarks.tolist())]
        self.counters.observe("stage.drift_windows", (time.perf_counter() - started,))
        return out, StatefulBatchLogic.RETAIN

    def on_eof(self) -> tuple[list[Any], bool]:
        partials = self.windows.flush()
        partitions = sorted({p.partition for p in partials})
        return [item for p in partitions for item in
                self._items(p, NEVER, [x for x in partials if x.partition == p])], StatefulBatchLogic.RETAIN

    def snapshot(self) -> PartitionWindows:
        return self.windows


@dataclass
class MonitorState:
    """One monitor's state in the flow: the closer of its base windows and its engine."""

    closer: WindowCloser
    engine: DriftEngine
    expectations: ExpectationMonitor


class _MonitorLogic(StatefulBatchLogic[Progress, OutMessage, "MonitorState | None"]):
    """Bytewax builds a step's logic from its resume state alone; the monitor's state is
    made from the first item, which names the monitor."""

    def __init__(self, state: MonitorState | None, new_state: Callable[[str], MonitorState],
                 counters: FlowCounters, clock_ms: Callable[[], int]) -> None:
        self.state = state
        self.new_state = new_state
        self.counters = counters
        self.clock_ms = clock_ms

    def _emit(self, windows: list[Closed]) -> list[OutMessage]:
        started = time.perf_counter()
        now = self.clock_ms()
        assert self.state is not None
        m = self.state.engine.monitor
        out = []
        events = 0
        severities: Counter[str] = Counter()
        for summary, sample, checks in windows:
            engine = self.state.engine
            quiet = dict(engine.state.quiet_until)
            result = engine.add(summary, sample)
            checked = self.state.expectations.check(summary, checks)
            alerts = [*checked.events, *result.events]
            if checked.schema_event is not None:  # a schema-version change: its window's alerts are held back
                hold_back(quiet, engine.state)
                alerts = [checked.schema_event]
            for w in result.summaries:
                out += [OutMessage(m.summaries_topic, f"{m.name}/{c}".encode(), encode(summary_message(m.name, c, w, now)))
                        for c in m.columns]
            out += [OutMessage(m.events_topic, e.column.encode(), encode(e.to_message(now))) for e in alerts]
            events += len(alerts)
            severities.update(e.severity for e in alerts)
        if windows:
            self.counters.add({"drift_summaries_out": len(out) - events, "drift_events_out": events,
                               f"drift_events_out.{m.name}": events,
                               **{f"drift_alerts.{s}": n for s, n in severities.items()}})
            self.counters.observe("stage.drift", (time.perf_counter() - started,))
        return out

    def on_batch(self, values: list[Progress]) -> tuple[list[OutMessage], bool]:
        if self.state is None:
            self.state = self.new_state(values[0][0])
        windows = []
        closer = self.state.closer
        dropped = closer.late_after_close
        now = self.clock_ms()
        for _, partition, watermark, partials in values:
            windows += closer.add(partition, watermark, partials, now)
        if closer.late_after_close > dropped:
            self.counters.add({"drift.late_after_close": closer.late_after_close - dropped})
        return self._emit(windows), StatefulBatchLogic.RETAIN

    def on_eof(self) -> tuple[list[OutMessage], bool]:
        if self.state is None:
            return [], StatefulBatchLogic.RETAIN
        return self._emit(self.state.closer.flush()), StatefulBatchLogic.RETAIN

    def snapshot(self) -> MonitorState | None:
        return self.state


def drift_stage(batches: Stream[EventBatch], config: Config, counters: FlowCounters, partitions: int,
                references: dict[str, Reference], clock_ms: Callable[[], int] = wall_clock_ms) -> list[Stream[OutMessage]]:
    """Add the drift computation; returns its output streams (late events, summaries, drift events).

    `partitions` is the number of input partitions: the stream watermark waits for all of
    them, except partitions silent for `IDLE_PARTITION_MS` of wall time (`WindowCloser`).
    """
    monitors = {m.name: m for m in config.monitors}
    by_partition = op.flat_map("drift_partition", batches, lambda b: [(str(p), part) for p, part in b.by_partition()])

    def partition_builder(resume: PartitionWindows | None) -> _PartitionLogic:
        windows = resume or PartitionWindows(config.monitors, config.source.lateness_ms)
        return _PartitionLogic(windows, config, counters, clock_ms)

    stepped = op.key_rm("drift_unkey_partition", op.stateful_batch("drift_windows", by_partition, partition_builder))
    split = op.branch("drift_split_late", stepped, lambda item: type(item) is OutMessage)
    late: Stream[OutMessage] = split.trues  # type: ignore[assignment]

    def new_state(name: str) -> MonitorState:
        return MonitorState(WindowCloser(monitors[name], partitions), DriftEngine(monitors[name], references.get(name)),
                            ExpectationMonitor(monitors[name]))

    def monitor_builder(resume: MonitorState | None) -> _MonitorLogic:
        if resume is not None:
            resume.closer.resumed(clock_ms())
        return _MonitorLogic(resume, new_state, counters, clock_ms)

    keyed: Stream[tuple[str, Progress]] = split.falses  # type: ignore[assignment]
    computed = op.stateful_batch("drift_monitors", keyed, monitor_builder)
    return [late, op.key_rm("drift_unkey_monitor", computed)]


def build_drift_flow(config: Config, source: FixedPartitionedSource, sink: Sink[OutMessage],
                     counters: FlowCounters, clock_ms: Callable[[], int] = wall_clock_ms) -> Dataflow:
    """Ingestion + drift, reading `source` and writing every output message to `sink`."""
    if not config.monitors:
        raise ConfigError("monitors", "at least one [[monitors]] entry", None,
                          "add a monitor (see docs/drift.md).")
    references = load_monitor_references(config.monitors)
    flow = Dataflow("driftline_drift")
    batches, dead_letters = ingest_batches(flow, config, source, counters, "drift")
    outputs = drift_stage(batches, config, counters, len(source.list_parts()), references, clock_ms)
    op.output("out", op.merge("all_out", dead_letters, *outputs), sink)
    return flow
