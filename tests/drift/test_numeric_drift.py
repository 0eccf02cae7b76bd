"""Numeric drift tests from summaries agree with direct computations on the raw values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats
from scipy.spatial.distance import jensenshannon

from features.drift.numeric import (
    PSI_BINS, WASSERSTEIN_GRID, binned, js_test, ks_test, mean_test, null_rate_test, psi_from_shares, psi_test,
    reference_bins, std_test, summary_stats, wasserstein_test,
)
from features.summaries.numeric import NumericSummary


def summary(values: np.ndarray) -> NumericSummary:
    s = NumericSummary()
    s.update(values)
    return s


DISTRIBUTIONS = {
    "normal": lambda rng, n, shift: rng.normal(shift, 1.0, n),
    "lognormal": lambda rng, n, shift: rng.lognormal(shift, 0.8, n),
    "discrete": lambda rng, n, shift: rng.poisson(3.0 + 3 * shift, n).astype(float),
    "uniform": lambda rng, n, shift: rng.uniform(shift, 1.0 + shift, n),
}


@given(st.sampled_from(sorted(DISTRIBUTIONS)), st.integers(2, 150), st.integers(2, 150),
       st.floats(0.0, 1.0), st.integers(0, 2**32 - 1))
def test_ks_is_exact_while_the_sketches_are(dist: str, n: int, m: int, shift: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x, y = DISTRIBUTIONS[dist](rng, n, 0.0), DISTRIBUTIONS[dist](rng, m, shift)
    result = ks_test(summary(x), summary(y))
    assert result.statistic == pytest.approx(stats.ks_2samp(x, y).statistic, abs=1e-12)
    assert result.effect_size == pytest.approx(result.statistic)


@pytest.mark.parametrize("dist", sorted(DISTRIBUTIONS))
@pytest.mark.parametrize("sizes", [(20_000, 1_000), (5_000, 5_000), (100_000, 300)])
def test_ks_from_sketches_within_the_sketch_bound_of_scipy(dist: str, sizes: tuple[int, int]) -> None:
    rng = np.random.default_rng(sum(sizes))
    for shift in (0.0, 0.1, 0.5):
        x, y = DISTRIBUTIONS[dist](rng, sizes[0], 0.0), DISTRIBUTIONS[dist](rng, sizes[1], shift)
        a, b = summary(x), summary(y)
        result = ks_test(a, b)
        exact = stats.ks_2samp(x, y).statistic
        bound = a.rank_error + b.rank_error
        assert abs(result.statistic - exact) <= bound
        assert result.effect_size == pytest.approx(max(0.0, result.statistic - bound))


def test_ks_p_values_are_conservative_under_no_drift() -> None:
    rng = np.random.default_rng(11)
    low = 0
    for _ in range(200):
        a, b = summary(rng.normal(size=3000)), summary(rng.normal(size=1000))
        low += ks_test(a, b).p_value < 0.05
    assert low <= 10  # at most the nominal 5% (the sketch error makes it rarer)


def test_ks_detects_a_real_shift_with_a_small_p_value() -> None:
    rng = np.random.default_rng(12)
    result = ks_test(summary(rng.normal(size=20_000)), summary(rng.normal(0.5, 1.0, 2_000)))
    assert result.p_value < 1e-12 and result.effect_size > 0.1


def direct_shares(values: np.ndarray, edges: list[float]) -> np.ndarray:
    idx = np.searchsorted(np.asarray(edges), values, side="right")
    return np.bincount(idx, minlength=len(edges) + 1) / len(values)


@given(st.sampled_from(sorted(DISTRIBUTIONS)), st.integers(10, 180), st.integers(10, 180),
       st.floats(0.0, 1.0), st.integers(0, 2**32 - 1))
def test_psi_and_js_equal_direct_computation_on_exact_sketches(dist: str, n: int, m: int, shift: float,
                                                               seed: int) -> None:
    rng = np.random.default_rng(seed)
    x, y = DISTRIBUTIONS[dist](rng, n, 0.0), DISTRIBUTIONS[dist](rng, m, shift)
    a, b = summary(x), summary(y)
    edges = reference_bins(a)
    assert edges == sorted(set(np.quantile(x, [i / PSI_BINS for i in range(1, PSI_BINS)],
                                           method="inverted_cdf").tolist()))
    p, q = direct_shares(x, edges), direct_shares(y, edges)
    r, c = np.maximum(p, 0.5 / n), np.maximum(q, 0.5 / m)
    assert psi_test(a, b).statistic == pytest.approx(float(np.sum((c - r) * np.log(c / r))), abs=1e-12)
    assert js_test(a, b).statistic == pytest.approx(float(jensenshannon(p, q, base=2)), abs=1e-9)


def test_psi_and_js_from_sketches_close_to_direct_on_large_windows() -> None:
    rng = np.random.default_rng(5)
    x, y = rng.lognormal(0, 0.8, 50_000), rng.lognormal(0.1, 0.8, 5_000)
    a, b = summary(x), summary(y)
    edges = reference_bins(a)
    p, q = direct_shares(x, edges), direct_shares(y, edges)
    sketch_p, sketch_q = binned(a, b)
    assert np.max(np.abs(sketch_p - p)) <= a.pmf_error and np.max(np.abs(sketch_q - q)) <= b.pmf_error
    assert psi_test(a, b).statistic == pytest.approx(psi_from_shares(p, q, 50_000, 5_000), abs=0.02)
    assert js_test(a, b).statistic == pytest.approx(float(jensenshannon(p, q, base=2)), abs=0.03)


def test_psi_p_value_is_calibrated_and_powerful() -> None:
    rng = np.random.default_rng(6)
    nulls = [psi_test(summary(rng.normal(size=10_000)), summary(rng.normal(size=1_000))).p_value
             for _ in range(100)]
    assert sum(p < 0.01 for p in nulls) <= 3
    shifted = psi_test(summary(rng.normal(size=10_000)), summary(rng.normal(0.5, 1, 1_000)))
    assert shifted.p_value < 1e-10 and shifted.statistic > 0.1


def quantile_slack(values: np.ndarray, eps: float) -> float:
    """How far W1 from quantiles can move when every quantile's rank is off by up to eps."""
    u = (np.arange(WASSERSTEIN_GRID) + 0.5) / WASSERSTEIN_GRID
    q = np.quantile(values, u)
    lo, hi = np.quantile(values, np.clip(u - eps, 0, 1)), np.quantile(values, np.clip(u + eps, 0, 1))
    return float(np.mean(np.maximum(q - lo, hi - q)))


def test_wasserstein_from_quantiles_within_the_sketch_error_of_scipy() -> None:
    rng = np.random.default_rng(7)
    for shift in (0.0, 0.3, 2.0):
        x, y = rng.normal(size=30_000), rng.normal(shift, 1.5, 3_000)
        a, b = summary(x), summary(y)
        result = wasserstein_test(a, b)
        # The midpoint grid of 200 ranks adds at most ~0.01 here (smooth distributions).
        bound = quantile_slack(x, a.rank_error) + quantile_slack(y, b.rank_error) + 0.01
        assert abs(result.statistic - stats.wasserstein_distance(x, y)) <= bound
        assert result.effect_size == pytest.approx(result.statistic / np.std(x))
        assert result.p_value is None


def test_mean_and_std_tests_match_the_textbook_statistics() -> None:
    rng = np.random.default_rng(8)
    x, y = rng.normal(10, 2, 5_000), rng.normal(10.2, 2.5, 800)
    mean = mean_test(summary(x), summary(y))
    welch = stats.ttest_ind(y, x, equal_var=False)
    assert mean.statistic == pytest.approx(welch.statistic, rel=1e-9)
    assert mean.p_value == pytest.approx(welch.pvalue, rel=0.02)
    assert mean.effect_size == pytest.approx((y.mean() - x.mean()) / x.std())
    spread = std_test(summary(x), summary(y))
    assert spread.effect_size == pytest.approx(math.log(y.std() / x.std()))
    assert spread.p_value < 1e-6


def test_null_rate_and_degenerate_columns() -> None:
    a, b = NumericSummary(), NumericSummary()
    a.update([1.0] * 990 + [None] * 10)
    b.update([1.0] * 900 + [None] * 90 + [float("inf")] * 10)
    result = null_rate_test(a, b)
    assert result.effect_size == pytest.approx(0.09) and result.p_value < 1e-10
    constant = mean_test(a, b)  # both constant and equal
    assert constant.statistic == 0.0 and constant.p_value == 1.0
    c = NumericSummary()
    c.update([2.0] * 500)
    moved = mean_test(a, c)
    assert moved.p_value == 0.0 and math.isinf(moved.effect_size)
    assert std_test(a, c).p_value == 1.0


def test_empty_side_is_refused_and_stats_are_json_friendly() -> None:
    with pytest.raises(ValueError, match="min_count"):
        ks_test(NumericSummary(), summary(np.arange(5.0)))
    stats_ = summary_stats(summary(np.arange(1.0, 101.0)))
    assert set(stats_) >= {"count", "mean", "std", "q05", "q25", "q50", "q75", "q95", "null_rate",
                           "skewness", "kurtosis"}
    assert summary_stats(NumericSummary())["mean"] is None
