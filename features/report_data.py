"""What `driftline report` shows, gathered from the messages of the drift, feature and model
flows: pure (no Kafka), so a report is the same from Kafka topics or replay files.

Every distribution comes from merging the `drift.summaries` window summaries with
`features.summaries.window.merge_all`, never from events: a column's *reference* is the
monitor's (its first N base windows merged, its reference file, or the same span one period
earlier) and its *current* distribution the most recent windows (the monitor's largest scale).
The drift statistic over time is the effect size of one test per column (the test of its
worst alert, else the monitor's first test) on each scale window against the reference, the
quantity thresholds apply to; alerts are the `drift.events` themselves.

>>> from features.monitors.config import Monitor, ReferenceSpec
>>> from features.summaries.window import summarize_events
>>> m = Monitor("inputs", ("price",), (), 60_000, (60_000,), ReferenceSpec("first_windows", windows=2))
>>> msgs = [summary_message("inputs", "price", summarize_events(
...     i * 60_000, (i + 1) * 60_000, [{"price": float(i >= 3) + j / 500} for j in range(500)], ["price"], []))
...     for i in range(5)]
>>> data = build_report([m], {"drift.summaries": msgs}, TopicNames("rides.dlq", "rides.late"))
>>> c = data.columns[0]; c.test, [round(p.value, 1) for p in c.series[0].points]
('ks', [0.0, 1.0, 1.0])
>>> round(c.reference.mean, 3), round(c.current.mean, 3), data.events
(0.499, 1.499, 2500)
"""

from __future__ import annotations

import base64
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from features.drift.categorical import CATEGORICAL_TESTS
from features.summaries.categorical import CategoricalSummary
from features.monitors.events import format_duration
from features.events import parse_time_ms
from features.monitors.config import Monitor
from features.drift.numeric import NUMERIC_TESTS
from features.summaries.numeric import NumericSummary
from features.summaries.window import ColumnSummary, WindowSummary, merge_all

SEVERITY_RANK = {"critical": 3, "warning": 2, "info": 1, "none": 0}
SUMMARY_SCHEMA = "driftline.window_summary/1"
METRICS_SCHEMA = "driftline.model_metrics/1"
PROMOTION_SCHEMA = "driftline.model_promotion/1"
# Tests whose result comes from another test function ("missing" is null_rate on an empty window).
_TEST_FUNCTION = {"missing": "null_rate"}
Message = Mapping[str, Any]


@dataclass(frozen=True)
class TopicNames:
    """The topics a report reads besides the monitors' own."""

    dead_letters: str
    late: str
    model_metrics: str = "model.metrics"
    event_time_field: str = "ts"
    time_format: str = "epoch_ms"


@dataclass(frozen=True)
class StatPoint:
    """The effect size of the column's test on one scale window."""

    start_ms: int
    end_ms: int
    value: float


@dataclass(frozen=True)
class ScaleSeries:
    """The statistic over time at one scale."""

    scale_ms: int
    points: tuple[StatPoint, ...]

    @property
    def label(self) -> str:
        """The scale as the config writes it.

        >>> ScaleSeries(300_000, ()).label
        '5m'
        """
        return format_duration(self.scale_ms)


@dataclass(frozen=True)
class ColumnReport:
    """One monitored column: its distributions, statistic over time and alerts."""

    monitor: str
    column: str
    reference: ColumnSummary | None
    reference_span: tuple[int, int] | None
    current: ColumnSummary
    current_span: tuple[int, int]
    test: str
    threshold: float
    critical: float
    series: tuple[ScaleSeries, ...]
    alerts: tuple[Message, ...]

    @property
    def kind(self) -> str:
        """numeric or categorical."""
        return "numeric" if isinstance(self.current, NumericSummary) else "categorical"

    @property
    def severity(self) -> str:
        """The worst severity of its alerts ("none" without alerts)."""
        return max((a["severity"] for a in self.alerts), key=SEVERITY_RANK.__getitem__, default="none")

    @property
    def anchor(self) -> str:
        """The id of its section in the page.

        >>> anchor("inputs", "price")
        'col-inputs-price'
        """
        return anchor(self.monitor, self.column)

    @property
    def new_categories(self) -> tuple[str, ...]:
        """Categories of the current windows the reference never saw."""
        if not isinstance(self.current, CategoricalSummary) or self.reference is None:
            return ()
        return tuple(sorted(set(self.current.counts) - set(self.reference.counts)))  # type: ignore[union-attr]


@dataclass(frozen=True)
class HealthPoint:
    """One base window of the stream: events summarised, late events, dead letters."""

    start_ms: int
    end_ms: int
    events: int
    late: int
    dead_letters: int


@dataclass(frozen=True)
class ModelReport:
    """One model (and segment): metric windows, promotions and error-drift events."""

    name: str
    task: str
    windows: tuple[Message, ...]
    promotions: tuple[Message, ...]
    drifts: tuple[Message, ...]

    @property
    def metric(self) -> str:
        """The metric plotted: accuracy for classifiers, MAE for regressors."""
        return "accuracy" if self.task == "classification" else "mae"


@dataclass(frozen=True)
class ReportData:
    """Everything the page shows (module docstring)."""

    start_ms: int | None
    end_ms: int | None
    events: int
    rejected: int
    late: int
    unplaced_dead_letters: int
    columns: tuple[ColumnReport, ...]
    alerts: tuple[Message, ...]
    health: tuple[HealthPoint, ...]
    models: tuple[ModelReport, ...]

    @property
    def by_severity(self) -> dict[str, int]:
        """Alerts per severity, worst first.

        >>> ReportData(None, None, 0, 0, 0, 0, (), ({"severity": "warning"},), (), ()).by_severity
        {'critical': 0, 'warning': 1, 'info': 0}
        """
        counts = {s: 0 for s in ("critical", "warning", "info")}
        for a in self.alerts:
            counts[a["severity"]] = counts.get(a["severity"], 0) + 1
        return counts


def anchor(monitor: str, column: str) -> str:
    """The page id of a column's section (names are letters, digits and `_ . -`)."""
    return f"col-{monitor}-{column}"


def summary_message(monitor: str, column: str, window: WindowSummary) -> dict[str, Any]:
    """A `drift.summaries` message of one column's window (the fields the report reads)."""
    one = WindowSummary(window.start_ms, window.end_ms, window.event_count,
                        {column: window.columns[column]}, window.spans)
    return {"schema": SUMMARY_SCHEMA, "id": f"{monitor}/{column}/{window.end_ms}", "monitor": monitor,
            "column": column, "event_count": window.event_count, "summary": one.to_dict()}


def unique(messages: Iterable[Message]) -> list[Message]:
    """Messages without at-least-once duplicates (same `id`), in their first order.

    >>> [m["n"] for m in unique([{"id": "a", "n": 1}, {"id": "a", "n": 2}, {"id": "b", "n": 3}])]
    [1, 3]
    """
    seen: dict[str, Message] = {}
    for m in messages:
        seen.setdefault(m["id"], m)
    return list(seen.values())


def message_time_ms(msg: Message) -> int | None:
    """The event time a message is about: its window's end, a promotion's time or a late
    event's time (None for dead letters, whose time is what they failed to carry).

    >>> message_time_ms({"window": {"start_ms": 0, "end_ms": 60_000}}), message_time_ms({"at_ms": 5})
    (60000, 5)
    """
    if isinstance(msg.get("window"), Mapping):
        return int(msg["window"]["end_ms"])
    if "at_ms" in msg:
        return int(msg["at_ms"])
    if isinstance(msg.get("event_time"), str):
        return _iso_ms(msg["event_time"])
    return None


def within(messages: Iterable[Message], since_ms: int | None, until_ms: int | None) -> list[Message]:
    """The messages about event time in [since_ms, until_ms] (a window must end inside it);
    messages without an event time are kept.

    >>> [m["id"] for m in within([{"id": "a", "at_ms": 5}, {"id": "b", "at_ms": 50}, {"id": "c"}], 10, None)]
    ['b', 'c']
    """
    out = []
    for msg in messages:
        t = message_time_ms(msg)
        if t is None or ((since_ms is None or t >= since_ms) and (until_ms is None or t <= until_ms)):
            out.append(msg)
    return out


def build_report(monitors: Sequence[Monitor], topics: Mapping[str, Sequence[Message]], names: TopicNames,
                 references: Mapping[str, WindowSummary] | None = None) -> ReportData:
    """The report of these topics' messages (topic name -> JSON messages); `references` are
    the summaries of the monitors whose reference is a file."""
    references = references or {}
    columns: list[ColumnReport] = []
    alerts: list[Message] = []
    health_windows: dict[tuple[int, int], int] = {}
    events = 0
    for m in monitors:
        windows = _column_windows(topics.get(m.summaries_topic, ()), m.name)
        drift = [e for e in unique(topics.get(m.events_topic, ())) if e.get("monitor") == m.name]
        alerts += drift
        for column in m.columns:
            if windows.get(column):
                columns.append(_column_report(m, column, windows[column], references.get(m.name),
                                              [e for e in drift if e["column"] == column]))
        first = next((windows[c] for c in m.columns if windows.get(c)), [])
        if not health_windows:
            health_windows = {(w.start_ms, w.end_ms): w.event_count for w in first}
            events = sum(health_windows.values())
    model_events = [e for m_topic in {m.events_topic for m in monitors}
                    for e in unique(topics.get(m_topic, ())) if e.get("kind") == "error_rate"]
    alerts += model_events
    dead = unique(topics.get(names.dead_letters, ()))
    late = unique(topics.get(names.late, ()))
    health, unplaced = _health(health_windows, late, dead, names)
    columns.sort(key=lambda c: (-SEVERITY_RANK[c.severity], -len(c.alerts),
                                min((a["window"]["end_ms"] for a in c.alerts), default=0), c.monitor, c.column))
    alerts.sort(key=lambda a: (-SEVERITY_RANK[a["severity"]], a["window"]["end_ms"], a["column"]))
    bounds = [b for w in health_windows for b in w]
    return ReportData(min(bounds, default=None), max(bounds, default=None), events, len(dead), len(late),
                      unplaced, tuple(columns), tuple(alerts), health,
                      _models(topics.get(names.model_metrics, ()), model_events))


def _column_windows(messages: Iterable[Message], monitor: str) -> dict[str, list[WindowSummary]]:
    out: dict[str, list[WindowSummary]] = defaultdict(list)
    for msg in unique(messages):
        if msg.get("schema") == SUMMARY_SCHEMA and msg["monitor"] == monitor:
            out[msg["column"]].append(WindowSummary.from_dict(msg["summary"]))
    for ws in out.values():
        ws.sort(key=lambda w: w.start_ms)
    return out


def _column_report(m: Monitor, column: str, windows: list[WindowSummary], file_reference: WindowSummary | None,
                   alerts: list[Message]) -> ColumnReport:
    scale = max(m.scales_ms)
    last_end = windows[-1].end_ms
    current = merge_all(w for w in windows if w.start_ms >= last_end - scale)
    reference = _reference(m, windows, file_reference, current.start_ms, current.end_ms)
    alerts.sort(key=lambda a: a["window"]["end_ms"])
    numeric = isinstance(windows[0].columns[column], NumericSummary)
    test = _chart_test(m, numeric, alerts)
    series = tuple(ScaleSeries(s, tuple(_points(m, column, windows, file_reference, s, test))) for s in m.scales_ms)
    return ColumnReport(
        m.name, column, None if reference is None else reference.columns[column],
        None if reference is None else (reference.start_ms, reference.end_ms),
        current.columns[column], (current.start_ms, current.end_ms), test,
        m.policy.threshold(test), m.policy.critical_level(test), series, tuple(alerts))


def _chart_test(m: Monitor, numeric: bool, alerts: list[Message]) -> str:
    """The statistic the column's chart follows: the test of its worst drift alert, else the
    monitor's first test for the column's kind. An expectation (`range`, `in`, ...) has no
    statistic over time, so it never picks the chart (its alerts are still marked on it).
    """
    functions = NUMERIC_TESTS if numeric else CATEGORICAL_TESTS
    drifts = [a for a in alerts if _TEST_FUNCTION.get(a["test"], a["test"]) in functions]
    worst = max(drifts, key=lambda a: SEVERITY_RANK[a["severity"]], default=None)
    if worst is not None:
        return worst["test"]
    configured = m.numeric_tests if numeric else m.categorical_tests
    return next((t for t in configured if _TEST_FUNCTION.get(t, t) in functions), configured[0])


def _reference(m: Monitor, windows: list[WindowSummary], file_reference: WindowSummary | None,
               start_ms: int, end_ms: int) -> WindowSummary | None:
    """The monitor's reference for the span [start_ms, end_ms) (None when it has none)."""
    spec = m.reference
    if spec.type == "file":
        return file_reference
    if spec.type == "first_windows":
        first = windows[:spec.windows]
        return merge_all(first) if len(first) == spec.windows and first[-1].end_ms <= start_ms else None
    earlier = [w for w in windows if start_ms - spec.period_ms <= w.start_ms and w.end_ms <= end_ms - spec.period_ms]
    return merge_all(earlier) if earlier else None


def _points(m: Monitor, column: str, windows: list[WindowSummary], file_reference: WindowSummary | None,
            scale_ms: int, test: str) -> Iterable[StatPoint]:
    groups: dict[int, list[WindowSummary]] = defaultdict(list)
    for w in windows:
        groups[w.start_ms // scale_ms * scale_ms].append(w)
    numeric = isinstance(windows[0].columns[column], NumericSummary)
    function = (NUMERIC_TESTS if numeric else CATEGORICAL_TESTS).get(_TEST_FUNCTION.get(test, test))
    if function is None:
        return
    for start in sorted(groups):
        current = merge_all(groups[start])
        reference = _reference(m, windows, file_reference, start, start + scale_ms)
        if reference is None:
            continue
        ref, cur = reference.columns[column], current.columns[column]
        if min(ref.count, cur.count) < m.min_count and test not in ("null_rate", "missing"):
            continue
        result = function(ref, cur)  # type: ignore[arg-type]
        value = result.effect_size if result.effect_size is not None else result.statistic
        yield StatPoint(current.start_ms, current.end_ms, abs(float(value)))


def _iso_ms(text: str) -> int:
    """Epoch ms of an ISO-8601 UTC time as `features.messages.iso_utc` writes it.

    >>> _iso_ms("2026-01-01T00:00:01.500Z")
    1767225601500
    """
    return round(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def _dead_letter_ms(dead: Message, names: TopicNames) -> int | None:
    """When a dead letter happened in event time: its own time field if it has one that
    parses, else its Kafka timestamp; None when neither exists (a replayed garbage line)."""
    try:
        doc = orjson.loads(base64.b64decode(dead.get("value_b64") or ""))
        return parse_time_ms(doc[names.event_time_field], names.time_format)
    except Exception:  # noqa: BLE001 - a dead letter is by definition anything at all
        stamp = (dead.get("source") or {}).get("timestamp")
        return _iso_ms(stamp) if stamp else None


def _health(windows: Mapping[tuple[int, int], int], late: Sequence[Message], dead: Sequence[Message],
            names: TopicNames) -> tuple[tuple[HealthPoint, ...], int]:
    spans = sorted(windows)
    late_at = [_iso_ms(m["event_time"]) for m in late]
    dead_at = [_dead_letter_ms(m, names) for m in dead]

    def count(times: Iterable[int | None], start: int, end: int) -> int:
        return sum(1 for t in times if t is not None and start <= t < end)

    points = tuple(HealthPoint(s, e, windows[(s, e)], count(late_at, s, e), count(dead_at, s, e)) for s, e in spans)
    return points, len(dead) - sum(p.dead_letters for p in points)


def _models(messages: Sequence[Message], drifts: Sequence[Message]) -> tuple[ModelReport, ...]:
    metrics: dict[str, list[Message]] = defaultdict(list)
    promotions: dict[str, list[Message]] = defaultdict(list)
    for msg in unique(messages):
        name = msg["model"] + (f"@{msg['segment']}" if msg.get("segment") else "")
        if msg.get("schema") == METRICS_SCHEMA:
            metrics[name].append(msg)
        elif msg.get("schema") == PROMOTION_SCHEMA:
            promotions[name].append(msg)
    return tuple(
        ModelReport(name, windows[0]["task"], tuple(sorted(windows, key=lambda w: w["window"]["end_ms"])),
                    tuple(sorted(promotions[name], key=lambda p: p["at_ms"])),
                    tuple(sorted((d for d in drifts if d["column"] == name), key=lambda d: d["window"]["end_ms"])))
        for name, windows in sorted(metrics.items()))
