"""Multivariate drift: maximum mean discrepancy (MMD) with a permutation test.

Gretton et al., "A Kernel Two-Sample Test" (JMLR 2012). Both samples (rows of the
monitor's numeric columns, from `features.samples.reservoirs` reservoirs) are standardised with the
reference's column means and standard deviations, so no column dominates by its units; the
kernel is Gaussian with the median pairwise distance of the pooled sample as bandwidth. The
statistic is the unbiased MMD^2; the p-value counts permutations of the pooled rows whose
statistic reaches the observed one, (1 + hits) / (1 + permutations), with a seeded
generator, so the same samples always give the same p-value.

>>> rng = np.random.default_rng(0)
>>> ref = rng.normal(size=(200, 3))
>>> same = mmd_test(ref, rng.normal(size=(200, 3)), permutations=200, seed=1)
>>> moved = mmd_test(ref, rng.normal(size=(200, 3)) + [0.5, 0.0, 0.0], permutations=200, seed=1)
>>> same.p_value > 0.01, moved.p_value < 0.01, moved.effect_size > same.effect_size
(True, True, True)
"""

from __future__ import annotations

import math

import numpy as np

from features.drift.result import TestResult

DEFAULT_PERMUTATIONS = 200


def standardise(ref: np.ndarray, cur: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both samples scaled by the reference's column means and standard deviations
    (a constant column is only centred).

    >>> a, b = standardise(np.array([[0.0], [2.0]]), np.array([[4.0]])); a.ravel().tolist(), b.ravel().tolist()
    ([-1.0, 1.0], [3.0])
    """
    mean = ref.mean(axis=0)
    std = ref.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return (ref - mean) / std, (cur - mean) / std


def mmd_test(ref: np.ndarray, cur: np.ndarray, permutations: int = DEFAULT_PERMUTATIONS,
             seed: int = 0) -> TestResult:
    """Unbiased MMD^2 of two samples (rows = observations), permutation p-value; effect =
    MMD (the square root of max(0, MMD^2)) in standardised units.

    >>> x = np.zeros((5, 2)); mmd_test(x, x + 10.0, permutations=50).p_value < 0.1
    True
    """
    ref = np.asarray(ref, dtype=float)
    cur = np.asarray(cur, dtype=float)
    if ref.ndim != 2 or cur.ndim != 2 or ref.shape[1] != cur.shape[1]:
        raise ValueError(f"mmd_test needs two 2-d samples with the same columns, got shapes "
                         f"{ref.shape} and {cur.shape}")
    n, m = len(ref), len(cur)
    if n < 2 or m < 2:
        raise ValueError(f"mmd_test needs at least 2 rows per sample, got {n} and {m}")
    x, y = standardise(ref, cur)
    pooled = np.vstack([x, y])
    sq = np.sum(pooled * pooled, axis=1)
    dist2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * pooled @ pooled.T, 0.0)
    upper = dist2[np.triu_indices(n + m, k=1)]
    bandwidth2 = float(np.median(upper[upper > 0])) if np.any(upper > 0) else 1.0
    kernel = np.exp(-dist2 / bandwidth2)
    np.fill_diagonal(kernel, 0.0)
    row_sums = kernel.sum(axis=1)

    def statistic(first: np.ndarray) -> np.ndarray:
        # Unbiased MMD^2 for each column of `first` (True = row belongs to the first sample).
        w = np.where(first, 1.0, 0.0)
        kw = kernel @ w
        k_rest = row_sums[:, None] - kw  # kernel @ (1 - w)
        kxx = np.sum(w * kw, axis=0)
        kxy = np.sum(w * k_rest, axis=0)
        kyy = np.sum((1.0 - w) * k_rest, axis=0)
        return kxx / (n * (n - 1)) + kyy / (m * (m - 1)) - 2.0 * kxy / (n * m)

    observed_mask = np.zeros((n + m, 1), dtype=bool)
    observed_mask[:n] = True
    observed = float(statistic(observed_mask)[0])
    rng = np.random.default_rng(seed)
    masks = np.zeros((n + m, permutations), dtype=bool)
    for b in range(permutations):
        masks[rng.permutation(n + m)[:n], b] = True
    hits = int(np.sum(statistic(masks) >= observed))
    p = (1 + hits) / (1 + permutations)
    return TestResult("mmd", observed, p, math.sqrt(max(0.0, observed)),
                      note=f"{n} reference and {m} current rows, {permutations} permutations")
