"""Expectations per base window: config, each kind against a direct computation on the raw
window (the `mostly` boundary on both sides), the sketch-based range never failing where the
exact computation would not, mergeable per-partition checks, schema-version changes."""

from __future__ import annotations

import pickle
import re
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features.config import parse_config
from features.config_values import ConfigError
from features.monitors.base_windows import PartitionWindows, WindowCloser
from features.events import Event
from features.expectations.config import Expectation
from features.monitors.expectation_checks import ExpectationMonitor
from features.expectations.column_checks import ValueRange
from features.monitors.config import Monitor
from features.summaries.numeric import NumericSummary, merge
from features.expectations.value_checks import Matches
from features.expectations.window_checks import WindowChecks
from features.expectations.window_checks import merge as merge_window_checks

FIELDS = {"area": "string", "km": "float", "surge": {"type": "float", "nullable": True},
          "payment": {"type": "category", "values": ["card", "cash"]}, "ride_id": "string",
          "code": "int", "pickup": "int", "dropoff": {"type": "int", "required": False}}


def monitor(expectations: list[dict[str, Any]], policy: dict[str, Any] | None = None,
            version_field: str | None = None) -> Monitor:
    schema: dict[str, Any] = {"entity": "area", "event_time": "ts", "fields": FIELDS}
    if version_field:
        schema["version_field"] = version_field
    document = {"source": {"topic": "rides"}, "schema": schema,
                "monitors": [{"name": "inputs", "numeric": ["km", "surge"], "categorical": ["payment"],
                              "window": "1m", "expectations": expectations,
                              "policy": policy or {"consecutive": 1, "cooldown": "0s"}}]}
    return parse_config(document).monitors[0]


def close_window(m: Monitor, rows: list[dict[str, Any]], start: int = 0) -> tuple[Any, WindowChecks | None]:
    """The rows as one base window, through two input partitions and the closer (as the flow)."""
    parts = [PartitionWindows((m,), lateness_ms=0) for _ in range(2)]
    closer = WindowCloser(m, partitions=2)
    out = []
    for p in range(2):
        events = [Event("a", start + i, r, partition=p) for i, r in enumerate(rows) if i % 2 == p]
        partials, late = parts[p].add(events)
        assert not late
        out += closer.add(p, parts[p].watermark(p), partials)
    for p in range(2):
        out += closer.add(p, -(2**62), parts[p].flush())
    out += closer.flush()
    assert len(out) == 1
    summary, _, checks = out[0]
    return summary, checks


def base_row(i: int) -> dict[str, Any]:
    return {"area": "a", "ts": i, "km": 5.0 + i % 7, "surge": 1.0, "payment": "card", "ride_id": f"ride-{i}",
            "code": i, "pickup": 1000 + i, "dropoff": 2000 + i}


# kind -> (expectation entry, how to break row i, the direct check of a row: None = not checked)
CASES: dict[str, tuple[dict[str, Any], Any, Any]] = {
    "range": ({"column": "km", "range": {"min": 0, "max": 100}},
              lambda r: {**r, "km": r["km"] * 1000}, lambda r: 0 <= r["km"] <= 100),
    "in": ({"column": "payment", "in": ["card", "cash"]},
           lambda r: {**r, "payment": "crypto"}, lambda r: r["payment"] in ("card", "cash")),
    "not_null": ({"column": "surge", "not_null": True},
                 lambda r: {**r, "surge": None}, lambda r: r["surge"] is not None),
    "type": ({"column": "code", "type": "integer"},
             lambda r: {**r, "code": 2.5}, lambda r: isinstance(r["code"], int)),
    "regex": ({"column": "ride_id", "regex": "^ride-"},
              lambda r: {**r, "ride_id": "trip-" + r["ride_id"]}, lambda r: re.search("^ride-", r["ride_id"]) is not None),
    "compare": ({"compare": "dropoff > pickup"},
                lambda r: {**r, "dropoff": r["pickup"] - 1},
                lambda r: None if r.get("dropoff") is None else r["dropoff"] > r["pickup"]),
}


@pytest.mark.parametrize("kind", sorted(CASES))
@pytest.mark.parametrize("n, broken", [(100, 0), (100, 7), (150, 60), (97, 96)])
def test_each_kind_equals_the_direct_computation_at_the_mostly_boundary(kind: str, n: int, broken: int) -> None:
    entry, spoil, ok = CASES[kind]
    rng = np.random.default_rng(n + broken)
    bad = set(rng.choice(n, broken, replace=False).tolist())
    rows = [spoil(base_row(i)) if i in bad else base_row(i) for i in range(n)]
    if kind == "compare":  # events without one of the fields are not checked
        rows += [{k: v for k, v in base_row(n + i).items() if k != "dropoff"} for i in range(5)]
    ok_values = [ok(r) for r in rows]
    checked = [v for v in ok_values if v is not None]
    complying = sum(checked)
    for mostly, expected in ((complying / len(checked), "pass"), ((complying + 1) / len(checked), "fail")):
        if mostly > 1:
            continue
        m = monitor([{**entry, "mostly": mostly}])
        summary, checks = close_window(m, rows)
        result = ExpectationMonitor(m).check(summary, checks)
        (r,) = result.results
        assert (r.verdict, r.failing, r.checked) == (expected, len(checked) - complying, len(checked)), (mostly, r)
        alerts = [e for e in result.events if e.kind == "expectation"]
        assert [e.test for e in alerts] == ([kind] if expected == "fail" else [])
        if alerts:
            assert (alerts[0].failing, alerts[0].checked) == (len(checked) - complying, len(checked))


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(500, 20_000), q=st.tuples(st.floats(0, 1), st.floats(0, 1)),
       mostly=st.floats(0.5, 1.0), parts=st.integers(1, 4), tail=st.sampled_from([0.0, 0.02, 0.3]))
def test_a_range_on_a_sketch_never_fails_where_the_exact_computation_passes(
        seed: int, n: int, q: tuple[float, float], mostly: float, parts: int, tail: float) -> None:
    rng = np.random.default_rng(seed)
    values = rng.lognormal(1.5, 0.6, n)
    values[rng.random(n) < tail] *= 1000  # a unit bug in part of the window
    lo, hi = sorted(np.quantile(values, q))
    summary = NumericSummary()
    for chunk in np.array_split(values, parts):  # merged from partitions, as in the flow
        part = NumericSummary()
        part.update(chunk)
        summary = merge(summary, part)
    result = ValueRange("x", float(lo), float(hi), mostly).evaluate(summary)
    inside = int(np.count_nonzero((values >= lo) & (values <= hi)))
    need = int(np.ceil(round(mostly * n, 6)))
    if result.verdict == "fail":
        assert inside < need
    if result.verdict == "pass":
        assert inside >= need
    assert result.failing_bounds[0] <= n - inside <= result.failing_bounds[1]


@settings(max_examples=40, deadline=None)
@given(rows=st.lists(st.tuples(st.sampled_from(["ride-1", "trip-2", None, 7]), st.sampled_from([1, 2, None])),
                     max_size=60),
       cuts=st.lists(st.integers(0, 60), max_size=3))
def test_window_checks_merge_across_partitions_like_one_pass(rows: list[tuple[Any, Any]], cuts: list[int]) -> None:
    regex = Expectation("regex", Matches("id", "^ride-"), True)
    events = [{"id": i, **({} if v is None else {"v": v})} for i, v in rows]
    whole = WindowChecks.empty((regex,), "v", 1)
    whole.add(events)
    bounds = [0, *sorted(c for c in cuts if c <= len(events)), len(events)]
    parts = []
    for a, b in zip(bounds, bounds[1:]):
        part = WindowChecks.empty((regex,), "v", 1)
        part.add(events[a:b])
        parts.append(pickle.loads(pickle.dumps(part)))  # as Bytewax snapshots them
    merged = merge_window_checks(parts)
    assert merged.versions == whole.versions
    c, w = merged.checks[0], whole.checks[0]
    assert (c.checked, c.failed, c.nulls, c.examples) == (w.checked, w.failed, w.nulls, w.examples)


def test_a_schema_version_change_is_one_event_and_holds_that_windows_alerts_back() -> None:
    m = monitor([{"column": "ride_id", "regex": "^ride-"}, {"column": "km", "range": {"max": 100}, "mostly": 0.9}],
                policy={"consecutive": 2, "cooldown": "1h"}, version_field="schema_version")
    guard = ExpectationMonitor(m)
    outputs = []
    for minute in range(4):
        rows = [base_row(i) for i in range(100)]
        if minute >= 2:  # version 2 renames the ride ids and doubles a fifth of the distances x1000
            rows = [{**r, "schema_version": 2, "ride_id": "trip-" + r["ride_id"],
                     "km": r["km"] * (1000 if i % 20 < 3 else 1)} for i, r in enumerate(rows)]
        outputs.append(guard.check(*close_window(m, rows, start=minute * 60_000)))
    held = outputs[2]
    assert held.held and held.schema_event is not None and held.events == ()
    s = held.schema_event.to_message(0)
    assert (s["kind"], s["test"], s["column"], s["statistic"]) == ("schema", "schema_version", "schema_version", 1.0)
    assert s["current"]["categories"] == {"2": 1.0} and s["reference"]["categories"] == {"1": 1.0}
    # The regex violation is critical (immediate) and the range one a warning (two windows in
    # a row): both alert in the window after the change, the held window counting for the streak.
    assert not outputs[3].held
    assert sorted((e.test, e.severity) for e in outputs[3].events) == [("range", "warning"), ("regex", "critical")]
    assert all(not o.events for o in outputs[:2])


@pytest.mark.parametrize("entry, key", [
    ({"column": "km", "range": {"min": 0}, "in": ["a"]}, "monitors[0].expectations[0]"),
    ({"column": "eta", "range": {"min": 0}}, "monitors[0].expectations[0].column"),
    ({"column": "payment", "range": {"min": 0}}, "monitors[0].expectations[0].column"),
    ({"column": "km", "range": {"min": 5, "max": 1}}, "monitors[0].expectations[0].range"),
    ({"column": "km", "range": {"low": 5}}, "monitors[0].expectations[0].range.low"),
    ({"column": "km", "range": {"min": 0}, "mostly": 95}, "monitors[0].expectations[0].mostly"),
    ({"column": "ride_id", "regex": "(unclosed"}, "monitors[0].expectations[0].regex"),
    ({"column": "ride_id", "type": "text"}, "monitors[0].expectations[0].type"),
    ({"column": "surge", "not_null": False}, "monitors[0].expectations[0].not_null"),
    ({"compare": "dropoff >> pickup"}, "monitors[0].expectations[0].compare"),
    ({"compare": "dropoff > nowhere"}, "monitors[0].expectations[0].compare"),
    ({"column": "km", "compare": "dropoff > pickup"}, "monitors[0].expectations[0].column"),
    ({"column": "km", "range": {"min": 0}, "unit": "km"}, "monitors[0].expectations[0].unit"),
])
def test_a_bad_expectation_stops_at_start_naming_the_key(entry: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as err:
        monitor([entry])
    assert err.value.key == key


def test_one_expectation_per_column_and_kind() -> None:
    with pytest.raises(ConfigError, match="one range expectation per column"):
        monitor([{"column": "km", "range": {"min": 0}}, {"column": "km", "range": {"max": 9}}])


def test_type_number_on_a_monitored_numeric_column_is_answered_by_the_summary() -> None:
    m = monitor([{"column": "km", "type": "number"}, {"column": "code", "type": "number"},
                 {"compare": "dropoff >= ts"}])
    assert [(e.test, e.per_event, type(e.spec).__name__) for e in m.expectations] == [
        ("type", False, "NumericType"), ("type", True, "HasType"), ("compare", True, "Compare")]
