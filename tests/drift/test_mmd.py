"""MMD permutation test: calibrated under no drift, reproducible, powerful on joint changes."""

from __future__ import annotations

import numpy as np
import pytest

from features.drift.mmd import mmd_test


def test_p_values_are_calibrated_under_no_drift() -> None:
    rng = np.random.default_rng(1)
    p = [mmd_test(rng.normal(size=(60, 3)), rng.normal(size=(60, 3)), permutations=99, seed=i).p_value
         for i in range(60)]
    assert sum(x <= 0.05 for x in p) <= 8  # nominal 3 of 60


def test_same_inputs_same_result_and_unit_free() -> None:
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(80, 2)), rng.normal(size=(80, 2)) + [0.8, 0.0]
    a = mmd_test(x, y, permutations=100, seed=5)
    assert a == mmd_test(x, y, permutations=100, seed=5)
    scaled = mmd_test(x * [1000.0, 1.0], y * [1000.0, 1.0], permutations=100, seed=5)
    assert scaled.statistic == pytest.approx(a.statistic) and scaled.p_value == a.p_value
    assert a.p_value < 0.02


def test_unbiased_statistic_matches_the_definition() -> None:
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(30, 2)), rng.normal(size=(20, 2))
    result = mmd_test(x, y, permutations=20)
    mean, std = x.mean(axis=0), x.std(axis=0)
    xs, ys = (x - mean) / std, (y - mean) / std
    z = np.vstack([xs, ys])
    d2 = ((z[:, None, :] - z[None, :, :]) ** 2).sum(-1)
    bw = np.median(d2[np.triu_indices(50, 1)])
    k = np.exp(-d2 / bw)
    kxx, kyy, kxy = k[:30, :30], k[30:, 30:], k[:30, 30:]
    expected = ((kxx.sum() - np.trace(kxx)) / (30 * 29) + (kyy.sum() - np.trace(kyy)) / (20 * 19)
                - 2 * kxy.mean())
    assert result.statistic == pytest.approx(expected, rel=1e-9)


def test_bad_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="same columns"):
        mmd_test(np.zeros((5, 2)), np.zeros((5, 3)))
