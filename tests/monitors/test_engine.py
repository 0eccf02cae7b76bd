"""The drift engine: multi-scale merges, references, alerts, root-cause windows, snapshots."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features.monitors.engine import DriftEngine
from features.monitors.reference import Reference, sample_rows
from features.monitors.config import Monitor, MultivariateSpec, ReferenceSpec
from features.samples.reservoirs import UniformReservoir
from features.summaries.window import summarize_columns

MIN = 60_000


def base(i: int, x: np.ndarray, cats: list[str] | None = None) -> object:
    columns: dict[str, object] = {"x": x}
    if cats is not None:
        columns["c"] = cats
    return summarize_columns(i * MIN, (i + 1) * MIN, columns, ["x"], ["c"] if cats is not None else [])


def monitor(reference: ReferenceSpec, scales: tuple[int, ...] = (MIN,), categorical: tuple[str, ...] = (),
            **kw: object) -> Monitor:
    return Monitor("m", ("x",), categorical, MIN, scales, reference, **kw)  # type: ignore[arg-type]


@settings(max_examples=25)
@given(st.lists(st.one_of(st.none(), st.integers(0, 300)), min_size=4, max_size=12), st.integers(0, 2**31))
def test_scale_windows_equal_direct_summaries_of_the_larger_window(sizes: list[int | None], seed: int) -> None:
    rng = np.random.default_rng(seed)
    ref = summarize_columns(0, 1, {"x": rng.normal(size=500), "c": ["a", "b"] * 250}, ["x"], ["c"])
    engine = DriftEngine(monitor(ReferenceSpec("file"), (MIN, 3 * MIN), ("c",), min_count=2), Reference(ref))
    raw: dict[int, tuple[np.ndarray, list[str]]] = {}
    tested = []
    for i, n in enumerate(sizes):
        if n is None:  # no events in this minute: no base window
            continue
        x = np.where(rng.uniform(size=n) < 0.1, np.nan, rng.normal(size=n))
        cats = [str(v) for v in rng.choice(["a", "b", "z"], n)]
        raw[i] = (x, cats)
        tested += engine.add(base(i, x, cats)).tested
    for window in (t for t in tested if t.scale_ms == 3 * MIN):
        minutes = [i for i in raw if window.start_ms <= i * MIN < window.end_ms]
        x = np.concatenate([raw[i][0] for i in minutes])
        cats = [c for i in minutes for c in raw[i][1]]
        direct = summarize_columns(window.start_ms, window.end_ms, {"x": x, "c": cats}, ["x"], ["c"])
        merged = window.current
        assert merged.event_count == direct.event_count
        assert merged.covered_ms == len(minutes) * MIN
        mx, dx = merged.columns["x"], direct.columns["x"]
        assert (mx.count, mx.nulls, mx.min, mx.max) == (dx.count, dx.nulls, dx.min, dx.max)
        if dx.count:
            assert mx.mean == pytest.approx(dx.mean) and mx.variance == pytest.approx(dx.variance)
        assert merged.columns["c"].counts == direct.columns["c"].counts


def test_first_windows_reference_then_an_alert_where_the_change_began() -> None:
    rng = np.random.default_rng(2)
    engine = DriftEngine(monitor(ReferenceSpec("first_windows", windows=5), (MIN, 5 * MIN)))
    tested, events = [], []
    for i in range(30):
        out = engine.add(base(i, rng.normal(0.3 if i >= 17 else 0.0, 1.0, 1000)))
        assert out.summaries[0].end_ms == (i + 1) * MIN
        tested += out.tested
        events += out.events
    assert min(t.start_ms for t in tested) == 5 * MIN  # nothing overlapping the reference is tested
    assert [(e.test, e.scale_ms, e.began) for e in events] == [("mean", MIN, (17 * MIN, 18 * MIN))]
    assert events[0].reference["count"] == 5000 and events[0].current["count"] == 1000
    assert events[0].end_ms == 18 * MIN and events[0].severity == "warning"


@pytest.mark.parametrize("change", [3, 6, 9, 14])
def test_abrupt_changes_are_localised_from_a_larger_scale(change: int) -> None:
    rng = np.random.default_rng(change)
    ref = Reference(summarize_columns(0, 1, {"x": rng.normal(size=20_000)}, ["x"], []))
    engine = DriftEngine(monitor(ReferenceSpec("file"), (10 * MIN,)), ref)
    events = []
    for i in range(20):
        events += engine.add(base(i, rng.normal(0.4 if i >= change else 0.0, 1.0, 800))).events
    assert events[0].scale_ms == 10 * MIN
    assert events[0].began == (change * MIN, (change + 1) * MIN)


def test_new_category_is_a_schema_event_localised_where_it_appeared() -> None:
    rng = np.random.default_rng(4)
    engine = DriftEngine(monitor(ReferenceSpec("first_windows", windows=3), categorical=("c",)))
    events = []
    for i in range(12):
        values = ["card", "cash", "crypto"] if i >= 7 else ["card", "cash"]
        cats = [str(v) for v in rng.choice(values, 1000)]
        events += engine.add(base(i, rng.normal(size=1000), cats)).events
    schema = [e for e in events if e.kind == "schema"]
    assert [(e.test, e.began) for e in schema] == [("new_category", (7 * MIN, 8 * MIN))]
    assert "crypto" in schema[0].detail and "crypto" in schema[0].current["categories"]
    assert schema[0].to_message(0)["id"] == f"m/c/new_category/1m/{8 * MIN}"


def test_previous_period_reference_follows_a_seasonal_cycle() -> None:
    rng = np.random.default_rng(5)
    period = 20
    engine = DriftEngine(monitor(ReferenceSpec("previous_period", period_ms=period * MIN)))
    tested, events = [], []
    for i in range(70):
        level = 3.0 * np.sin(2 * np.pi * i / period) + (1.0 if i >= 60 else 0.0)
        out = engine.add(base(i, rng.normal(level, 1.0, 1000)))
        tested += out.tested
        events += out.events
    assert min(t.start_ms for t in tested) == period * MIN  # no history before one period
    assert [(e.test, e.began) for e in events] == [("mean", (60 * MIN, 61 * MIN))]


def test_previous_period_reference_never_compares_with_a_partial_span() -> None:
    # A seasonal level of period 3 windows, tested at a scale of 2: the scale window [2, 4)
    # would have [-1, 1) a period earlier, of which only window 0 exists. Compared with that
    # part alone, the cycle itself looks like drift; the span must be skipped instead.
    rng = np.random.default_rng(11)
    period = 3
    engine = DriftEngine(monitor(ReferenceSpec("previous_period", period_ms=period * MIN), scales=(2 * MIN,)))
    tested, events = [], []
    for i in range(30):
        out = engine.add(base(i, rng.normal(10.0 * (i % period), 1.0, 1000)))
        tested += out.tested
        events += out.events
    assert tested and min(t.start_ms for t in tested) >= period * MIN
    assert events == []


def test_multivariate_mmd_sees_a_correlation_change_the_columns_do_not() -> None:
    rng = np.random.default_rng(6)
    m = Monitor("m", ("x", "y"), (), MIN, (MIN,), ReferenceSpec("first_windows", windows=3),
                multivariate=MultivariateSpec(sample=200, permutations=200))
    engine = DriftEngine(m)
    events = []
    for i in range(10):
        x = rng.normal(size=1000)
        y = 0.95 * x + np.sqrt(1 - 0.95**2) * rng.normal(size=1000) if i >= 6 else rng.normal(size=1000)
        reservoir = UniformReservoir[tuple](200, seed=i)
        reservoir.extend(sample_rows([{"x": a, "y": b} for a, b in zip(x, y)], ["x", "y"]))
        window = summarize_columns(i * MIN, (i + 1) * MIN, {"x": x, "y": y}, ["x", "y"], [])
        events += engine.add(window, reservoir).events
    assert {(e.kind, e.test, e.column) for e in events} == {("multivariate", "mmd", "*")}


def test_engine_pickles_mid_stream_and_continues_identically() -> None:
    rng = np.random.default_rng(7)
    data = [rng.normal(0.5 if i >= 12 else 0.0, 1.0, 500) for i in range(20)]
    engine = DriftEngine(monitor(ReferenceSpec("first_windows", windows=4), (MIN, 5 * MIN)))
    for i in range(8):
        engine.add(base(i, data[i]))
    copy = pickle.loads(pickle.dumps(engine))
    a = [e.id for i in range(8, 20) for e in engine.add(base(i, data[i])).events]
    b = [e.id for i in range(8, 20) for e in copy.add(base(i, data[i])).events]
    assert a == b and a


def test_bad_use_is_refused() -> None:
    with pytest.raises(ValueError, match="reference file"):
        DriftEngine(monitor(ReferenceSpec("file")))
    engine = DriftEngine(monitor(ReferenceSpec("first_windows", windows=2)))
    engine.add(base(5, np.zeros(3)))
    with pytest.raises(ValueError, match="time order"):
        engine.add(base(4, np.zeros(3)))


def test_a_column_that_goes_missing_is_a_schema_event() -> None:
    rng = np.random.default_rng(8)
    engine = DriftEngine(monitor(ReferenceSpec("first_windows", windows=3)))
    events = []
    for i in range(8):
        x = rng.normal(size=1000) if i < 5 else np.full(1000, np.nan)
        events += engine.add(base(i, x)).events
    assert [(e.kind, e.test, e.severity, e.began) for e in events] == [("schema", "missing", "critical", (5 * MIN, 6 * MIN))]
    assert "no valid value" in events[0].detail and events[0].current["null_rate"] == 1.0
