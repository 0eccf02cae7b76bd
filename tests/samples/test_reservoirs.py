"""Reservoir samplers: inclusion probabilities by chi-squared over many seeded runs (fixed
seeds, so deterministic; p-value threshold 1e-4), determinism, pickling, validation.

Inclusion counts over R runs have mean R * pi and covariance R * (pi_ij - pi_i pi_j); the
Mahalanobis distance of the counts from their mean (pseudo-inverse: a fixed-size sample makes
the covariance singular) is chi-squared with rank(covariance) degrees of freedom."""

from __future__ import annotations

import itertools
import math
import pickle
import random
from collections.abc import Callable, Sequence

import numpy as np
import pytest
from scipy import stats

from features.samples.reservoirs import (
    SkipReservoir, StratifiedReservoir, UniformReservoir, WeightedReservoir, merge_uniform,
    merge_weighted,
)

P_MIN = 1e-4


def inclusions(samples: Sequence[Sequence[int]], n: int) -> tuple[np.ndarray, int]:
    """How many runs included each item, and the number of runs."""
    for sample in samples:
        assert len(set(sample)) == len(sample)  # without replacement
    flat = [x for sample in samples for x in sample]
    return np.bincount(flat, minlength=n).astype(float), len(samples)


def chi2_pvalue(counted: tuple[np.ndarray, int], pi: np.ndarray, pij: np.ndarray) -> float:
    counts, runs = counted
    cov = pij - np.outer(pi, pi)
    d = counts - runs * pi
    stat = d @ np.linalg.pinv(cov, rcond=1e-10) @ d / runs
    return float(stats.chi2.sf(stat, np.linalg.matrix_rank(cov, tol=1e-10)))


def uniform_pvalue(counted: tuple[np.ndarray, int], k: int) -> float:
    """`chi2_pvalue` for a uniform k-subset of n (pi = k/n, pi_ij = k(k-1)/(n(n-1))), whose
    covariance p(1-p) n/(n-1) (I - J/n) has a closed-form pseudo-inverse."""
    counts, runs = counted
    n = counts.size
    p = k / n
    d = counts - runs * p
    stat = (n - 1) / (n * p * (1 - p)) * float(d @ d) / runs
    return float(stats.chi2.sf(stat, n - 1))


def successive_design(weights: Sequence[float], k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact inclusion probabilities of k successive draws proportional to weight."""
    n, total = len(weights), sum(weights)
    pi, pij = np.zeros(n), np.zeros((n, n))
    for order in itertools.permutations(range(n), k):
        p, left = 1.0, total
        for i in order:
            p *= weights[i] / left
            left -= weights[i]
        for i in order:
            pi[i] += p
            for j in order:
                pij[i, j] += p
    return pi, pij


def run_uniform(make: Callable[[int], UniformReservoir[int]], n: int, runs: int,
                via_extend: bool) -> tuple[np.ndarray, int]:
    samples = []
    items = list(range(n))
    for seed in range(runs):
        r = make(seed)
        if via_extend:
            r.extend(items)
        else:
            for x in items:
                r.add(x)
        assert r.seen == n
        samples.append(r.sample())
    return inclusions(samples, n)


@pytest.mark.parametrize("cls", [UniformReservoir, SkipReservoir])
@pytest.mark.parametrize("n,k,runs,via_extend", [(50, 5, 8_000, False), (3, 5, 500, False),
                                                 (2_000, 5, 16_000, True)])
def test_uniform_inclusion_probability_is_k_over_n(cls: type, n: int, k: int, runs: int,
                                                   via_extend: bool) -> None:
    if cls is UniformReservoir and n > 100:
        runs = 2_000  # Algorithm R draws per item: keep the run short; L jumps
    counted = run_uniform(lambda seed: cls(k, seed=seed), n, runs, via_extend)
    if n <= k:
        assert np.all(counted[0] == runs)
    else:
        assert uniform_pvalue(counted, k) > P_MIN


@pytest.mark.parametrize("cls", [UniformReservoir, SkipReservoir])
@pytest.mark.parametrize("sizes", [(13, 37), (3, 47), (20, 10, 20)])
def test_merged_reservoirs_include_every_item_with_probability_k_over_n(
        cls: type, sizes: tuple[int, ...]) -> None:
    k, runs, n = 5, 6_000, sum(sizes)
    rng = random.Random(99)
    samples = []
    for seed in range(runs):
        parts, start = [], 0
        for j, size in enumerate(sizes):
            r = cls(k, seed=seed * 10 + j)
            r.extend(range(start, start + size))
            parts.append(r)
            start += size
        merged = parts[0]
        for part in parts[1:]:
            merged = merge_uniform(merged, part, rng)
        assert type(merged) is cls and merged.seen == n
        samples.append(merged.sample())
    assert uniform_pvalue(inclusions(samples, n), k) > P_MIN


def test_merged_skip_reservoir_keeps_sampling_uniformly() -> None:
    """After a merge, Algorithm L restarts from a fresh W: later items still get k/n."""
    k, runs, n1, n2, n3 = 4, 6_000, 30, 30, 40
    rng = random.Random(5)
    samples = []
    for seed in range(runs):
        a, b = SkipReservoir(k, seed=2 * seed), SkipReservoir(k, seed=2 * seed + 1)
        a.extend(range(n1))
        b.extend(range(n1, n1 + n2))
        merged = merge_uniform(a, b, rng)
        merged.extend(range(n1 + n2, n1 + n2 + n3))
        samples.append(merged.sample())
    n = n1 + n2 + n3
    assert uniform_pvalue(inclusions(samples, n), k) > P_MIN


def test_closed_form_agrees_with_the_general_statistic() -> None:
    counted = run_uniform(lambda seed: UniformReservoir(4, seed=seed), 12, 3_000, True)
    pij = np.full((12, 12), 4 * 3 / (12 * 11))
    np.fill_diagonal(pij, 4 / 12)
    assert uniform_pvalue(counted, 4) == pytest.approx(
        chi2_pvalue(counted, np.full(12, 4 / 12), pij), rel=1e-6)


def test_skip_ahead_over_a_sequence_equals_item_by_item() -> None:
    for seed in range(20):
        a, b = SkipReservoir(7, seed=seed), SkipReservoir(7, seed=seed)
        a.extend(list(range(5_000)))
        for x in range(5_000):
            b.add(x)
        a.extend(iter(range(5_000, 6_000)))
        b.extend(range(5_000, 6_000))
        assert a.sample() == b.sample() and a.seen == b.seen == 6_000


WEIGHTS = [1.0, 2.0, 3.0, 4.0, 5.0, 10.0]


def test_weighted_inclusion_matches_successive_sampling_exactly() -> None:
    k, runs = 3, 20_000
    samples = []
    for seed in range(runs):
        r = WeightedReservoir(k, seed=seed)
        r.extend(zip(range(len(WEIGHTS)), WEIGHTS))
        samples.append(r.sample())
    counted = inclusions(samples, len(WEIGHTS))
    pi, pij = successive_design(WEIGHTS, k)
    assert chi2_pvalue(counted, pi, pij) > P_MIN
    frequencies = counted[0] / runs
    assert list(frequencies) == sorted(frequencies)  # heavier items are included more often


def test_merged_weighted_reservoirs_match_successive_sampling() -> None:
    k, runs = 3, 12_000
    rng = random.Random(1)
    samples = []
    for seed in range(runs):
        a, b = WeightedReservoir(k, seed=2 * seed), WeightedReservoir(k, seed=2 * seed + 1)
        a.extend([(0, WEIGHTS[0]), (5, WEIGHTS[5])])
        b.extend((i, WEIGHTS[i]) for i in (1, 2, 3, 4))
        merged = merge_weighted(a, b, rng)
        assert merged.seen == 6 and merged.total_weight == sum(WEIGHTS)
        samples.append(merged.sample())
    assert chi2_pvalue(inclusions(samples, 6), *successive_design(WEIGHTS, k)) > P_MIN


def test_weighted_long_stream_matches_a_res_by_simulation() -> None:
    """A-ExpJ's jumps on a longer stream against A-Res (the top-k of u ** (1/w)), numpy."""
    rng = np.random.default_rng(11)
    weights = rng.uniform(0.5, 20.0, 40)
    k, runs, ref_runs = 4, 8_000, 400_000
    samples = []
    for seed in range(runs):
        r = WeightedReservoir(k, seed=seed)
        r.extend(zip(range(40), weights.tolist()))
        samples.append(r.sample())
    ours = inclusions(samples, 40)[0] / runs
    keys = rng.random((ref_runs, 40)) ** (1.0 / weights)
    top = np.argpartition(-keys, k, axis=1)[:, :k]
    ref = np.zeros((ref_runs, 40))
    np.put_along_axis(ref, top, 1.0, axis=1)
    pi = ref.mean(axis=0)
    cov = np.cov(ref, rowvar=False) * (1 / runs + 1 / ref_runs)
    d = ours - pi
    stat = d @ np.linalg.pinv(cov, rcond=1e-8) @ d
    assert stats.chi2.sf(stat, np.linalg.matrix_rank(cov, tol=1e-8)) > P_MIN
    assert np.corrcoef(ours, weights)[0, 1] > 0.9


def test_stratified_reservoir_bounds_strata_and_counts_overflow() -> None:
    r: StratifiedReservoir[int] = StratifiedReservoir(3, max_strata=4, seed=8)
    for i in range(1_000):
        r.add(f"s{i % 10}", i)
    assert sorted(r.strata) == ["s0", "s1", "s2", "s3"]
    assert r.seen == 1_000 and r.overflow_seen == 600
    sample = r.sample()
    assert all(len(v) == 3 and all(x % 10 == int(key[1:]) for x in v)
               for key, v in sample.items())
    assert len(r.overflow.sample()) == 3 and all(x % 10 >= 4 for x in r.overflow.sample())
    again: StratifiedReservoir[int] = StratifiedReservoir(3, max_strata=4, seed=8)
    for i in range(1_000):
        again.add(f"s{i % 10}", i)
    assert again.sample() == sample  # the seed reproduces every stratum


def test_stratum_samples_are_uniform() -> None:
    runs, n, k = 4_000, 20, 3
    samples: list[list[int]] = []
    for seed in range(runs):
        r: StratifiedReservoir[int] = StratifiedReservoir(k, max_strata=2, seed=seed)
        for i in range(2 * n):
            r.add(i % 2, i // 2)
        samples.append(r.sample()[1])
    assert uniform_pvalue(inclusions(samples, n), k) > P_MIN


@pytest.mark.parametrize("make", [
    lambda: UniformReservoir(5, seed=1), lambda: SkipReservoir(5, seed=1),
    lambda: WeightedReservoir(5, seed=1), lambda: StratifiedReservoir(5, 3, seed=1)])
def test_pickled_reservoirs_continue_exactly(make: Callable[[], object]) -> None:
    def feed(r: object, lo: int, hi: int) -> None:
        for i in range(lo, hi):
            if isinstance(r, WeightedReservoir):
                r.add(i, 1.0 + i % 5)
            elif isinstance(r, StratifiedReservoir):
                r.add(i % 7, i)
            else:
                r.add(i)  # type: ignore[attr-defined]
    original = make()
    feed(original, 0, 500)
    restored = pickle.loads(pickle.dumps(original))
    feed(original, 500, 5_000)
    feed(restored, 500, 5_000)
    assert restored.sample() == original.sample()  # type: ignore[attr-defined]
    assert restored.seen == original.seen == 5_000  # type: ignore[attr-defined]


def test_invalid_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="k must be"):
        UniformReservoir(0)
    with pytest.raises(ValueError, match="max_strata"):
        StratifiedReservoir(2, 0)
    w = WeightedReservoir(2)
    for bad in (-1.0, math.nan, math.inf):
        with pytest.raises(ValueError, match="finite and >= 0"):
            w.add("x", bad)
    w.add("zero", 0.0)
    assert w.seen == 1 and w.sample() == []  # weight 0 is never sampled
    with pytest.raises(ValueError, match="sizes"):
        merge_uniform(UniformReservoir(2), UniformReservoir(3), random.Random(0))
    with pytest.raises(ValueError, match="holds"):
        UniformReservoir.from_sample([1, 2, 3], seen=10, k=2)
