"""Data expectations, evaluated on window summaries where possible, else value by value.

An expectation is a frozen dataclass naming a column and a `mostly` fraction (the share of
checked values that must comply, 1.0 by default); its result (`ExpectationResult`) says what
was observed against what was expected, the verdict, an estimate and bounds of the failing
count, and examples where the evidence holds some.

On summaries (no events re-read):

- `ValueRange(column, min, max, mostly)`: the share of numbers in [min, max], from the exact
  min and max when they decide it, else from the KLL sketch: fraction = rank(<= max) -
  rank(< min), within the sketch's double-sided rank error (99% confidence; one-sided when
  only one bound is given). Infinite values are never in range; nulls and non-numbers are
  not checked (see `NotNull` and `NumericType`).
- `InSet(column, allowed, mostly)`: the share of non-null categories in `allowed`, from the
  categorical summary's exact counts; past its cap, bounded with `other`, the slack of each
  count and the frequent-items sketch.
- `NotNull(column, mostly)`: exact, from the null count (a field missing from an event is a
  null).
- `NumericType(column, mostly)`: exact, the share of non-null values of a numeric column that
  are numbers (not strings, booleans, ...).

Value by value (`checker()` gives a mergeable `ValueCheck` to feed values into):

- `Matches(column, pattern, mostly)`: `re.search` on strings (anchor with ^...$ for whole
  values); a non-string fails.
- `HasType(column, type_name, mostly)`: "number", "integer", "string" or "boolean".

Results and the three-valued verdict ("pass", "fail", "uncertain": conservative both
ways) are described in `features.expectations.results`; the value-by-value specs live in
`features.expectations.value_checks` and are re-exported here.

>>> from features.summaries.numeric import NumericSummary
>>> s = NumericSummary(); s.update([61.0, 65.5, 70.0, 74.0, 80.0])
>>> r = ValueRange("room_temp", 60, 75, mostly=0.95).evaluate(s)
>>> r.verdict, r.observed, r.expected, r.failing
('fail', '80.0% in [60, 75]', '>= 95%', 1)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Union

import numpy as np  # noqa: F401  # the examples use it

from features.summaries.categorical import CategoricalSummary
from features.expectations.results import (
    ExpectationResult, Spec, Verdict, check_mostly, percent, result_from_bounds,
)
from features.summaries.numeric import NumericSummary
from features.expectations.value_checks import HasType, Matches, ValueCheck, merge_checks

__all__ = [
    "ExpectationResult", "HasType", "InSet", "Matches", "NotNull", "NumericType", "ValueCheck",
    "ValueRange", "Verdict", "evaluate", "evaluate_all", "merge_checks",
]


def _interval(lo: float | None, hi: float | None) -> str:
    left = "(-inf" if lo is None else f"[{lo:g}"
    right = "+inf)" if hi is None else f"{hi:g}]"
    return f"{left}, {right}"


@dataclass(frozen=True)
class ValueRange(Spec):
    """Numbers in [min, max] (either side may be None: unbounded) for a `mostly` share.

    >>> from features.summaries.numeric import NumericSummary
    >>> s = NumericSummary(); s.update(np.arange(60.0, 76.0))
    >>> ValueRange("t", 60, 75).evaluate(s).verdict
    'pass'
    """

    min: float | None = None
    max: float | None = None
    mostly: float = 1.0

    def __post_init__(self) -> None:
        check_mostly(self.mostly)
        if self.min is None and self.max is None:
            raise ValueError(f"ValueRange on {self.column!r} needs min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"ValueRange on {self.column!r}: min {self.min} > max {self.max}")

    def evaluate(self, summary: NumericSummary) -> ExpectationResult:
        """The share of the summary's numbers in range, with the sketch's error bounds."""
        s, interval = summary, _interval(self.min, self.max)
        text = f"values in {interval}"
        lo = -math.inf if self.min is None else float(self.min)
        hi = math.inf if self.max is None else float(self.max)
        checked, eps = s.count + s.infinite, 0.0
        if s.count == 0 or s.max < lo or s.min > hi:  # type: ignore[operator]
            inside = 0.0
        elif lo <= s.min and s.max <= hi:  # type: ignore[operator]
            inside = float(s.count)
        else:
            below = s.kll.get_rank(lo, inclusive=False) if self.min is not None else 0.0
            upto = s.kll.get_rank(hi, inclusive=True) if self.max is not None else 1.0
            inside = (upto - below) * s.count
            two_sided = self.min is not None and self.max is not None
            eps = s.pmf_error if two_sided else s.rank_error
            if eps == 0.0:  # the sketch holds every value: ranks are exact counts / n
                inside = float(round(inside))
        slack = eps * s.count
        share = inside / checked if checked else 1.0
        observed = (f"{percent(share, self.mostly)} in {interval}" if checked
                    else "no numbers to check")
        if eps:
            observed += f" (+/-{100 * eps:.1f}% of values, 99% confidence)"
        examples = []
        if s.count and s.min < lo:  # type: ignore[operator]
            examples.append(f"min {s.min:g}")
        if s.count and s.max > hi:  # type: ignore[operator]
            examples.append(f"max {s.max:g}")
        if s.infinite:
            examples.append(f"{s.infinite} infinite")
        return result_from_bounds(self, text, checked, checked - inside, checked - inside - slack,
                       checked - inside + slack, observed, examples)


@dataclass(frozen=True)
class InSet(Spec):
    """Categories in `allowed` (compared as strings, as the summary stores them).

    >>> from features.summaries.categorical import CategoricalSummary
    >>> s = CategoricalSummary(); s.update(["card", "cash", "card", "btc"])
    >>> r = InSet("payment", frozenset({"card", "cash"}), mostly=0.9).evaluate(s)
    >>> r.verdict, r.observed, r.examples
    ('fail', '75.0% in the allowed set', ("'btc' (1)",))
    """

    allowed: frozenset[str] = frozenset()
    mostly: float = 1.0

    def __post_init__(self) -> None:
        check_mostly(self.mostly)
        object.__setattr__(self, "allowed", frozenset(str(a) for a in self.allowed))

    def evaluate(self, summary: CategoricalSummary) -> ExpectationResult:
        """Exact below the summary's cap; bounded past it (module docstring)."""
        s = summary
        shown = ", ".join(repr(a) for a in sorted(self.allowed)[:8])
        text = f"values in {{{shown}{', ...' if len(self.allowed) > 8 else ''}}}"
        outside = sorted(((n, name) for name, n in s.counts.items() if name not in self.allowed),
                         key=lambda t: (-t[0], t[1]))
        known = sum(n for n, _ in outside)
        # Values in `other` are not allowed, except for allowed categories that are not
        # counted (bounded by the frequent-items sketch) or counted with slack.
        allowed_max = allowed_est = 0
        for name in self.allowed:
            if name in s.counts:
                missing = s.slack.get(name, 0)
                allowed_max += missing
                if missing:
                    estimate = s.freq.get_estimate(name) - s.counts[name]
                    allowed_est += min(max(estimate, 0), missing)
            elif s.other:
                allowed_max += s.freq.get_upper_bound(name)
                allowed_est += s.freq.get_estimate(name)
        allowed_max, allowed_est = min(s.other, allowed_max), min(s.other, allowed_est)
        checked = s.count
        failing = known + s.other - allowed_est
        observed = (f"{percent(1 - failing / checked, self.mostly)} in the allowed set"
                    if checked else "no values to check")
        if s.other:
            observed += f" (estimated: {s.other} values past the {s.cap}-category cap)"
        examples = [f"{name!r} ({n})" for n, name in outside]
        return result_from_bounds(self, text, checked, failing, known + s.other - allowed_max,
                       known + s.other, observed, examples)


@dataclass(frozen=True)
class NotNull(Spec):
    """Values present and not null (None, NaN, or a missing field) for a `mostly` share.

    >>> from features.summaries.categorical import CategoricalSummary
    >>> s = CategoricalSummary(); s.update(["a", None, "b", "c"])
    >>> NotNull("c", mostly=0.7).evaluate(s).observed
    '75.0% not null (1 null of 4)'
    """

    mostly: float = 1.0

    def __post_init__(self) -> None:
        check_mostly(self.mostly)

    def evaluate(self, summary: NumericSummary | CategoricalSummary) -> ExpectationResult:
        """Exact from the summary's null count."""
        s = summary
        non_null = s.count + (s.infinite + s.invalid if isinstance(s, NumericSummary) else 0)
        checked = non_null + s.nulls
        observed = (f"{percent(non_null / checked, self.mostly)} not null ({s.nulls} "
                    f"null{'' if s.nulls == 1 else 's'} of {checked})" if checked
                    else "no values to check")
        return result_from_bounds(self, "not null", checked, s.nulls,
                       s.nulls, s.nulls, observed)


@dataclass(frozen=True)
class NumericType(Spec):
    """Non-null values of a numeric column are numbers (not strings, booleans, ...).

    >>> from features.summaries.numeric import NumericSummary
    >>> s = NumericSummary(); s.update([1.0, "7", 3, None])
    >>> NumericType("x").evaluate(s).observed
    '66.7% numbers (1 not a number)'
    """

    mostly: float = 1.0

    def __post_init__(self) -> None:
        check_mostly(self.mostly)

    def evaluate(self, summary: NumericSummary) -> ExpectationResult:
        """Exact from the summary's invalid count."""
        s = summary
        checked = s.count + s.infinite + s.invalid
        observed = (f"{percent(1 - s.invalid / checked, self.mostly)} numbers ({s.invalid} "
                    f"not a number)" if checked else "no values to check")
        return result_from_bounds(self, "numbers", checked, s.invalid,
                       s.invalid, s.invalid, observed)


# ---- on a window ---------------------------------------------------------------------

SummarySpec = Union[ValueRange, InSet, NotNull, NumericType]
_NEEDS: dict[type, tuple[type, ...]] = {
    ValueRange: (NumericSummary,), InSet: (CategoricalSummary,),
    NotNull: (NumericSummary, CategoricalSummary), NumericType: (NumericSummary,)}


def evaluate(spec: SummarySpec, columns: Mapping[str, NumericSummary | CategoricalSummary]
             ) -> ExpectationResult:
    """Evaluate a summary expectation on its column of a window (`WindowSummary.columns`).

    >>> from features.summaries.window import summarize_events
    >>> w = summarize_events(0, 60_000, [{"t": 70.0}, {"t": None}], ["t"], [])
    >>> evaluate(NotNull("t", mostly=0.9), w.columns).verdict
    'fail'
    """
    needs = _NEEDS.get(type(spec))
    if needs is None:
        raise ValueError(f"{type(spec).__name__} is checked value by value, not on summaries: "
                         "feed the values to spec.checker()")
    if spec.column not in columns:
        raise ValueError(f"expectation on {spec.column!r}: the window has no such column "
                         f"(it has {sorted(columns)}); summarise that column")
    summary = columns[spec.column]
    if not isinstance(summary, needs):
        raise ValueError(f"{type(spec).__name__} on {spec.column!r} needs a "
                         f"{' or '.join(t.__name__ for t in needs)}, the window has a "
                         f"{type(summary).__name__}; declare the column with that kind")
    return spec.evaluate(summary)  # type: ignore[arg-type]


def evaluate_all(specs: Iterable[SummarySpec],
                 columns: Mapping[str, NumericSummary | CategoricalSummary]
                 ) -> tuple[ExpectationResult, ...]:
    """`evaluate` for each expectation, in order."""
    return tuple(evaluate(spec, columns) for spec in specs)

