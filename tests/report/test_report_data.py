"""features.report_data: at-least-once duplicates and message order do not change a report."""

from __future__ import annotations

import random

from hypothesis import given, strategies as st

from features.monitors.config import Monitor, ReferenceSpec
from features.report_data import TopicNames, build_report, summary_message
from features.summaries.window import summarize_events

MONITOR = Monitor("inputs", ("price",), ("payment",), 60_000, (60_000, 180_000),
                  ReferenceSpec("first_windows", windows=2), min_count=10)
NAMES = TopicNames("rides.dlq", "rides.late")


def _messages() -> list[dict]:
    rng = random.Random(1)
    out = []
    for i in range(9):
        events = [{"price": rng.gauss(10 + 5 * (i >= 6), 1), "payment": rng.choice("ab" if i < 7 else "abc")}
                  for _ in range(200)]
        window = summarize_events(i * 60_000, (i + 1) * 60_000, events, ["price"], ["payment"])
        out += [summary_message("inputs", c, window) for c in ("price", "payment")]
    return out


MESSAGES = _messages()
ALERT = {"id": "inputs/price/mean/1m/420000", "monitor": "inputs", "column": "price", "kind": "covariate",
         "test": "mean", "severity": "critical", "scale": "1m", "window": {"start_ms": 360_000, "end_ms": 420_000},
         "began": {"start_ms": 360_000, "end_ms": 420_000}}


def _view(data) -> tuple:
    return (data.events, data.start_ms, data.end_ms, len(data.alerts),
            [(c.column, c.severity, c.test, [(s.scale_ms, [(p.start_ms, round(p.value, 9)) for p in s.points])
                                            for s in c.series]) for c in data.columns])


@given(st.randoms(use_true_random=False), st.integers(0, len(MESSAGES)))
def test_duplicates_and_order_do_not_change_the_report(rnd: random.Random, duplicates: int) -> None:
    base = build_report([MONITOR], {"drift.summaries": MESSAGES, "drift.events": [ALERT]}, NAMES)
    shuffled = MESSAGES + rnd.sample(MESSAGES, duplicates)
    rnd.shuffle(shuffled)
    again = build_report([MONITOR], {"drift.summaries": shuffled, "drift.events": [ALERT, ALERT]}, NAMES)
    assert _view(again) == _view(base)


def test_alerted_column_first_new_category_and_reference_of_the_first_windows() -> None:
    data = build_report([MONITOR], {"drift.summaries": MESSAGES, "drift.events": [ALERT]}, NAMES)
    assert [c.column for c in data.columns] == ["price", "payment"]
    price, payment = data.columns
    assert price.severity == "critical" and price.test == "mean" and price.threshold == 0.1
    assert price.reference_span == (0, 120_000) and price.reference.count == 400
    assert price.current_span == (360_000, 540_000)  # the largest scale (3m) at the end
    assert payment.new_categories == ("c",)
    # the mean test's effect jumps where the shift was planted (window 6), at the 1m scale
    one_minute = {p.start_ms: p.value for p in price.series[0].points}
    assert max(one_minute[t] for t in range(120_000, 360_000, 60_000)) < 0.5 < min(
        one_minute[t] for t in range(360_000, 540_000, 60_000))
    assert data.by_severity == {"critical": 1, "warning": 0, "info": 0}


def test_a_column_whose_worst_alert_is_an_expectation_charts_its_drift_statistic() -> None:
    """An expectation (range, in) has no statistic over time: the chart shows the monitor's drift
    test for the column (it showed nothing, scaled to the expectation's 1e-9 level)."""
    expectations = [{**ALERT, "id": f"inputs/{column}/{test}/1m/60000", "column": column, "kind": "expectation",
                     "test": test, "window": {"start_ms": 0, "end_ms": 60_000},
                     "began": {"start_ms": 0, "end_ms": 540_000}}
                    for column, test in (("price", "range"), ("payment", "in"))]
    data = build_report([MONITOR], {"drift.summaries": MESSAGES, "drift.events": expectations}, NAMES)
    for column in data.columns:
        assert column.test in (MONITOR.numeric_tests + MONITOR.categorical_tests), column.test
        assert column.threshold >= 0.01 and any(s.points for s in column.series), column.column
        assert len(column.alerts) == 1 and column.alerts[0]["kind"] == "expectation"  # still marked
