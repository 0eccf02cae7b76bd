"""Event-time base windows for the drift monitors: per input partition, then per monitor.

The drift flow follows the features flow's event-time rules (`features.windows.engine`):
an event is late when it is behind its input partition's watermark (`PartitionClocks`: the
largest event time read before it from that partition, less the allowed lateness). Late
events are counted and kept out of the summaries.

1. `PartitionWindows` (one per input partition) feeds each batch's non-late events into
   the open base window of every monitor from the batch's columns (`EventBatch`: a
   `WindowAccumulator` updated with one numpy array per column and window, and a reservoir
   of rows when the monitor has a multivariate test). A window closes in the
   partition once the partition's watermark passes its end: its *partial* summary is
   returned, and no later event of the partition can fall into it (it would be late).
2. `WindowCloser` (one per monitor) collects the partials of every partition and, once the
   stream's watermark (the slowest partition's) passes a window's end, merges the window's
   partials (in partition order) into the base-window summary, in time order.

At the end of a bounded input (`flush`) every open window closes.

>>> from features.events import Event
>>> from features.monitors.config import Monitor, ReferenceSpec
>>> m = Monitor("inputs", ("price",), (), 60_000, (60_000,), ReferenceSpec("first_windows"))
>>> part = PartitionWindows((m,), lateness_ms=10_000)
>>> partials, late = part.add([Event("a", t, {"price": 1.0}, partition=0) for t in (1_000, 75_000, 2_000)])
>>> [(p.summary.start_ms, p.summary.event_count) for p in partials], len(late)
([(0, 1)], 1)
>>> closer = WindowCloser(m, partitions=1)
>>> [w.event_count for w, _, _ in closer.add(0, part.watermark(0), partials)]
[1]
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from features.monitors.reference import Row, merge_samples
from features.event_batch import EventBatch
from features.events import Event
from features.windows.columnar import partition_verdicts
from features.windows.engine import LateEvent, PartitionClocks
from features.monitors.config import Monitor
from features.partition_progress import IDLE_PARTITION_MS, PartitionProgress
from features.partition_progress import NEVER as _NEVER
from features.samples.reservoirs import UniformReservoir
from features.summaries import categorical as categorical_summary, numeric as numeric_summary
from features.summaries.numeric import NumericSummary
from features.expectations.window_checks import WindowChecks
from features.expectations.window_checks import merge as merge_checks
from features.summaries.window import ColumnSummary, WindowAccumulator, WindowSummary

Sample = UniformReservoir[Row]
# A closed base window: its summary, its sample of rows (multivariate monitors), its checks.
Closed = tuple[WindowSummary, "Sample | None", "WindowChecks | None"]


@dataclass(frozen=True)
class Partial:
    """One partition's part of one monitor's base window."""

    monitor: str
    partition: int
    summary: WindowSummary
    sample: Sample | None
    checks: WindowChecks | None = None  # per-event expectations and schema versions


def _seed(*parts: object) -> int:
    return zlib.crc32("/".join(map(str, parts)).encode())


def complete_rows(columns: Sequence[np.ndarray]) -> list[Row]:
    """The rows of numeric columns (NaN where null) whose every value is finite, as
    `reference.sample_rows` keeps them for the multivariate test.

    >>> complete_rows([np.array([1.0, np.nan, 3.0]), np.array([2.0, 1.0, 4.0])])
    [(1.0, 2.0), (3.0, 4.0)]
    """
    table = np.column_stack(columns)
    return list(map(tuple, table[np.isfinite(table).all(axis=1)].tolist()))


def combine(parts: Sequence[WindowSummary]) -> WindowSummary:
    """One window from partial summaries of the same window [start, end) (e.g. one per
    input partition): event counts added, column summaries merged in the given order.
    (`window_summary.merge` joins *disjoint* windows and refuses shared time.)

    >>> from features.summaries.window import summarize_columns
    >>> a = summarize_columns(0, 60_000, {"x": [1.0, 2.0]}, ["x"], [])
    >>> b = summarize_columns(0, 60_000, {"x": [3.0]}, ["x"], [])
    >>> w = combine([a, b]); w.event_count, w.columns["x"].mean
    (3, 2.0)
    """
    first = parts[0]
    if any((p.start_ms, p.end_ms) != (first.start_ms, first.end_ms) for p in parts):
        raise ValueError("combine joins partial summaries of one window; use merge_all for "
                         "consecutive windows")
    columns: dict[str, ColumnSummary] = dict(first.columns)
    for part in parts[1:]:
        for name, s in part.columns.items():
            columns[name] = (numeric_summary.merge(columns[name], s) if isinstance(s, NumericSummary)  # type: ignore[arg-type]
                             else categorical_summary.merge(columns[name], s))  # type: ignore[arg-type]
    return WindowSummary(first.start_ms, first.end_ms, sum(p.event_count for p in parts), columns)


class PartitionWindows:
    """The open base windows of every monitor for the events of input partitions
    (normally one per instance: the flow keys this state by input partition)."""

    def __init__(self, monitors: Sequence[Monitor], lateness_ms: int) -> None:
        self.monitors = tuple(monitors)
        self.clocks = PartitionClocks(lateness_ms)
        self.open: dict[tuple[str, int, int], tuple[WindowAccumulator, Sample | None, WindowChecks | None]] = {}

    def watermark(self, partition: int) -> int:
        """The partition's watermark: its largest event time less the lateness."""
        high = self.clocks.high.get(partition)
        return _NEVER if high is None else high - self.clocks.lateness

    def add(self, events: Sequence[Event]) -> tuple[list[Partial], list[LateEvent]]:
        """`add_batch` for a list of events (in partition order): the partials of the windows
        it closed and the late events."""
        partials, late, watermarks = self.add_batch(EventBatch.of(events))
        return partials, [LateEvent(events[i], w) for i, w in zip(late.tolist(), watermarks.tolist())]

    def add_batch(self, batch: EventBatch) -> tuple[list[Partial], np.ndarray, np.ndarray]:
        """Add a batch of events (each partition's in its order), summarised from its columns;
        returns the partials of the windows it closed, and the positions of the late events
        with the watermark each was behind."""
        verdicts = partition_verdicts(self.clocks.high, self.clocks.lateness, batch.partitions, batch.times)
        on_time = verdicts == _NEVER
        late = np.flatnonzero(~on_time)
        kept = batch if not late.size else batch.take(np.flatnonzero(on_time))
        if len(kept):
            for monitor in self.monitors:
                starts = kept.times - kept.times % monitor.window_ms
                # Stable: each window's events stay in arrival order.
                order = np.lexsort((starts, kept.partitions))
                heads = np.flatnonzero((np.diff(starts[order], prepend=-1) != 0)
                                       | (np.diff(kept.partitions[order], prepend=-1) != 0))
                for part in np.split(order, heads[1:]):
                    first = int(part[0])
                    whole = len(part) == len(kept)
                    self._feed(monitor, int(kept.partitions[first]), int(starts[first]),
                               kept if whole else kept.take(part))
        return self._close(lambda p, end: end <= self.watermark(p)), late, verdicts[late]

    def _feed(self, monitor: Monitor, partition: int, start: int, batch: EventBatch) -> None:
        key = (monitor.name, partition, start)
        if key not in self.open:
            sample = None
            if monitor.multivariate is not None:
                sample = UniformReservoir[Row](monitor.multivariate.sample, _seed(*key))
            acc = WindowAccumulator(start, start + monitor.window_ms, monitor.numeric, monitor.categorical)
            checks = None
            if monitor.expectations or monitor.version_field:
                checks = WindowChecks.empty(monitor.expectations, monitor.version_field, monitor.schema_version)
            self.open[key] = (acc, sample, checks)
        acc, sample, checks = self.open[key]
        if checks is not None:  # per-event checks read the events' JSON objects
            checks.add(batch.records)
        columns: dict[str, object] = {c: batch.numbers(c) for c in monitor.numeric}
        columns.update({c: batch.values(c) for c in monitor.categorical})
        acc.add_columns(columns, event_count=len(batch))  # type: ignore[arg-type]
        if sample is not None:
            sample.extend(complete_rows([batch.numbers(c) for c in monitor.numeric]))

    def _close(self, due: Callable[[int, int], bool]) -> list[Partial]:
        out = []
        for key in sorted(self.open):
            name, partition, start = key
            acc, sample, checks = self.open[key]
            if due(partition, acc.end_ms):
                # The accumulator is dropped: its summaries can be handed over without a copy.
                out.append(Partial(name, partition, WindowSummary(acc.start_ms, acc.end_ms, acc.event_count,
                                                                  acc.columns), sample, checks))
                del self.open[key]
        return out

    def flush(self) -> list[Partial]:
        """Close every open window (the input has ended)."""
        return self._close(lambda p, end: True)


class WindowCloser:
    """One monitor's base windows, merged from the partitions' partials (module docstring).

    Idle partitions: when the caller passes the wall clock (`now_ms`), a partition silent
    for `idle_ms` stops holding the stream's watermark back (`PartitionProgress`). Should an
    idle partition later deliver events of a window already closed, they cannot join it (it
    was published): they are counted in `late_after_close` and left out.

    >>> from features.monitors.config import Monitor, ReferenceSpec
    >>> closer = WindowCloser(Monitor("m", ("x",), (), 60_000, (60_000,), ReferenceSpec("first_windows")),
    ...                       partitions=2, idle_ms=30_000)
    >>> closer.add(0, 200_000, [], now_ms=0), closer.add(0, 200_000, [], now_ms=40_000)
    ([], [])
    >>> closer.stream_watermark(now_ms=40_000)   # partition 1 never reported: left out
    200000
    """

    def __init__(self, monitor: Monitor, partitions: int, idle_ms: int = IDLE_PARTITION_MS) -> None:
        self.monitor = monitor
        self.progress = PartitionProgress(partitions, idle_ms)
        self.pending: dict[int, list[Partial]] = {}  # by window start
        self.closed_until = _NEVER  # end of the last window closed
        self.late_after_close = 0

    def stream_watermark(self, now_ms: int | None = None) -> int:
        """The slowest partition's watermark (idle partitions left out when `now_ms` is
        given); _NEVER while a partition is still awaited."""
        return self.progress.slowest(now_ms)

    def resumed(self, now_ms: int) -> None:
        """After a restart from a snapshot (see `PartitionProgress.resumed`)."""
        self.progress.resumed(now_ms)

    def add(self, partition: int, watermark: int, partials: Sequence[Partial],
            now_ms: int | None = None) -> list[Closed]:
        """Take a partition's progress (its watermark) and the partials it closed; returns
        the base windows the stream's watermark now closes, in time order."""
        for p in partials:
            if p.summary.end_ms <= self.closed_until:
                self.late_after_close += p.summary.event_count
            else:
                self.pending.setdefault(p.summary.start_ms, []).append(p)
        self.progress.report(partition, watermark, now_ms)
        stream = self.stream_watermark(now_ms)
        return self._close(lambda end: end <= stream)

    def _close(self, due: Callable[[int], bool]) -> list[Closed]:
        out = []
        for start in sorted(self.pending):
            if not due(start + self.monitor.window_ms):
                break
            parts = sorted(self.pending.pop(start), key=lambda p: p.partition)
            self.closed_until = max(self.closed_until, start + self.monitor.window_ms)
            summary = combine([p.summary for p in parts])
            checks = [p.checks for p in parts if p.checks is not None]
            out.append((summary, merge_samples([p.sample for p in parts], _seed(self.monitor.name, start)),
                        merge_checks(checks) if checks else None))
        return out

    def flush(self) -> list[Closed]:
        """Every pending window (the input has ended)."""
        return self._close(lambda end: True)
