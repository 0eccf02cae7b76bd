"""Categorical drift tests agree with direct computations on the counts."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats
from scipy.spatial.distance import jensenshannon

from features.drift.categorical import (
    OTHER, aligned_counts, chi2_test, js_test, new_category_test, null_rate_test, psi_test,
    summary_stats, vanished_category_test,
)
from features.summaries.categorical import CategoricalSummary

counts = st.dictionaries(st.sampled_from("abcdefgh"), st.integers(0, 500), min_size=1)


def summary(table: dict[str, int], nulls: int = 0) -> CategoricalSummary:
    s = CategoricalSummary()
    s.update([name for name, n in table.items() for _ in range(n)] + [None] * nulls)
    return s


@given(counts, counts)
def test_chi2_psi_js_equal_direct_computation(ref: dict[str, int], cur: dict[str, int]) -> None:
    a, b = summary(ref), summary(cur)
    if a.count == 0 or b.count == 0:
        return
    names = sorted({n for n, c in ref.items() if c} | {n for n, c in cur.items() if c})
    r = np.array([ref.get(n, 0) for n in names], dtype=float)
    c = np.array([cur.get(n, 0) for n in names], dtype=float)
    result = chi2_test(a, b)
    if len(names) > 1:
        chi2, p, dof, _ = stats.chi2_contingency(np.vstack([r, c]), correction=False)
        assert result.statistic == pytest.approx(chi2, rel=1e-9, abs=1e-9)
        assert result.p_value == pytest.approx(p, rel=1e-6, abs=1e-12)
        assert result.effect_size == pytest.approx(np.sqrt(chi2 / (r.sum() + c.sum())), abs=1e-12)
    p_ref, p_cur = r / r.sum(), c / c.sum()
    fr, fc = np.maximum(p_ref, 0.5 / r.sum()), np.maximum(p_cur, 0.5 / c.sum())
    assert psi_test(a, b).statistic == pytest.approx(float(np.sum((fc - fr) * np.log(fc / fr))), abs=1e-12)
    assert js_test(a, b).statistic == pytest.approx(float(jensenshannon(p_ref, p_cur, base=2)), abs=1e-7)


def test_new_and_vanished_categories() -> None:
    ref = summary({"card": 600, "cash": 300, "wallet": 100})
    cur = summary({"card": 500, "cash": 400, "crypto": 100})
    new = new_category_test(ref, cur)
    # All 100 crypto values fell in the window, which holds half of both sides' values.
    assert new.statistic == pytest.approx(0.1) and new.p_value == pytest.approx(4 * 0.5 ** 100)
    assert "crypto 10.0%" in new.note
    gone = vanished_category_test(ref, cur)
    assert gone.statistic == pytest.approx(0.1) and gone.p_value == pytest.approx(4 * 0.5 ** 100)
    assert "wallet" in gone.note
    same = new_category_test(ref, ref)
    assert (same.statistic, same.p_value, same.note) == (0.0, 1.0, "")
    # A rare category missing from a small window is not evidence.
    rare = summary({"card": 9990, "gold": 10})
    quiet = vanished_category_test(rare, summary({"card": 100}))
    assert quiet.statistic == 0.0 and quiet.p_value > 0.5


def test_a_long_tail_of_rare_categories_is_not_a_drift() -> None:
    rng = np.random.default_rng(3)
    names = [f"c{i}" for i in range(200)]
    weights = 1 / np.arange(1, 201) ** 1.1
    weights /= weights.sum()
    ref = CategoricalSummary()
    ref.update(list(rng.choice(names, 10_000, p=weights)))
    flagged = 0
    for _ in range(50):
        cur = CategoricalSummary()
        cur.update(list(rng.choice(names, 1_000, p=weights)))
        gone, new = vanished_category_test(ref, cur), new_category_test(ref, cur)
        flagged += gone.p_value <= 0.01 or new.p_value <= 0.01
    assert flagged <= 2  # each test holds its level: ~1% of windows, x2 tests


def test_categories_past_the_cap_are_compared_as_other() -> None:
    ref, cur = CategoricalSummary(cap=3), CategoricalSummary(cap=3)
    ref.update(list("aaabbbcccdde"))
    cur.update(list("aaabbbcccxxx"))
    names, r, c = aligned_counts(ref, cur)
    assert names[-1] == OTHER and r[-1] == 3 and c[-1] == 3
    # "x" and "d" sit in `other`: neither can be proven new or vanished.
    assert new_category_test(ref, cur).statistic == 0.0
    assert vanished_category_test(ref, cur).statistic == 0.0


def test_null_rate_and_stats() -> None:
    a, b = summary({"x": 990}, nulls=10), summary({"x": 800}, nulls=200)
    result = null_rate_test(a, b)
    assert result.effect_size == pytest.approx(0.19) and result.p_value < 1e-20
    assert summary_stats(b) == {"count": 800, "null_rate": 0.2, "categories": {"x": 1.0}}
