"""Pébay moments: agreement with numpy/scipy, merge algebra, numerical stability."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from features.summaries.moments import EMPTY, Moments, add_value, merge_moments, moments_of

values = st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=120)


def assert_close(a: Moments, b: Moments, data: np.ndarray) -> None:
    """Counts exactly; each moment within rounding of its own scale (sum of |deviation|^p)."""
    assert a.count == b.count
    d = np.abs(data - data.mean())
    scale = float(np.abs(data).max()) + 1e-300
    assert math.isclose(a.mean, b.mean, rel_tol=1e-12, abs_tol=1e-12 * scale)
    for p, x, y in ((2, a.m2, b.m2), (3, a.m3, b.m3), (4, a.m4, b.m4)):
        # ... plus a floor in the subnormal range, where floats keep only a few digits.
        tol = 1e-9 * float((d**p).sum()) + 1e-300
        assert math.isclose(x, y, rel_tol=1e-9, abs_tol=tol), (p, x, y)


@given(values)
def test_moments_match_numpy_and_scipy(xs: list[float]) -> None:
    x = np.array(xs)
    m = moments_of(x)
    assert m.count == len(xs)
    assert m.mean == pytest.approx(x.mean(), rel=1e-12, abs=1e-12 * np.abs(x).max())
    assert m.variance == pytest.approx(x.var(), rel=1e-9, abs=1e-9 * (np.abs(x).max() ** 2 + 1e-300))
    # Skew and kurtosis are ill-conditioned for a tiny relative spread, and 4th powers of
    # deviations below ~1e-77 underflow (scipy answers NaN there).
    if x.var() > 1e-6 * (np.abs(x).max() ** 2) and x.std() > 1e-70:
        assert m.skewness == pytest.approx(stats.skew(x), rel=1e-6, abs=1e-6)
        assert m.excess_kurtosis == pytest.approx(stats.kurtosis(x), rel=1e-6, abs=1e-6)


@given(values, st.data())
def test_merge_order_does_not_matter(xs: list[float], data: st.DataObject) -> None:
    x = np.array(xs)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(xs)), max_size=5)))
    parts = [moments_of(p) for p in np.split(x, cuts)]
    left = EMPTY
    for p in parts:
        left = merge_moments(left, p)
    right = EMPTY
    for p in reversed(parts):
        right = merge_moments(p, right)
    order = data.draw(st.permutations(range(len(parts))))
    shuffled = EMPTY
    for i in order:
        shuffled = merge_moments(shuffled, parts[i])
    whole = moments_of(x)
    for merged in (left, right, shuffled):
        assert_close(merged, whole, x)


@given(values, values)
def test_merge_is_exactly_commutative(xs: list[float], ys: list[float]) -> None:
    a, b = moments_of(xs), moments_of(ys)
    assert merge_moments(a, b) == merge_moments(b, a)


@given(values)
def test_value_by_value_equals_batch(xs: list[float]) -> None:
    m = EMPTY
    for v in xs:
        m = add_value(m, v)
    assert_close(m, moments_of(xs), np.array(xs))


def test_empty_is_the_identity_and_statistics_are_nan() -> None:
    a = moments_of([1.0, 2.0, 4.0])
    assert merge_moments(EMPTY, a) == a == merge_moments(a, EMPTY)
    assert moments_of([]) == EMPTY
    assert all(math.isnan(v) for v in (EMPTY.variance, EMPTY.std, EMPTY.skewness,
                                        EMPTY.sample_variance))
    constant = moments_of([3.0, 3.0])
    assert constant.variance == 0.0 and math.isnan(constant.skewness)
    assert math.isnan(constant.excess_kurtosis)


def test_stable_for_a_large_mean_against_a_small_spread() -> None:
    """Raw power sums lose every digit here; central sums merged pairwise keep them."""
    rng = np.random.default_rng(7)
    x = 1e9 + rng.normal(0.0, 1e-3, 100_000)
    m = EMPTY
    for part in np.array_split(x, 37):
        m = merge_moments(m, moments_of(part))
    exact = x - np.mean(x, dtype=np.longdouble)
    # Part means are only representable to ~1e-7 near 1e9, which bounds what any float64
    # merge can do; E[x^2] - E[x]^2 in float64 would not even get the sign right.
    assert m.variance == pytest.approx(float(np.mean(exact**2)), rel=1e-5)
    assert abs(float(np.mean(x * x) - np.mean(x) ** 2) - m.variance) > 1.0
    assert m.skewness == pytest.approx(stats.skew(x - 1e9), abs=1e-3)
    assert m.excess_kurtosis == pytest.approx(stats.kurtosis(x - 1e9), abs=1e-3)
