"""Two-sample drift tests on categorical columns, from two `CategoricalSummary`s.

The summaries hold exact counts per category (up to their cap; values past it are tallied
in `other`, which the tests treat as one more category), so these tests are exact:

| test | statistic | p-value | effect size |
|---|---|---|---|
| `chi2` | chi-squared of the 2 x k table of counts | chi-squared, k - 1 dof | Cramer's V = sqrt(chi2 / N) |
| `psi` | PSI over the categories | chi-squared approximation | PSI |
| `js` | Jensen-Shannon distance (base 2) | chi-squared approximation | the distance |
| `new_category` | share of the window in categories the reference never saw | exact per category, Bonferroni | that share |
| `vanished_category` | reference share of categories absent from the window | exact per category, Bonferroni | that share |
| `null_rate` | two-proportion z of null rates | two-sided normal | null rate difference |

>>> ref, cur = CategoricalSummary(), CategoricalSummary()
>>> ref.update(["card"] * 600 + ["cash"] * 300 + ["wallet"] * 100)
>>> cur.update(["card"] * 500 + ["cash"] * 300 + ["crypto"] * 200)
>>> r = new_category_test(ref, cur); r.statistic, r.note
(0.2, 'new: crypto 20.0%')
>>> v = vanished_category_test(ref, cur); v.statistic, v.p_value < 1e-20, v.note
(0.1, True, 'vanished: wallet (was 10.0%)')
>>> round(chi2_test(ref, cur).effect_size, 3)
0.393
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from features.summaries.categorical import CategoricalSummary
from features.drift.result import TestResult
from features.drift.numeric import chi2_p, js_from_shares, proportion_test, psi_from_shares

OTHER = "(other)"  # the bucket of values past a summary's category cap
TOP_CATEGORIES = 20  # categories listed in a drift event's summary statistics
CATEGORY_ALPHA = 0.01  # a new or vanished category counts when its adjusted p-value is below this


def _check(ref: CategoricalSummary, cur: CategoricalSummary) -> None:
    if ref.count == 0 or cur.count == 0:
        raise ValueError(f"a drift test needs values on both sides, got {ref.count} reference "
                         f"and {cur.count} current values; skip windows below the monitor's "
                         "min_count")


def aligned_counts(ref: CategoricalSummary, cur: CategoricalSummary) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The union of categories (sorted, `(other)` last when either side overflowed) and
    both sides' counts over it.

    >>> a = CategoricalSummary(); a.update(["x", "y"]); b = CategoricalSummary(); b.update(["y", "z"])
    >>> names, r, c = aligned_counts(a, b); names, r.tolist(), c.tolist()
    (['x', 'y', 'z'], [1.0, 1.0, 0.0], [0.0, 1.0, 1.0])
    """
    names = sorted(set(ref.counts) | set(cur.counts))
    r = [ref.counts.get(n, 0) for n in names]
    c = [cur.counts.get(n, 0) for n in names]
    if ref.other or cur.other:
        names.append(OTHER)
        r.append(ref.other)
        c.append(cur.other)
    return names, np.asarray(r, dtype=float), np.asarray(c, dtype=float)


def chi2_test(ref: CategoricalSummary, cur: CategoricalSummary) -> TestResult:
    """Pearson's chi-squared test of homogeneity on the 2 x k table (no continuity
    correction, as `scipy.stats.chi2_contingency(correction=False)`).

    >>> a = CategoricalSummary(); a.update(["x"] * 50 + ["y"] * 50)
    >>> chi2_test(a, a).statistic, chi2_test(a, a).p_value
    (0.0, 1.0)
    """
    _check(ref, cur)
    _, r, c = aligned_counts(ref, cur)
    keep = (r + c) > 0
    r, c = r[keep], c[keep]
    table = np.vstack([r, c])
    n = table.sum()
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / n
    chi2 = float(np.sum((table - expected) ** 2 / expected))
    return TestResult("chi2", chi2, chi2_p(chi2, len(r) - 1), float(np.sqrt(chi2 / n)))


def psi_test(ref: CategoricalSummary, cur: CategoricalSummary) -> TestResult:
    """PSI over the categories (empty categories count as half a value).

    >>> a = CategoricalSummary(); a.update(["x"] * 50 + ["y"] * 50)
    >>> b = CategoricalSummary(); b.update(["x"] * 60 + ["y"] * 40)
    >>> round(psi_test(a, b).statistic, 4)
    0.0405
    """
    _check(ref, cur)
    _, r, c = aligned_counts(ref, cur)
    n_r, n_c = r.sum(), c.sum()
    psi = psi_from_shares(r / n_r, c / n_c, n_r, n_c)
    return TestResult("psi", psi, chi2_p(psi * n_r * n_c / (n_r + n_c), len(r) - 1), psi)


def js_test(ref: CategoricalSummary, cur: CategoricalSummary) -> TestResult:
    """Jensen-Shannon distance (base 2) between the category shares.

    >>> a = CategoricalSummary(); a.update(["x"]); b = CategoricalSummary(); b.update(["y"])
    >>> js_test(a, b).statistic
    1.0
    """
    _check(ref, cur)
    _, r, c = aligned_counts(ref, cur)
    n_r, n_c = r.sum(), c.sum()
    d = js_from_shares(r / n_r, c / n_c)
    p = chi2_p(8.0 * d * d * np.log(2.0) * n_r * n_c / (n_r + n_c), len(r) - 1)
    return TestResult("js", d, p, d)


def _listing(label: str, shares: dict[str, float], was: bool = False) -> str:
    top = sorted(shares.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
    parts = [f"{n} {'(was ' if was else ''}{s:.1%}{')' if was else ''}" for n, s in top]
    more = f" and {len(shares) - 5} more" if len(shares) > 5 else ""
    return f"{label}: {', '.join(parts)}{more}" if shares else ""


def _one_sided(count: int, n_other: int, n_here: int) -> float:
    """Exact conditional test of a category seen `count` times on one side only: given its
    total, each value falls on this side with probability n_here / (n_here + n_other), so
    all of them do with probability (n_here / (n_here + n_other)) ** count."""
    return (n_here / (n_here + n_other)) ** count


def _categories_only_on_one_side(side: CategoricalSummary, other: CategoricalSummary,
                                 n_categories: int) -> tuple[dict[str, float], float]:
    """Categories with values on `side` and surely none on `other` (the count's upper bound
    is 0, so this holds past the cap too): those significant on their own after Bonferroni
    over the categories (adjusted p <= CATEGORY_ALPHA), as {name: share of `side`}, and the
    smallest adjusted p-value of all of them (1.0 if there are none)."""
    significant: dict[str, float] = {}
    smallest = 1.0
    for name, n in side.counts.items():
        if n and other.count_bounds(name)[1] == 0:
            p = min(1.0, n_categories * _one_sided(n, other.count, side.count))
            smallest = min(smallest, p)
            if p <= CATEGORY_ALPHA:
                significant[name] = n / side.count
    return significant, smallest


def new_category_test(ref: CategoricalSummary, cur: CategoricalSummary) -> TestResult:
    """Categories of the window that the reference never saw, seen too often to be rare
    categories the reference missed by chance: each is tested exactly (all c of its values
    fell in the window: p = (n_cur / (n_ref + n_cur))^c), Bonferroni over the categories.
    Statistic and effect = the window's share of the significant ones; p-value = the
    smallest adjusted p.

    >>> a = CategoricalSummary(); a.update(["x"] * 900); b = CategoricalSummary(); b.update(["x"] * 90 + ["y"] * 10)
    >>> r = new_category_test(a, b); r.statistic, r.p_value < 1e-9, r.note
    (0.1, True, 'new: y 10.0%')
    """
    _check(ref, cur)
    names, _, _ = aligned_counts(ref, cur)
    new, p = _categories_only_on_one_side(cur, ref, len(names))
    share = sum(new.values())
    return TestResult("new_category", share, p, share, note=_listing("new", new))


def vanished_category_test(ref: CategoricalSummary, cur: CategoricalSummary) -> TestResult:
    """Reference categories with no value in the window, absent too surely to be chance:
    each is tested exactly (all r of its values fell in the reference: p = (n_ref /
    (n_ref + n_cur))^r), Bonferroni over the categories. Statistic and effect = the
    reference share of the significant ones; p-value = the smallest adjusted p. (A long
    tail of rare categories always misses some in a window: they are not evidence.)

    >>> a = CategoricalSummary(); a.update(["x"] * 500 + ["y"] * 500)
    >>> b = CategoricalSummary(); b.update(["x"] * 100)
    >>> r = vanished_category_test(a, b); r.statistic, r.p_value < 1e-20, r.note
    (0.5, True, 'vanished: y (was 50.0%)')
    """
    _check(ref, cur)
    names, _, _ = aligned_counts(ref, cur)
    gone, p = _categories_only_on_one_side(ref, cur, len(names))
    share = sum(gone.values())
    return TestResult("vanished_category", share, p, share, note=_listing("vanished", gone, was=True))


def null_rate_test(ref: CategoricalSummary, cur: CategoricalSummary) -> TestResult:
    """Has the share of nulls changed?

    >>> a = CategoricalSummary(); a.update(["x"] * 99 + [None])
    >>> b = CategoricalSummary(); b.update(["x"] * 90 + [None] * 10)
    >>> round(null_rate_test(a, b).effect_size, 2)
    0.09
    """
    return proportion_test("null_rate", ref.nulls, ref.count + ref.nulls, cur.nulls, cur.count + cur.nulls)


CATEGORICAL_TESTS: dict[str, Callable[[CategoricalSummary, CategoricalSummary], TestResult]] = {
    "chi2": chi2_test, "psi": psi_test, "js": js_test, "new_category": new_category_test,
    "vanished_category": vanished_category_test, "null_rate": null_rate_test,
}


def summary_stats(s: CategoricalSummary) -> dict[str, Any]:
    """What a drift event shows for a categorical column: count, null rate and the shares
    of the most frequent categories.

    >>> s = CategoricalSummary(); s.update(["a", "a", "b", None])
    >>> summary_stats(s)
    {'count': 3, 'null_rate': 0.25, 'categories': {'a': 0.6667, 'b': 0.3333}}
    """
    n = s.count + s.nulls
    shares = sorted(s.counts.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_CATEGORIES]
    categories = {name: round(c / s.count, 4) for name, c in shares}
    if s.other:
        categories[OTHER] = round(s.other / s.count, 4)
    return {"count": s.count, "null_rate": s.nulls / n if n else None, "categories": categories}
