"""The drift engine of one monitor: base windows in, summaries and drift events out.

Feed it the monitor's closed base-window summaries in time order (`add`). It returns each
base window for `drift.summaries`, and, for every scale window that the base window
closes (a scale window [E - S, E) is aligned to multiples of S since the epoch and closes
once a base window reaching E arrives), the test results and the alerts the policy lets
through, as `DriftEvent`s with the base window where the change began. Larger scales are
built by merging base windows (`features.summaries.window.merge_all`), never from events.

References: a file (given at construction), the monitor's first N base windows (no tests
until they are in; scale windows overlapping them are not tested), or the same span one
period earlier (from the engine's history; windows without history are not tested).

The engine is plain state (summaries, reservoirs, dicts): it pickles into snapshots.

>>> import numpy as np
>>> from features.monitors.config import Monitor, ReferenceSpec
>>> from features.summaries.window import summarize_columns
>>> monitor = Monitor("inputs", ("price",), (), 60_000, (60_000, 300_000),
...                   ReferenceSpec("first_windows", windows=5))
>>> engine = DriftEngine(monitor)
>>> rng = np.random.default_rng(0)
>>> events = []
>>> for i in range(12):
...     price = rng.normal(20.0 if i < 8 else 23.0, 5.0, 1000)
...     out = engine.add(summarize_columns(i * 60_000, (i + 1) * 60_000, {"price": price}, ["price"], []))
...     events += out.events
>>> [(e.column, e.test, e.scale_ms, e.end_ms // 60_000, e.began[0] // 60_000) for e in events]
[('price', 'mean', 60000, 9, 8)]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from features.drift.alert_policy import Alert, PolicyState
from features.drift.categorical import CATEGORICAL_TESTS
from features.drift.categorical import summary_stats as categorical_stats
from features.monitors.events import MULTIVARIATE_COLUMN, DriftEvent, format_duration
from features.monitors.reference import Reference, Row, merge_samples, merged_reference
from features.drift.result import SCHEMA_TESTS, TestResult
from features.messages import iso_utc
from features.drift.mmd import mmd_test
from features.monitors.config import Monitor
from features.drift.numeric import NUMERIC_TESTS, total
from features.drift.numeric import summary_stats as numeric_stats
from features.summaries.numeric import NumericSummary
from features.drift.root_cause import localise, merge_column
from features.samples.reservoirs import UniformReservoir
from features.summaries.window import ColumnSummary, WindowSummary, merge_all

Sample = UniformReservoir[Row]


@dataclass(frozen=True)
class WindowResults:
    """Every test result of one scale window (whether or not it alerted), and the window's
    summary merged from its base windows."""

    scale_ms: int
    start_ms: int
    end_ms: int
    results: tuple[TestResult, ...]
    current: WindowSummary


@dataclass(frozen=True)
class EngineOutput:
    """What one base window produced."""

    summaries: tuple[WindowSummary, ...]
    tested: tuple[WindowResults, ...]
    events: tuple[DriftEvent, ...]


def run_tests(monitor: Monitor, reference: WindowSummary, current: WindowSummary) -> list[TestResult]:
    """The monitor's tests of every column with enough values on both sides.

    `null_rate` needs `min_count` values of any kind (a column that went missing has none
    that are valid; its null-rate result is then reported as the schema finding `missing`);
    the other tests need `min_count` valid values.
    """
    results = []
    for column in monitor.columns:
        ref, cur = reference.columns[column], current.columns[column]
        numeric = isinstance(ref, NumericSummary)
        tests = monitor.numeric_tests if numeric else monitor.categorical_tests
        table = NUMERIC_TESTS if numeric else CATEGORICAL_TESTS
        seen_ref, seen_cur = _seen(ref), _seen(cur)
        for name in tests:
            if name == "null_rate":
                enough = seen_ref >= monitor.min_count and seen_cur >= monitor.min_count
            else:
                enough = ref.count >= monitor.min_count and cur.count >= monitor.min_count
            if not enough:
                continue
            result = table[name](ref, cur).with_column(column)  # type: ignore[arg-type]
            if name == "null_rate" and cur.count == 0 and ref.count:
                result = replace(result, test="missing", note="no valid value in the window")
            results.append(result)
    return results


def _seen(s: ColumnSummary) -> int:
    return total(s) if isinstance(s, NumericSummary) else s.count + s.nulls


class DriftEngine:
    """One monitor's drift state (module docstring)."""

    def __init__(self, monitor: Monitor, reference: Reference | None = None, seed: int = 0) -> None:
        if monitor.reference.type == "file" and reference is None:
            raise ValueError(f"monitor {monitor.name!r} uses a reference file: pass its Reference "
                             "(features.monitors.reference.read_references)")
        self.monitor = monitor
        self.reference = reference if monitor.reference.type == "file" else None
        self.seed = seed
        self.history: list[tuple[WindowSummary, Sample | None]] = []
        self.warmup: list[tuple[WindowSummary, Sample | None]] = []
        self.closed_until: dict[int, int] = {}
        self.state = PolicyState()
        policy = monitor.policy
        self.lookback = {s: max(2 * s, (policy.consecutive + 3) * monitor.window_ms) for s in monitor.scales_ms}
        self.keep_ms = max(self.lookback.values()) + max(monitor.scales_ms) + monitor.reference.period_ms

    def add(self, window: WindowSummary, sample: Sample | None = None) -> EngineOutput:
        """Take the next closed base window (and its sample of rows, for the multivariate
        test); windows must come in time order."""
        if self.history and window.start_ms < self.history[-1][0].end_ms:
            raise ValueError(f"base windows must arrive in time order: [{window.start_ms}, "
                             f"{window.end_ms}) after one ending at {self.history[-1][0].end_ms}")
        self.history.append((window, sample))
        if not self.closed_until:
            self._start(window, sample)
            if not self.closed_until:
                return EngineOutput((window,), (), ())
        tested, events = [], []
        for scale in self.monitor.scales_ms:
            end = self.closed_until[scale] + scale
            while end <= window.end_ms:
                self.closed_until[scale] = end
                outcome = self._close(scale, end)
                if outcome is not None:
                    tested.append(outcome[0])
                    events.extend(outcome[1])
                end += scale
        horizon = window.end_ms - self.keep_ms  # after closing: a late close may need old windows
        while self.history[0][0].end_ms <= horizon:
            self.history.pop(0)
        return EngineOutput((window,), tuple(tested), tuple(events))

    def _start(self, window: WindowSummary, sample: Sample | None) -> None:
        """Set where each scale's first tested window starts (or collect the reference)."""
        scales = self.monitor.scales_ms
        spec = self.monitor.reference
        if spec.type != "first_windows":
            self.closed_until = {s: (window.start_ms // s) * s for s in scales}
            return
        self.warmup.append((window, sample))
        if len(self.warmup) < spec.windows:
            return
        windows, samples = zip(*self.warmup)
        self.reference = merged_reference(windows, samples, self.seed)
        self.warmup = []
        # Scale windows overlapping the reference are not tested.
        self.closed_until = {s: -(-window.end_ms // s) * s for s in scales}

    def _parts(self, start: int, end: int) -> list[tuple[WindowSummary, Sample | None]]:
        return [(w, s) for w, s in self.history if w.start_ms >= start and w.end_ms <= end]

    def _reference_for(self, start: int, end: int) -> Reference | None:
        if self.monitor.reference.type != "previous_period":
            return self.reference
        period = self.monitor.reference.period_ms
        parts = self._parts(start - period, end - period)
        if not parts or parts[0][0].start_ms > start - period:  # history must reach back a whole span
            return None
        windows, samples = zip(*parts)
        return merged_reference(windows, samples, self.seed + end)

    def _close(self, scale: int, end: int) -> tuple[WindowResults, list[DriftEvent]] | None:
        parts = self._parts(end - scale, end)
        reference = self._reference_for(end - scale, end)
        if not parts or reference is None:
            return None
        windows, samples = zip(*parts)
        current = merge_all(windows)
        results = run_tests(self.monitor, reference.summary, current)
        results += self._multivariate(reference, samples, end)
        outcome = WindowResults(scale, end - scale, end, tuple(results), current)
        alerts = self.state.decide(self.monitor.policy, results, self.monitor.kind, scale, end)
        return outcome, [self._event(a, scale, end, reference, current) for a in alerts]

    def _multivariate(self, reference: Reference, samples: Sequence[Sample | None], end: int) -> list[TestResult]:
        spec = self.monitor.multivariate
        if spec is None or reference.sample is None:
            return []
        current = merge_samples(samples, self.seed + end)
        if current is None:
            return []
        ref_rows, cur_rows = reference.sample.sample(), current.sample()
        if min(len(ref_rows), len(cur_rows)) < min(self.monitor.min_count, spec.sample):
            return []  # too few complete rows on a side
        result = mmd_test(np.asarray(ref_rows), np.asarray(cur_rows), spec.permutations, self.seed + end)
        return [result.with_column(MULTIVARIATE_COLUMN)]

    def _event(self, alert: Alert, scale: int, end: int, reference: Reference,
               current: WindowSummary) -> DriftEvent:
        r = alert.result
        start = end - scale
        if r.column == MULTIVARIATE_COLUMN:
            ref_stats = {"count": reference.sample.seen if reference.sample else 0}
            cur_stats = {"count": current.event_count}
            began = None
        else:
            ref_col, cur_col = reference.summary.columns[r.column], current.columns[r.column]
            stats = numeric_stats if isinstance(ref_col, NumericSummary) else categorical_stats
            ref_stats, cur_stats = stats(ref_col), stats(cur_col)  # type: ignore[arg-type]
            began = self._localise(r, scale, end)
        detail = _detail(r, alert, scale, began)
        return DriftEvent(self.monitor.name, r.column, alert.kind, r.test, r.statistic, r.p_value,
                          r.effect_size, alert.threshold, scale, start, end, began, ref_stats, cur_stats,
                          alert.severity, detail, runbook=self.monitor.runbook)

    def _localise(self, result: TestResult, scale: int, end: int) -> tuple[int, int] | None:
        column = result.column
        start = end - self.lookback[scale]
        windows = [w for w, _ in self._parts(start, end)]
        spec = self.monitor.reference
        if spec.type != "previous_period":
            assert self.reference is not None
            fixed = self.reference.summary.columns[column]
            return localise(windows, column, result.test, lambda _s, _e: fixed, self.monitor.min_count)
        # The reference of a suffix [s, end) is [s - period, end - period): merged one
        # window at a time as s moves back (localise asks for decreasing starts), and only
        # this column, so the scan stays linear in the number of windows.
        earlier = [w for w, _ in reversed(self._parts(start - spec.period_ms, end - spec.period_ms))]
        merged: list[ColumnSummary] = []

        def reference_for(suffix_start: int, _stop: int) -> ColumnSummary | None:
            while earlier and earlier[0].start_ms >= suffix_start - spec.period_ms:
                part = earlier.pop(0).columns[column]
                merged[:] = [part if not merged else merge_column(part, merged[0])]
            return merged[0] if merged else None

        return localise(windows, column, result.test, reference_for, self.monitor.min_count)


_LABELS = {"ks": "KS", "mean": "mean shift z", "std": "std change z", "null_rate": "null rate z",
           "psi": "PSI", "js": "JS distance", "wasserstein": "Wasserstein", "chi2": "chi2",
           "new_category": "new categories", "vanished_category": "vanished categories", "mmd": "MMD^2",
           "missing": "null rate z (no valid value)"}


def _detail(r: TestResult, alert: Alert, scale: int, began: tuple[int, int] | None) -> str:
    text = f"{r.column}: {_LABELS.get(r.test, r.test)} {r.statistic:.3g}"
    if r.p_value is not None:
        text += f" (p={r.p_value:.2g})"
    if r.effect_size is not None and math.isfinite(r.effect_size):
        text += f", effect {r.effect_size:.3g} vs threshold {alert.threshold:.3g}"
    text += f" at {format_duration(scale)}"
    if began is not None:
        text += f", began in [{iso_utc(began[0])[11:16]}, {iso_utc(began[1])[11:16]})"
    return text + (f"; {r.note}" if r.note and r.test in SCHEMA_TESTS else "")
