"""Two-sample drift tests on numeric columns, computed from two `NumericSummary`s.

No raw values are needed: every test reads the summaries' exact moments and counters or
their KLL sketches, so a reference summarised once can be compared with any window, at any
scale built by merging (see `features.summaries.window.merge_all`).

| test | statistic | p-value | effect size |
|---|---|---|---|
| `ks` | Kolmogorov-Smirnov D from the two sketches' CDFs | asymptotic Kolmogorov, after subtracting both sketches' rank error from D (conservative) | D less the sketch error |
| `mean` | Welch z of the exact means | two-sided normal | mean shift in reference standard deviations |
| `std` | z of the log variance ratio (kurtosis-corrected) | two-sided normal | ln(std_current / std_reference) |
| `null_rate` | two-proportion z of null rates | two-sided normal | null rate difference |
| `psi` | population stability index on reference-decile bins | chi-squared approximation (sketch error as extra variance) | PSI |
| `js` | Jensen-Shannon distance (base 2) on the same bins | chi-squared approximation | the distance |
| `wasserstein` | W1 from quantiles | none | W1 in reference standard deviations |

`summary_stats` gives the statistics an on-call person reads (count, mean, std, quantiles
5/25/50/75/95, skewness, kurtosis, null rate) and `deltas` their differences.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> ref, cur = NumericSummary(), NumericSummary()
>>> ref.update(rng.normal(0.0, 1.0, 20_000)); cur.update(rng.normal(0.25, 1.0, 1_000))
>>> r = mean_test(ref, cur); round(r.effect_size, 3), r.p_value < 1e-9
(0.235, True)
>>> k = ks_test(ref, cur); 0.08 < k.statistic < 0.15, k.p_value < 1e-3
(True, True)
>>> 0.04 < psi_test(ref, cur).statistic < 0.12, 0.15 < wasserstein_test(ref, cur).effect_size < 0.35
(True, True)

KLL compactions draw unseeded random bits (DataSketches), so sketch-based statistics vary
slightly between runs over the same data, within the sketches' stated errors; the exact
tests (`mean`, `std`, `null_rate`) do not.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy import special

from features.drift.result import TestResult
from features.summaries.numeric import NumericSummary

# Points per sketch at which the two CDFs are compared, when a sketch is past its exact
# mode: the grid misses at most 1/KS_GRID of D, which only makes the test more conservative.
KS_GRID = 400
PSI_BINS = 10
WASSERSTEIN_GRID = 200
STAT_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
_Z99 = 2.5758293035489  # the KLL rank error is stated at 99% confidence


def total(s: NumericSummary) -> int:
    """Every value the summary saw: finite, null, infinite and invalid.

    >>> s = NumericSummary(); s.update([1.0, None, float("inf")]); total(s)
    3
    """
    return s.count + s.nulls + s.infinite + s.invalid


def null_rate(s: NumericSummary) -> float:
    """Share of the values that are not finite numbers (nulls, infinities, invalid).

    >>> s = NumericSummary(); s.update([1.0, None, 2.0, None]); null_rate(s)
    0.5
    """
    n = total(s)
    return (n - s.count) / n if n else math.nan


def _normal_p(z: float) -> float:
    return math.erfc(abs(z) / math.sqrt(2.0)) if math.isfinite(z) else 0.0


def _check(ref: NumericSummary, cur: NumericSummary) -> None:
    if ref.count == 0 or cur.count == 0:
        raise ValueError(f"a drift test needs values on both sides, got {ref.count} reference "
                         f"and {cur.count} current values; skip windows below the monitor's "
                         "min_count")


def _support(s: NumericSummary) -> np.ndarray:
    """Points at which the sketch's CDF steps: its items while exact, else a quantile grid."""
    if not s.kll.is_estimation_mode():
        return np.fromiter((v for v, _ in s.kll), float, s.kll.num_retained)
    ranks = np.linspace(0.0, 1.0, KS_GRID + 1)[1:-1].tolist()
    return np.asarray(s.kll.get_quantiles(ranks, inclusive=True) + [s.min, s.max])


def ks_test(ref: NumericSummary, cur: NumericSummary) -> TestResult:
    """Two-sample Kolmogorov-Smirnov from the sketches.

    Both CDFs are evaluated at the union of the sketches' support points; D is exact while
    both sketches are exact (n below ~k), else within the sum of their rank errors. The
    p-value is the asymptotic Kolmogorov distribution (Stephens' small-sample correction)
    at D minus that error, so sketch error can only make the test more conservative.

    >>> a = NumericSummary(); a.update([1.0, 2.0, 3.0, 4.0])
    >>> b = NumericSummary(); b.update([3.0, 4.0, 5.0, 6.0])
    >>> ks_test(a, b).statistic
    0.5
    """
    _check(ref, cur)
    points = np.unique(np.concatenate([_support(ref), _support(cur)])).tolist()
    f_ref = np.asarray(ref.kll.get_cdf(points, inclusive=True)[:-1])
    f_cur = np.asarray(cur.kll.get_cdf(points, inclusive=True)[:-1])
    d = float(np.max(np.abs(f_ref - f_cur)))
    error = ref.rank_error + cur.rank_error
    d_adj = max(0.0, d - error)
    n, m = ref.count, cur.count
    root = math.sqrt(n * m / (n + m))
    p = float(special.kolmogorov((root + 0.12 + 0.11 / root) * d_adj))
    note = f"D within {error:.3f} (sketch rank error)" if error else "D exact"
    return TestResult("ks", d, min(1.0, p), d_adj, note=note)


def mean_test(ref: NumericSummary, cur: NumericSummary) -> TestResult:
    """Welch z test on the exact means; effect = shift in reference standard deviations.

    >>> a = NumericSummary(); a.update([1.0, 2.0, 3.0])
    >>> b = NumericSummary(); b.update([2.0, 3.0, 4.0])
    >>> r = mean_test(a, b); round(r.statistic, 3), round(r.effect_size, 3)
    (1.225, 1.225)
    """
    _check(ref, cur)
    diff = cur.mean - ref.mean
    se = math.sqrt(ref.moments.sample_variance / ref.count + cur.moments.sample_variance / cur.count) \
        if ref.count > 1 and cur.count > 1 else 0.0
    z = diff / se if se > 0 else (0.0 if diff == 0 else math.copysign(math.inf, diff))
    scale = ref.std if ref.std > 0 else cur.std
    effect = diff / scale if scale > 0 else (0.0 if diff == 0 else math.copysign(math.inf, diff))
    return TestResult("mean", z, _normal_p(z), effect)


def std_test(ref: NumericSummary, cur: NumericSummary) -> TestResult:
    """z test of ln(var_current / var_reference), whose variance is (kurtosis - 1)/n per
    side (the larger side's kurtosis, so heavy tails do not raise false alarms).

    >>> rng = np.random.default_rng(1)
    >>> a = NumericSummary(); a.update(rng.normal(0, 1, 5000))
    >>> b = NumericSummary(); b.update(rng.normal(0, 2, 5000))
    >>> r = std_test(a, b); round(r.effect_size, 1), r.p_value < 1e-9
    (0.7, True)
    """
    _check(ref, cur)
    v_ref, v_cur = ref.variance, cur.variance
    if v_ref <= 0 or v_cur <= 0:
        same = v_ref == v_cur
        effect = 0.0 if same else math.copysign(math.inf, v_cur - v_ref)
        return TestResult("std", effect, 1.0 if same else 0.0, effect, note="a constant side")
    log_ratio = math.log(v_cur / v_ref)
    kurt = max(_raw_kurtosis(ref), _raw_kurtosis(cur))
    se = math.sqrt(max(kurt - 1.0, 0.1) * (1.0 / ref.count + 1.0 / cur.count))
    z = log_ratio / se
    return TestResult("std", z, _normal_p(z), 0.5 * log_ratio)


def _raw_kurtosis(s: NumericSummary) -> float:
    k = s.kurtosis
    return k + 3.0 if math.isfinite(k) else 3.0


def proportion_test(test: str, hits_ref: int, n_ref: int, hits_cur: int, n_cur: int) -> TestResult:
    """Two-proportion z test (pooled); effect = share_current - share_reference.

    >>> r = proportion_test("null_rate", 10, 1000, 40, 1000); round(r.effect_size, 3), r.p_value < 1e-4
    (0.03, True)
    """
    if n_ref == 0 or n_cur == 0:
        raise ValueError(f"{test}: both sides need values, got {n_ref} and {n_cur}")
    p_ref, p_cur = hits_ref / n_ref, hits_cur / n_cur
    pooled = (hits_ref + hits_cur) / (n_ref + n_cur)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n_ref + 1 / n_cur))
    z = (p_cur - p_ref) / se if se > 0 else 0.0
    return TestResult(test, z, _normal_p(z), p_cur - p_ref)


def null_rate_test(ref: NumericSummary, cur: NumericSummary) -> TestResult:
    """Has the share of missing (null, infinite, invalid) values changed?

    >>> a = NumericSummary(); a.update([1.0] * 99 + [None])
    >>> b = NumericSummary(); b.update([1.0] * 50 + [None] * 50)
    >>> null_rate_test(a, b).effect_size
    0.49
    """
    return proportion_test("null_rate", total(ref) - ref.count, total(ref),
                           total(cur) - cur.count, total(cur))


def effective_count(s: NumericSummary) -> float:
    """The sample size whose sampling noise equals the summary's: n, less the sketch's own
    error treated as extra variance (rank error / 2.576 is one standard deviation).

    >>> s = NumericSummary(); s.update(np.arange(100.0)); effective_count(s)
    100.0
    """
    sigma = s.rank_error / _Z99
    return 1.0 / (1.0 / s.count + 4.0 * sigma * sigma)


def reference_bins(ref: NumericSummary, bins: int = PSI_BINS) -> list[float]:
    """Edges at the reference's quantiles 1/bins, ..., (bins-1)/bins (ties merged).

    >>> s = NumericSummary(); s.update(np.arange(1.0, 101.0)); reference_bins(s, 4)
    [25.0, 50.0, 75.0]
    """
    ranks = [i / bins for i in range(1, bins)]
    edges = sorted(set(ref.kll.get_quantiles(ranks, inclusive=True)))
    return edges or [float(ref.min)]


def binned(ref: NumericSummary, cur: NumericSummary, bins: int = PSI_BINS) -> tuple[np.ndarray, np.ndarray]:
    """Both columns' shares in the reference-quantile bins [e_i, e_i+1).

    >>> a = NumericSummary(); a.update([1.0, 2.0, 3.0, 4.0])
    >>> [x.tolist() for x in binned(a, a, 2)]
    [[0.25, 0.75], [0.25, 0.75]]
    """
    edges = reference_bins(ref, bins)
    return (np.asarray(ref.kll.get_pmf(edges)), np.asarray(cur.kll.get_pmf(edges)))


def psi_from_shares(p_ref: np.ndarray, p_cur: np.ndarray, n_ref: float, n_cur: float) -> float:
    """PSI = sum (c - r) ln(c / r); empty bins count as half a value, so PSI stays finite.

    >>> round(psi_from_shares(np.array([0.5, 0.5]), np.array([0.6, 0.4]), 100, 100), 4)
    0.0405
    """
    r = np.maximum(p_ref, 0.5 / n_ref)
    c = np.maximum(p_cur, 0.5 / n_cur)
    return float(np.sum((c - r) * np.log(c / r)))


def js_from_shares(p_ref: np.ndarray, p_cur: np.ndarray) -> float:
    """Jensen-Shannon distance, base 2 (in [0, 1]); equals `scipy.spatial.distance.jensenshannon(base=2)`.

    >>> js_from_shares(np.array([1.0, 0.0]), np.array([0.0, 1.0]))
    1.0
    """
    p = p_ref / p_ref.sum()
    q = p_cur / p_cur.sum()
    m = 0.5 * (p + q)
    with np.errstate(divide="ignore", invalid="ignore"):
        kl_p = np.where(p > 0, p * np.log2(p / m), 0.0).sum()
        kl_q = np.where(q > 0, q * np.log2(q / m), 0.0).sum()
    return float(math.sqrt(max(0.0, 0.5 * (kl_p + kl_q))))


def chi2_p(statistic: float, dof: int) -> float:
    """Upper tail of the chi-squared distribution (1.0 without degrees of freedom).

    >>> round(chi2_p(3.841, 1), 3)
    0.05
    """
    return float(special.chdtrc(dof, statistic)) if dof > 0 else 1.0


def psi_test(ref: NumericSummary, cur: NumericSummary, bins: int = PSI_BINS) -> TestResult:
    """PSI on reference-decile bins; p-value from PSI x n_r n_c / (n_r + n_c) ~ chi2(bins - 1)
    (PSI is a symmetrised chi-squared for small shifts), with effective counts.

    >>> a = NumericSummary(); a.update(np.arange(1000.0))
    >>> psi_test(a, a).statistic
    0.0
    """
    _check(ref, cur)
    p_ref, p_cur = binned(ref, cur, bins)
    n_r, n_c = effective_count(ref), effective_count(cur)
    psi = psi_from_shares(p_ref, p_cur, ref.count, cur.count)
    p = chi2_p(psi * n_r * n_c / (n_r + n_c), len(p_ref) - 1)
    return TestResult("psi", psi, p, psi)


def js_test(ref: NumericSummary, cur: NumericSummary, bins: int = PSI_BINS) -> TestResult:
    """Jensen-Shannon distance on the PSI bins; p-value from 8 JSD(nats) ~ chi2 / n_eff.

    >>> a = NumericSummary(); a.update(np.arange(1000.0))
    >>> js_test(a, a).statistic
    0.0
    """
    _check(ref, cur)
    p_ref, p_cur = binned(ref, cur, bins)
    d = js_from_shares(p_ref, p_cur)
    n_r, n_c = effective_count(ref), effective_count(cur)
    divergence_nats = d * d * math.log(2.0)
    p = chi2_p(8.0 * divergence_nats * n_r * n_c / (n_r + n_c), len(p_ref) - 1)
    return TestResult("js", d, p, d)


def wasserstein_test(ref: NumericSummary, cur: NumericSummary,
                     grid: int = WASSERSTEIN_GRID) -> TestResult:
    """W1 = integral of |Q_ref(u) - Q_cur(u)| du over a midpoint grid of ranks; effect in
    reference standard deviations. No p-value: alert on the effect threshold.

    >>> a = NumericSummary(); a.update(np.arange(100.0))
    >>> b = NumericSummary(); b.update(np.arange(100.0) + 5)
    >>> wasserstein_test(a, b).statistic
    5.0
    """
    _check(ref, cur)
    ranks = ((np.arange(grid) + 0.5) / grid).tolist()
    q_ref = np.asarray(ref.kll.get_quantiles(ranks, inclusive=True))
    q_cur = np.asarray(cur.kll.get_quantiles(ranks, inclusive=True))
    w = float(np.mean(np.abs(q_cur - q_ref)))
    scale = ref.std if ref.std > 0 else cur.std
    effect = w / scale if scale > 0 else (0.0 if w == 0 else math.inf)
    return TestResult("wasserstein", w, None, effect)


NUMERIC_TESTS: dict[str, Callable[[NumericSummary, NumericSummary], TestResult]] = {
    "ks": ks_test, "mean": mean_test, "std": std_test, "null_rate": null_rate_test,
    "psi": psi_test, "js": js_test, "wasserstein": wasserstein_test,
}


def _finite(x: float) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


def summary_stats(s: NumericSummary) -> dict[str, Any]:
    """The statistics a drift event shows for a numeric column (None where undefined).

    >>> s = NumericSummary(); s.update(np.arange(1.0, 101.0))
    >>> st = summary_stats(s); st["count"], st["q50"], st["null_rate"]
    (100, 50.0, 0.0)
    """
    q = s.quantiles(STAT_QUANTILES).values if s.count else (math.nan,) * len(STAT_QUANTILES)
    stats: dict[str, Any] = {"count": s.count, "mean": _finite(s.mean), "std": _finite(s.std)}
    stats.update({f"q{round(r * 100):02d}": _finite(v) for r, v in zip(STAT_QUANTILES, q)})
    stats.update({"null_rate": _finite(null_rate(s)), "skewness": _finite(s.skewness),
                  "kurtosis": _finite(s.kurtosis), "min": s.min, "max": s.max})
    return stats


def deltas(ref: NumericSummary, cur: NumericSummary) -> dict[str, float | None]:
    """current - reference for every statistic of `summary_stats` but the count.

    >>> a = NumericSummary(); a.update([1.0, 2.0, 3.0])
    >>> b = NumericSummary(); b.update([2.0, 3.0, 4.0])
    >>> deltas(a, b)["mean"], deltas(a, b)["q50"]
    (1.0, 1.0)
    """
    r, c = summary_stats(ref), summary_stats(cur)
    return {k: (c[k] - r[k] if c[k] is not None and r[k] is not None else None)
            for k in r if k != "count"}
