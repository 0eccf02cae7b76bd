"""The compiled aggregates: merge algebra, overflow from exact to sketches, pickling."""

from __future__ import annotations

import math
import pickle
import statistics

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from features.windows import aggregates
from features.windows.aggregates import compile_aggregates
from features.windows.config import FeatureSpec, Filter

FEATURES = (
    FeatureSpec("n", "count"),
    FeatureSpec("total", "sum", field="x"),
    FeatureSpec("avg", "mean", field="x"),
    FeatureSpec("sd", "std", field="x"),
    FeatureSpec("lo", "min", field="x"),
    FeatureSpec("hi", "max", field="x"),
    FeatureSpec("first_x", "first", field="x"),
    FeatureSpec("last_x", "last", field="x"),
    FeatureSpec("med", "median", field="x"),
    FeatureSpec("cats", "distinct", field="c"),
    FeatureSpec("a_share", "share", field="c", value="a"),
    FeatureSpec("a_n", "count", where=Filter("c", frozenset({"a"}))),
    FeatureSpec("per_s", "rate"),
)
AGG = compile_aggregates(FEATURES)

events = st.lists(
    st.tuples(
        st.integers(0, 10_000),
        st.one_of(st.none(), st.floats(-1e6, 1e6, allow_nan=False).map(lambda v: round(v, 3))),
        st.sampled_from(["a", "b", "c", None]),
    ),
    max_size=60,
)


def _state(evs: list[tuple[int, float | None, str | None]]) -> list:
    s = AGG.new()
    for t, x, c in evs:
        AGG.add(s, t, {"x": x, "c": c})
    return s


def _close(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], float) and isinstance(b[key], float):
            assert math.isclose(a[key], b[key], rel_tol=1e-9, abs_tol=1e-6), key
        else:
            assert a[key] == b[key], key


@given(events, st.integers(0, 60), st.integers(0, 60))
def test_merging_parts_equals_the_whole(evs, cut1, cut2):
    """Split a stream into three parts (first/last by time, ties by order) and merge them either way."""
    evs = sorted(evs, key=lambda e: e[0])
    lo, hi = sorted((min(cut1, len(evs)), min(cut2, len(evs))))
    parts = [_state(evs[:lo]), _state(evs[lo:hi]), _state(evs[hi:])]
    left = AGG.new()
    for p in parts:
        AGG.merge(left, p)
    right = AGG.new()
    AGG.merge(parts[1], parts[2])
    AGG.merge(right, parts[0])
    AGG.merge(right, parts[1])
    whole = _state(evs)
    _close(AGG.values(left, 60_000), AGG.values(whole, 60_000))
    _close(AGG.values(right, 60_000), AGG.values(whole, 60_000))
    assert AGG.event_count(left) == len(evs)


@given(events)
def test_values_match_plain_python(evs):
    values = AGG.values(_state(evs), 10_000)
    xs = [x for _, x, _ in evs if x is not None]
    cs = [c for _, _, c in evs if c is not None]
    assert values["n"] == len(evs)
    assert values["per_s"] == len(evs) / 10
    assert values["lo"] == (min(xs) if xs else None) and values["hi"] == (max(xs) if xs else None)
    assert values["med"] == (pytest.approx(float(np.median(xs))) if xs else None)
    assert values["sd"] == (pytest.approx(statistics.stdev(xs), rel=1e-6, abs=1e-6) if len(xs) > 1 else None)
    assert values["cats"] == len(set(cs))
    assert values["a_n"] == cs.count("a")
    assert values["a_share"] == (cs.count("a") / len(cs) if cs else None)


def test_quantiles_and_distinct_switch_to_sketches_past_the_cap():
    rng = np.random.default_rng(3)
    xs = rng.normal(100, 15, size=aggregates.EXACT_VALUES_CAP * 3)
    agg = compile_aggregates((FeatureSpec("p90", "quantile", field="x", q=0.9),
                              FeatureSpec("d", "distinct", field="x")))
    halves = [agg.new(), agg.new()]
    for i, x in enumerate(xs):
        agg.add(halves[i % 2], i, {"x": float(x)})
    assert type(halves[0][2]) is aggregates.Quantiles  # past the cap: a sketch, not a list
    agg.merge(halves[0], halves[1])
    values = agg.values(halves[0], 60_000)
    rank = float(np.mean(xs <= values["p90"]))
    assert abs(rank - 0.9) < 0.0165  # KLL k=200 normalized rank error (99% confidence)
    assert abs(values["d"] - len(xs)) / len(xs) < 0.05  # HLL lg_k=12: ~1.6% per sigma


def test_state_with_sketches_pickles():
    agg = compile_aggregates((FeatureSpec("med", "median", field="x"), FeatureSpec("d", "distinct", field="x")))
    s = agg.new()
    for i in range(aggregates.EXACT_VALUES_CAP + 5):
        agg.add(s, i, {"x": float(i)})
    restored = pickle.loads(pickle.dumps(s))
    assert agg.values(restored, 1_000) == agg.values(s, 1_000)
