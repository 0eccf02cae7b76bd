"""The sorts of batch columns give numpy's stable orders, whichever way they take."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from features.windows.ordering import among, distinct_ids, lex_order, sorted_within, stable_order


@given(st.lists(st.tuples(st.integers(0, 2**20), st.integers(-2**40, 2**40)), max_size=50), st.integers(0, 2**40),
       st.randoms())
def test_lex_order_is_lexsort(rows: list[tuple[int, int]], first_arrival: int, random) -> None:
    arrivals = list(range(first_arrival, first_arrival + len(rows)))
    random.shuffle(arrivals)  # distinct, in any order (the log is not kept in arrival order)
    e = np.array([r[0] for r in rows], np.int64)
    t = np.array([r[1] for r in rows], np.int64)
    a = np.array(arrivals, np.int64)
    assert lex_order(e, t, a).tolist() == np.lexsort((a, t, e)).tolist()


@given(st.lists(st.integers(-2**62, 2**62), max_size=60), st.integers(0, 2**17), st.booleans())
def test_stable_order_is_a_stable_argsort(values: list[int], spread: int, narrow: bool) -> None:
    keys = np.array([v % (spread + 1) - spread // 2 for v in values] if narrow else values, np.int64)
    assert stable_order(keys).tolist() == np.argsort(keys, kind="stable").tolist()


@given(st.lists(st.lists(st.sampled_from([0.0, -0.0, 1.5, -2.0, 3.25, 1e300, -1e-300]) | st.floats(-1e6, 1e6),
                         max_size=12), max_size=30),
       st.integers(0, 3))
def test_sorted_within_is_the_stable_lexsort(runs: list[list[float]], long_run: int) -> None:
    runs = runs + [[float(i % 7) for i in range(5000)]] * (long_run == 3)  # a long run: the lexsort path
    counts = np.array([len(r) for r in runs], np.int64)
    values = np.array([v for r in runs for v in r], float)
    expected = values[np.lexsort((values, np.repeat(np.arange(len(runs)), counts)))]
    got = sorted_within(values, counts)
    assert got.tolist() == expected.tolist() and np.signbit(got).tolist() == np.signbit(expected).tolist()


@given(st.lists(st.integers(0, 40), max_size=60), st.lists(st.integers(0, 40), max_size=20))
def test_among_is_isin(values: list[int], members: list[int]) -> None:
    v, m = np.array(values, np.int64), np.array(members, np.int64)
    assert among(v, m, 41).tolist() == np.isin(v, m).tolist()


@given(st.lists(st.integers(0, 3000), max_size=80), st.integers(0, 2**20))
def test_distinct_ids_are_np_unique(ids: list[int], spare: int) -> None:
    values = np.array(ids, np.int64)
    size = max(ids, default=-1) + 1 + spare  # a small table, or one far sparser than the ids: both ways
    got = distinct_ids(values, size)
    assert got.tolist() == np.unique(values).tolist() and got.dtype == np.int64
