"""The grouped numpy helpers of the pane aggregates equal their per-event definitions exactly."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features.events import Event
from features.windows.config import FeatureSet, FeatureSpec, Filter, WindowSpec
from features.windows import aggregates
from features.windows.aggregates import _grow_values, _merge_values, quantile
from features.windows.panes import _fold, _Group, _merged, _welford, run_ends, run_heads
from features.windows.value_log import ValueLog
from tests.windows.test_columnar import MINUTE, _run_columnar, _run_oracle, streams


def _welford_per_event(values: list[float], k: int, mean: float, m2: float) -> tuple[float, float]:
    for x in values:
        k += 1
        d = x - mean
        mean += d / k
        m2 += d * (x - mean)
    return mean, m2


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 12), st.floats(-1e6, 1e6, allow_nan=False)), max_size=200),
       st.integers(0, 2**32))
def test_welford_equals_the_per_event_update(events, seed):
    """Bit for bit, whatever the runs' lengths (lockstep for many runs, the loop for a few long ones)."""
    rng = np.random.default_rng(seed)
    events = sorted(events, key=lambda e: e[0])  # sorted by slot, arrival order within a slot
    slots = np.array([s for s, _ in events], np.int64)
    v = np.array([x for _, x in events], np.float64)
    n = rng.integers(0, 5, 13)
    mean, m2 = rng.normal(0, 10, 13), rng.uniform(0, 100, 13)
    expected = {s: _welford_per_event([x for t, x in events if t == s], int(n[s]), float(mean[s]), float(m2[s]))
                for s in set(slots.tolist())}
    heads = run_heads(slots)
    _welford(mean, m2, slots[heads], n[slots[heads]], heads, run_ends(heads, len(slots)) - heads, v)
    for s, (m, q) in expected.items():
        assert (mean[s], m2[s]) == (m, q)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 12), st.floats(-1e6, 1e6, allow_nan=False)), max_size=200),
       st.integers(0, 2**32))
def test_the_compiled_fold_equals_the_per_event_updates(events, seed):
    """Counts, sums, Welford's moments, min and max, bit for bit, events in any slot order."""
    if _fold is None:
        pytest.skip("features/windows/_fold.c is not built (tests/test_messages.py's build test says why)")
    rng = np.random.default_rng(seed)
    slots = np.array([s for s, _ in events], np.int64)
    v = np.array([x for _, x in events], np.float64)
    n = rng.integers(0, 5, 13)
    total, mean, m2 = rng.normal(0, 100, 13), rng.normal(0, 10, 13), rng.uniform(0, 100, 13)
    lo, hi = rng.normal(0, 1e5, 13), rng.normal(0, 1e5, 13)
    expected = {}
    for s in range(13):
        mine = [x for t, x in events if t == s]
        running = float(total[s])
        for x in mine:
            running += x
        expected[s] = (int(n[s]) + len(mine), running,
                       *_welford_per_event(mine, int(n[s]), float(mean[s]), float(m2[s])),
                       min([float(lo[s]), *mine]), max([float(hi[s]), *mine]))
    _fold.fold(slots, v, n, total, mean, m2, lo, hi)
    for s in range(13):
        assert (n[s], total[s], mean[s], m2[s], lo[s], hi[s]) == expected[s]


def test_the_compiled_fold_refuses_arrays_that_do_not_fit():
    if _fold is None:
        pytest.skip("features/windows/_fold.c is not built")
    n, x = np.zeros(3, np.int64), np.zeros(3)
    with pytest.raises(IndexError, match="slot 3 is outside the 3 slots"):
        _fold.fold(np.array([3]), np.array([1.0]), n, x, None, None, None, None)
    with pytest.raises(TypeError, match="values must be a contiguous float64"):
        _fold.fold(np.array([0]), np.array([1], np.int64), n, None, None, None, None, None)
    with pytest.raises(ValueError, match="means and m2s go together"):
        _fold.fold(np.array([0]), np.array([1.0]), n, None, x, None, None, None)
    with pytest.raises(ValueError, match="one entry per slot"):
        _fold.fold(np.array([0]), np.array([1.0]), n, np.zeros(2), None, None, None, None)
    assert n.tolist() == [0, 0, 0]  # nothing changed by a refused call


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 30), st.integers(0, 12), st.integers(1, 10), st.integers(0, 2**32))
def test_the_compiled_window_merge_equals_the_numpy_merge(size, windows, panes, seed):
    """Counts, sums, moments, min and max of windows from their panes, bit for bit."""
    if _fold is None:
        pytest.skip("features/windows/_fold.c is not built")
    rng = np.random.default_rng(seed)
    group = _Group("price", None, {"sum", "moments", "minmax"}, [], integer=False)
    group.allocate(size)
    group.n[:] = rng.integers(0, 4, size)
    held = group.n > 0
    group.sum[:] = np.where(held, rng.normal(0, 100, size), 0.0)
    group.mean[:] = np.where(held, rng.normal(0, 10, size), 0.0)
    group.m2[:] = np.where(group.n > 1, rng.uniform(0, 50, size), 0.0)
    group.lo[:] = np.where(held, rng.normal(0, 1e3, size), np.inf)
    group.hi[:] = np.where(held, group.lo + rng.uniform(0, 10, size), -np.inf)
    slots = rng.integers(0, size, (windows, panes))
    valid = rng.random((windows, panes)) < 0.7
    slots[~valid] = -1  # a missing pane has no slot
    compiled, numpy = group._merged_in_c(slots, valid), group._merged_in_numpy(slots, valid)
    assert compiled.keys() == numpy.keys()
    for name in numpy:
        assert compiled[name].dtype == numpy[name].dtype and compiled[name].tobytes() == numpy[name].tobytes(), name


MANY = (
    FeatureSet("t1m", "area", "features.t1m", WindowSpec("tumbling", MINUTE, MINUTE),
               (FeatureSpec("kinds", "distinct", "code"), FeatureSpec("first", "first", "code"),
                FeatureSpec("last", "last", "code"), FeatureSpec("ones", "share", "code", value=1),
                FeatureSpec("low", "count", where=Filter("code", frozenset({0, 1, "1"}))))),
    FeatureSet("h3m", "area", "features.h3m", WindowSpec("hopping", 3 * MINUTE, MINUTE),
               (FeatureSpec("kinds", "distinct", "code"), FeatureSpec("n", "count"))),
    FeatureSet("last5", "area", "features.last5", WindowSpec("last_n", step_ms=MINUTE, n=5),
               (FeatureSpec("kinds", "distinct", "code"), FeatureSpec("last", "last", "code"))),
)


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_distinct_past_64_values_equals_the_oracle(data):
    """Distinct counts leave their bit masks for sets once a field has shown more than 64 values;
    mixed types count as Python sets do (1 == 1.0 == True), first and last keep the value sent."""
    batches, lateness = data.draw(streams())
    width = data.draw(st.sampled_from([3, 40, 300]))
    codes = st.one_of(st.integers(0, width), st.integers(0, width).map(str), st.sampled_from([1.0, True, None]))
    batches = [[Event(e.entity, e.time_ms, {**e.fields, "code": data.draw(codes)}, partition=e.partition,
                      offset=e.offset) for e in batch] for batch in batches]
    expected_rows, expected_late = _run_oracle(MANY, batches, lateness)
    rows, late = _run_columnar(MANY, batches, lateness, snapshot_every=2)
    assert sorted(late) == sorted(expected_late)
    assert _canonical_typed(rows) == _canonical_typed(expected_rows)


def _canonical_typed(rows):
    """As `_canonical`, with each value's type: a first or last value must be the one sent (1, not True)."""
    return sorted((r.feature_set, r.entity, r.start_ms, r.end_ms, r.event_count,
                   tuple(sorted((k, type(v).__name__, v) for k, v in r.values.items()))) for r in rows)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.tuples(st.integers(0, 5), st.floats(-1e3, 1e3, allow_nan=False)), max_size=12),
                min_size=1, max_size=5),
       st.lists(st.integers(0, 5), max_size=4), st.integers(0, 2**32), st.sampled_from([0.0, 0.5, 0.9, 1.0]))
def test_value_log_quantiles_equal_the_per_slot_lists(batches, dropped, seed, q):
    """Each window's quantile from the log equals the per-event engine's: its panes' lists (sketches
    past the cap, here 6 values) merged in pane order; dropped slots start afresh."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(aggregates, "EXACT_VALUES_CAP", 6)  # the per-event helpers' cap, lowered
        _check_value_log(batches, dropped, seed, q)


def _check_value_log(batches, dropped, seed, q):
    log, lists = ValueLog(6), {}
    for i, batch in enumerate(batches):
        batch = sorted(batch, key=lambda e: e[0])  # by slot, arrival order within a slot
        slots = np.array([s for s, _ in batch], np.int64)
        v = np.array([x for _, x in batch], np.float64)
        heads = run_heads(slots)
        counts = run_ends(heads, len(slots)) - heads
        held = np.array([_size(lists.get(int(s))) for s in slots[heads].tolist()], np.int64)
        log.add(slots, v, heads, counts, held)
        for s, x in batch:  # as the per-event engine's generated `add`
            values = lists.setdefault(s, [])
            if type(values) is list:
                lists[s] = _grow_values(values, x)
            else:
                values.update(x)
        if i == len(batches) // 2 and dropped:
            log.drop(np.unique(np.array(dropped, np.int64)))
            for s in dropped:
                lists.pop(s, None)
    rng = np.random.default_rng(seed)
    slots = rng.integers(0, 6, (5, 3))
    valid = rng.random((5, 3)) < 0.7
    (ordered, starts, counts), merged = log.gather(slots, valid)
    store = np.empty(6, object)
    store[:] = [lists.get(s) or None for s in range(6)]
    for i in range(len(slots)):
        expected = quantile(_merged(store, slots[i], valid[i], _merge_values, []), q)
        got = quantile(merged[i], q) if i in merged else quantile(ordered[starts[i]: starts[i] + counts[i]].tolist(), q)
        assert got == expected or (got is None and expected is None)


def _size(values) -> int:
    return len(values) if type(values) is list else 7 if values is not None else 0  # a sketch: past the cap

