"""driftline's side of the drift benchmark: the monitor a user would configure, fed the
stream's base windows as summaries, exactly as the drift flow feeds its engine.

The monitor is parsed from the same TOML-shaped table a user writes, with the defaults of
`features.monitors.config` (tests, thresholds, policy): scales of 1 and 5 base windows; the
reference is the reference windows' merged summary (what `driftline reference build`
writes), or, for the seasonal stream, the same window one period earlier.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from drift_baselines import Alert, Stream
from drift_streams import CATEGORICAL, NUMERIC, Scenario
from features.monitors.engine import DriftEngine, run_tests
from features.monitors.reference import Reference
from features.monitors.config import ReferenceSpec, parse_monitors
from features.schema import parse_schema
from features.summaries.window import merge_all, summarize_columns

WINDOW_MS = 60_000
START_MS = 1_767_225_600_000  # window 0 starts here; reference windows lie before it
SCHEMA = parse_schema({"entity": "id", "event_time": "ts",
                       "fields": {"id": "string", **{n: "float" for n in NUMERIC},
                                  **{n: "category" for n in CATEGORICAL}}})


def monitor_for(s: Scenario):
    """The monitor of the benchmark streams, with driftline's default tests and policy."""
    reference = ({"type": "previous_period", "period": f"{s.period}m"} if s.period
                 else {"type": "first_windows", "windows": 1})
    monitor = parse_monitors([{"name": "bench", "numeric": list(NUMERIC), "categorical": list(CATEGORICAL),
                               "window": "1m", "scales": ["1m", "5m"], "reference": reference}], SCHEMA)[0]
    if not s.period:  # a reference built once from training data, as `reference build` does
        monitor = dataclasses.replace(monitor, reference=ReferenceSpec("file"))
    return monitor


def _summary(index: int, columns: dict) -> object:
    start = START_MS + index * WINDOW_MS
    return summarize_columns(start, start + WINDOW_MS, columns, NUMERIC, CATEGORICAL)


def _window_of(ms: int) -> int:
    return (ms - START_MS) // WINDOW_MS


def run_driftline(stream: Stream, s: Scenario) -> list[Alert]:
    """Alerts of driftline's engine on the stream: (base window the alert was raised in,
    column, base window where it says the change began)."""
    monitor = monitor_for(s)
    reference = None
    if monitor.reference.type == "file":
        reference = Reference(merge_all([_summary(-len(stream.reference) + i, cols)
                                         for i, cols in enumerate(stream.reference)]))
    engine = DriftEngine(monitor, reference)
    alerts = []
    for index, columns in stream.windows:
        for event in engine.add(_summary(index, columns)).events:
            began = None if event.began is None else _window_of(event.began[0])
            alerts.append(Alert(_window_of(event.end_ms) - 1, event.column, began))
    return alerts


def column_test_timing(columns: int = 50, events: int = 1000, repeats: int = 20) -> dict[str, float]:
    """Milliseconds to test `columns` numeric columns of one window against the reference
    (driftline, from summaries, default numeric tests) and with scipy's `ks_2samp` on the
    raw values (the same data), medians of `repeats`."""
    from scipy import stats

    rng = np.random.default_rng(0)
    names = [f"v{i}" for i in range(columns)]
    ref_raw = {n: rng.normal(0, 1, 20 * events) for n in names}
    cur_raw = {n: rng.normal(0.1, 1, events) for n in names}
    schema = parse_schema({"entity": "id", "event_time": "ts",
                           "fields": {"id": "string", **{n: "float" for n in names}}})
    monitor = parse_monitors([{"name": "t", "numeric": names, "window": "1m"}], schema)[0]
    ref = summarize_columns(0, WINDOW_MS, ref_raw, names, [])
    cur = summarize_columns(WINDOW_MS, 2 * WINDOW_MS, cur_raw, names, [])

    def median_ms(fn) -> float:
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return 1000 * float(np.median(times))

    return {
        "driftline_ms": median_ms(lambda: run_tests(monitor, ref, cur)),
        "scipy_ms": median_ms(lambda: [stats.ks_2samp(ref_raw[n], cur_raw[n]) for n in names]),
        "columns": columns,
        "tests_per_column": len(monitor.numeric_tests),
    }
