"""Root-cause window: the base window where a change most likely began.

When an alert fires, the base windows before it are scanned. For each candidate start j,
the base windows j..K (the suffix, merged) are compared with the reference by the
alerting test's contrast: a z-like score that grows as effect x sqrt(n). If the change
began at window c, a suffix starting earlier mixes unchanged windows in and dilutes the
effect (score ~ effect (K - c) / sqrt(K - j)), one starting later has fewer values (score ~
effect sqrt(K - j)): the score peaks at j = c. This is the maximum-likelihood change point
against a known pre-change distribution (a CUSUM scan), computed from summaries only: the
suffixes are merged from the right, one merge per base window.

>>> import numpy as np
>>> from features.summaries.window import summarize_columns
>>> rng = np.random.default_rng(3)
>>> windows = [summarize_columns(i * 60_000, (i + 1) * 60_000,
...                              {"x": rng.normal(0.5 if i >= 4 else 0.0, 1.0, 1000)}, ["x"], [])
...            for i in range(8)]
>>> ref = summarize_columns(0, 1, {"x": rng.normal(0.0, 1.0, 20_000)}, ["x"], []).columns["x"]
>>> localise(windows, "x", "mean", lambda start, end: ref)
(240000, 300000)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from features.summaries import categorical as categorical_summary, numeric as numeric_summary
from features.drift.categorical import chi2_test
from features.drift.categorical import null_rate_test as categorical_null_rate
from features.drift.result import TestResult
from features.drift.numeric import ks_test, mean_test, null_rate_test, std_test
from features.summaries.numeric import NumericSummary
from features.summaries.window import ColumnSummary, WindowSummary

# Given a suffix's [start_ms, end_ms), the reference column summary to compare it with.
ReferenceFor = Callable[[int, int], "ColumnSummary | None"]


def contrast(test: str, ref: ColumnSummary, cur: ColumnSummary) -> float:
    """How far `cur` is from `ref`, as a score ~ effect x sqrt(n), for the alerting test.

    Location tests use the Welch z of the means; spread, the log-variance z; missing
    values, the null-rate z; other numeric tests the KS score D sqrt(n m / (n + m));
    categorical tests sqrt(chi-squared), new categories their count / sqrt(n).

    >>> a = NumericSummary(); a.update([0.0, 1.0, 2.0]); b = NumericSummary(); b.update([1.0, 2.0, 3.0])
    >>> round(contrast("mean", a, b), 3)
    1.225
    """
    if isinstance(ref, NumericSummary):
        assert isinstance(cur, NumericSummary)
        if test in ("null_rate", "missing"):
            return abs(null_rate_test(ref, cur).statistic)
        if cur.count == 0:
            return 0.0
        if test in ("mean", "std"):
            result: TestResult = (mean_test if test == "mean" else std_test)(ref, cur)
            return abs(result.statistic)
        d = ks_test(ref, cur).statistic
        return d * math.sqrt(ref.count * cur.count / (ref.count + cur.count))
    if test in ("null_rate", "missing"):
        return abs(categorical_null_rate(ref, cur).statistic)  # type: ignore[arg-type]
    if cur.count == 0:
        return 0.0
    if test == "new_category":
        new = sum(n for name, n in cur.counts.items() if ref.count_bounds(name)[1] == 0)
        return new / math.sqrt(cur.count)
    return math.sqrt(chi2_test(ref, cur).statistic)  # type: ignore[arg-type]


def merge_column(a: ColumnSummary, b: ColumnSummary) -> ColumnSummary:
    """Merge two summaries of one column (numeric or categorical).

    >>> a = NumericSummary(); a.update([1.0]); merge_column(a, a).count
    2
    """
    if isinstance(a, NumericSummary):
        return numeric_summary.merge(a, b)  # type: ignore[arg-type]
    return categorical_summary.merge(a, b)  # type: ignore[arg-type]


def localise(windows: Sequence[WindowSummary], column: str, test: str,
             reference_for: ReferenceFor, min_count: int = 1) -> tuple[int, int] | None:
    """The [start_ms, end_ms) of the base window where the change in `column` most likely
    began, among `windows` (base windows in time order, the alerting window's last); None
    when no suffix has `min_count` values and a reference. New categories are exact: the
    first window of the run of windows, ending with the alerting one, that hold one.

    `reference_for(start, end)` is asked for suffixes with decreasing starts.
    """
    if test == "new_category":
        return _first_with_new_categories(windows, column, reference_for)
    best: tuple[float, int] | None = None
    suffix: ColumnSummary | None = None
    for j in range(len(windows) - 1, -1, -1):
        part = windows[j].columns[column]
        suffix = part if suffix is None else merge_column(part, suffix)
        seen = suffix.count + suffix.nulls
        ref = reference_for(windows[j].start_ms, windows[-1].end_ms)
        if seen < min_count or ref is None or ref.count == 0:
            continue
        score = contrast(test, ref, suffix)
        if best is None or score > best[0]:
            best = (score, j)
    if best is None:
        return None
    chosen = windows[best[1]]
    return (chosen.start_ms, chosen.end_ms)


def _first_with_new_categories(windows: Sequence[WindowSummary], column: str,
                               reference_for: ReferenceFor) -> tuple[int, int] | None:
    first = None
    for w in reversed(windows):
        ref = reference_for(w.start_ms, w.end_ms)
        counts = w.columns[column].counts  # type: ignore[union-attr]
        if ref is None or not any(n and ref.count_bounds(name)[1] == 0 for name, n in counts.items()):
            break
        first = (w.start_ms, w.end_ms)
    return first
