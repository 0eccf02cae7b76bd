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

Verdicts are three-valued and conservative both ways: "pass" when even the least favourable
end of the bounds meets `mostly`, "fail" when even the most favourable end misses it, and
"uncertain" when the sketch's error straddles the threshold. `passed` is true only for
"pass" and `failed` only for "fail": gate on `passed` to require proof of compliance, alert
on `failed` to alert only on proven violations. Exact evidence is never uncertain.

>>> from features.numeric_summary import NumericSummary
>>> s = NumericSummary(); s.update([61.0, 65.5, 70.0, 74.0, 80.0])
>>> r = ValueRange("room_temp", 60, 75, mostly=0.95).evaluate(s)
>>> r.verdict, r.observed, r.expected, r.failing
('fail', '80.0% in [60, 75]', '>= 95%', 1)
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Union

import numpy as np

from features.categorical_summary import CategoricalSummary
from features.numeric_summary import NumericSummary
from features.numeric_values import INVALID, classify

Verdict = Literal["pass", "fail", "uncertain"]
TypeName = Literal["number", "integer", "string", "boolean"]
MAX_EXAMPLES = 5


@dataclass(frozen=True)
class ExpectationResult:
    """The outcome of one expectation on one column (module docstring for the verdicts).

    `checked` values were subject to the expectation; between `failing_bounds` of them
    failed (99% confidence when from a KLL sketch, else guaranteed), `failing` estimated.

    >>> r = ExpectationResult("x not null", "x", "pass", "100.0% not null", ">= 90%", 0, (0, 0), 3)
    >>> r.passed, r.describe()
    (True, 'x not null: 100.0% not null, expected >= 90% (pass)')
    """

    expectation: str
    column: str
    verdict: Verdict
    observed: str
    expected: str
    failing: int
    failing_bounds: tuple[int, int]
    checked: int
    examples: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        """True only when compliance is proven (verdict "pass")."""
        return self.verdict == "pass"

    @property
    def failed(self) -> bool:
        """True only when the violation is proven (verdict "fail")."""
        return self.verdict == "fail"

    def describe(self) -> str:
        """One line: expectation, observed, expected, verdict, and examples if any."""
        text = f"{self.expectation}: {self.observed}, expected {self.expected} ({self.verdict})"
        return text + (f"; e.g. {', '.join(self.examples)}" if self.examples else "")


def _check_mostly(mostly: float) -> None:
    if not 0.0 <= mostly <= 1.0:
        raise ValueError(f"mostly is a fraction in [0, 1], got {mostly!r}; 0.95 means 95%")


def _percent(fraction: float, mostly: float) -> str:
    text = f"{100 * fraction:.1f}%"
    # Never print a miss as the threshold itself ("95.0%, expected >= 95%").
    if fraction < mostly and text == f"{100 * mostly:.1f}%":
        text = f"{100 * fraction:.3f}%"
    return text


def _result(spec: Any, text: str, checked: int, failing: float,
            failing_lo: float, failing_hi: float, observed: str,
            examples: Iterable[str] = ()) -> ExpectationResult:
    """Verdict from the failing-count bounds; the passing share is 1 - failing / checked."""
    lo, hi = math.floor(max(0.0, failing_lo)), math.ceil(min(checked, failing_hi))
    estimate = min(max(round(failing), lo), hi)
    if checked == 0:
        verdict: Verdict = "pass"  # nothing to check: vacuously met, as in Great Expectations
    elif checked - hi >= spec.mostly * checked:
        verdict = "pass"
    elif checked - lo < spec.mostly * checked:
        verdict = "fail"
    else:
        verdict = "uncertain"
    return ExpectationResult(f"{spec.column}: {text}", spec.column, verdict, observed,
                             f">= {100 * spec.mostly:g}%", estimate, (lo, hi), checked,
                             tuple(examples)[:MAX_EXAMPLES])


@dataclass(frozen=True)
class _Spec:
    """What every expectation has: its column; each subclass declares `mostly` after its
    own fields, so that they come first positionally (ValueRange("t", 60, 75, 0.95))."""

    column: str


def _interval(lo: float | None, hi: float | None) -> str:
    left = "(-inf" if lo is None else f"[{lo:g}"
    right = "+inf)" if hi is None else f"{hi:g}]"
    return f"{left}, {right}"


@dataclass(frozen=True)
class ValueRange(_Spec):
    """Numbers in [min, max] (either side may be None: unbounded) for a `mostly` share.

    >>> from features.numeric_summary import NumericSummary
    >>> s = NumericSummary(); s.update(np.arange(60.0, 76.0))
    >>> ValueRange("t", 60, 75).evaluate(s).verdict
    'pass'
    """

    min: float | None = None
    max: float | None = None
    mostly: float = 1.0

    def __post_init__(self) -> None:
        _check_mostly(self.mostly)
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
        observed = (f"{_percent(share, self.mostly)} in {interval}" if checked
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
        return _result(self, text, checked, checked - inside, checked - inside - slack,
                       checked - inside + slack, observed, examples)


@dataclass(frozen=True)
class InSet(_Spec):
    """Categories in `allowed` (compared as strings, as the summary stores them).

    >>> from features.categorical_summary import CategoricalSummary
    >>> s = CategoricalSummary(); s.update(["card", "cash", "card", "btc"])
    >>> r = InSet("payment", frozenset({"card", "cash"}), mostly=0.9).evaluate(s)
    >>> r.verdict, r.observed, r.examples
    ('fail', '75.0% in the allowed set', ("'btc' (1)",))
    """

    allowed: frozenset[str] = frozenset()
    mostly: float = 1.0

    def __post_init__(self) -> None:
        _check_mostly(self.mostly)
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
        observed = (f"{_percent(1 - failing / checked, self.mostly)} in the allowed set"
                    if checked else "no values to check")
        if s.other:
            observed += f" (estimated: {s.other} values past the {s.cap}-category cap)"
        examples = [f"{name!r} ({n})" for n, name in outside]
        return _result(self, text, checked, failing, known + s.other - allowed_max,
                       known + s.other, observed, examples)


@dataclass(frozen=True)
class NotNull(_Spec):
    """Values present and not null (None, NaN, or a missing field) for a `mostly` share.

    >>> from features.categorical_summary import CategoricalSummary
    >>> s = CategoricalSummary(); s.update(["a", None, "b", "c"])
    >>> NotNull("c", mostly=0.7).evaluate(s).observed
    '75.0% not null (1 null of 4)'
    """

    mostly: float = 1.0

    def __post_init__(self) -> None:
        _check_mostly(self.mostly)

    def evaluate(self, summary: NumericSummary | CategoricalSummary) -> ExpectationResult:
        """Exact from the summary's null count."""
        s = summary
        non_null = s.count + (s.infinite + s.invalid if isinstance(s, NumericSummary) else 0)
        checked = non_null + s.nulls
        observed = (f"{_percent(non_null / checked, self.mostly)} not null ({s.nulls} "
                    f"null{'' if s.nulls == 1 else 's'} of {checked})" if checked
                    else "no values to check")
        return _result(self, f"not null", checked, s.nulls,
                       s.nulls, s.nulls, observed)


@dataclass(frozen=True)
class NumericType(_Spec):
    """Non-null values of a numeric column are numbers (not strings, booleans, ...).

    >>> from features.numeric_summary import NumericSummary
    >>> s = NumericSummary(); s.update([1.0, "7", 3, None])
    >>> NumericType("x").evaluate(s).observed
    '66.7% numbers (1 not a number)'
    """

    mostly: float = 1.0

    def __post_init__(self) -> None:
        _check_mostly(self.mostly)

    def evaluate(self, summary: NumericSummary) -> ExpectationResult:
        """Exact from the summary's invalid count."""
        s = summary
        checked = s.count + s.infinite + s.invalid
        observed = (f"{_percent(1 - s.invalid / checked, self.mostly)} numbers ({s.invalid} "
                    f"not a number)" if checked else "no values to check")
        return _result(self, f"numbers", checked, s.invalid,
                       s.invalid, s.invalid, observed)


# ---- value-by-value expectations -----------------------------------------------------


@dataclass(frozen=True)
class Matches(_Spec):
    """String values matching a regular expression (`re.search`) for a `mostly` share.

    >>> c = Matches("plate", r"^[A-Z]{2}-\\d{3}$").checker()
    >>> c.update(["AB-123", "ab-123", None, 42]); r = c.result()
    >>> r.observed, r.examples
    ('33.3% match ^[A-Z]{2}-\\\\d{3}$', ("'ab-123'", '42'))
    """

    pattern: str = ""
    mostly: float = 1.0
    compiled: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_mostly(self.mostly)
        try:
            object.__setattr__(self, "compiled", re.compile(self.pattern))
        except re.error as err:
            raise ValueError(f"Matches on {self.column!r}: pattern {self.pattern!r} is not a "
                             f"regular expression ({err})") from err

    def accepts(self, value: object) -> bool:
        """True for a string the pattern is found in."""
        return isinstance(value, str) and self.compiled.search(value) is not None

    def describe(self) -> str:
        return f"values match {self.pattern}"

    def observed_word(self) -> str:
        return f"match {self.pattern}"

    def checker(self) -> ValueCheck:
        """An empty evaluator to feed values into."""
        return ValueCheck(self)


def _is_boolean(value: object) -> bool:
    return isinstance(value, (bool, np.bool_))


_TYPE_CHECKS = {
    "number": lambda v: classify(v) is not INVALID,
    "integer": lambda v: isinstance(v, (int, np.integer)) and not _is_boolean(v),
    "string": lambda v: isinstance(v, str),
    "boolean": _is_boolean,
}


@dataclass(frozen=True)
class HasType(_Spec):
    """Non-null values of one type: "number" (int, float, numpy number; not bool),
    "integer", "string" or "boolean".

    >>> c = HasType("n", "integer").checker(); c.update([1, 2, 3.5, True])
    >>> c.result().observed
    '50.0% integer'
    """

    type_name: TypeName = "number"
    mostly: float = 1.0

    def __post_init__(self) -> None:
        _check_mostly(self.mostly)
        if self.type_name not in _TYPE_CHECKS:
            raise ValueError(f"HasType on {self.column!r}: type_name must be one of "
                             f"{sorted(_TYPE_CHECKS)}, got {self.type_name!r}")

    def accepts(self, value: object) -> bool:
        """True for a value of the type."""
        return bool(_TYPE_CHECKS[self.type_name](value))

    def describe(self) -> str:
        return f"values of type {self.type_name}"

    def observed_word(self) -> str:
        return self.type_name

    def checker(self) -> ValueCheck:
        """An empty evaluator to feed values into."""
        return ValueCheck(self)


ValueSpec = Union[Matches, HasType]


def _is_null(value: object) -> bool:
    return value is None or (isinstance(value, (float, np.floating)) and math.isnan(value))


class ValueCheck:
    """Counts values that pass or fail a per-value expectation; mergeable, picklable.

    Nulls are counted apart and not checked. Keeps the first `MAX_EXAMPLES` failing values
    (as repr) in arrival order; `merge(a, b)` keeps a's then b's, so counts merge exactly
    (associative, commutative) and examples associatively.

    >>> a = HasType("x", "string").checker(); a.update(["a", 1])
    >>> b = HasType("x", "string").checker(); b.add("b")
    >>> m = merge_checks(a, b); m.checked, m.failed, m.examples
    (3, 1, ['1'])
    """

    __slots__ = ("spec", "checked", "failed", "nulls", "examples")

    def __init__(self, spec: ValueSpec) -> None:
        self.spec = spec
        self.checked = 0
        self.failed = 0
        self.nulls = 0
        self.examples: list[str] = []

    def add(self, value: object) -> None:
        """Check one value."""
        if _is_null(value):
            self.nulls += 1
            return
        self.checked += 1
        if not self.spec.accepts(value):
            self.failed += 1
            if len(self.examples) < MAX_EXAMPLES:
                self.examples.append(repr(value)[:80])

    def update(self, values: Iterable[object]) -> None:
        """Check a batch of values."""
        for value in values:
            self.add(value)

    def result(self) -> ExpectationResult:
        """The expectation's outcome over every value fed so far (exact)."""
        spec, n = self.spec, self.checked
        observed = (f"{_percent(1 - self.failed / n, spec.mostly)} {spec.observed_word()}"
                    if n else "no values to check")
        return _result(spec, spec.describe(), n, self.failed, self.failed, self.failed,
                       observed, self.examples)

    def __repr__(self) -> str:
        return f"ValueCheck({self.spec!r}, checked={self.checked}, failed={self.failed})"


def merge_checks(a: ValueCheck, b: ValueCheck) -> ValueCheck:
    """A new check over both inputs' values (inputs untouched)."""
    if a.spec != b.spec:
        raise ValueError(f"cannot merge checks of different expectations: {a.spec} and {b.spec}")
    out = ValueCheck(a.spec)
    out.checked, out.failed = a.checked + b.checked, a.failed + b.failed
    out.nulls = a.nulls + b.nulls
    out.examples = (a.examples + b.examples)[:MAX_EXAMPLES]
    return out


# ---- on a window ---------------------------------------------------------------------

SummarySpec = Union[ValueRange, InSet, NotNull, NumericType]
_NEEDS: dict[type, tuple[type, ...]] = {
    ValueRange: (NumericSummary,), InSet: (CategoricalSummary,),
    NotNull: (NumericSummary, CategoricalSummary), NumericType: (NumericSummary,)}


def evaluate(spec: SummarySpec, columns: Mapping[str, NumericSummary | CategoricalSummary]
             ) -> ExpectationResult:
    """Evaluate a summary expectation on its column of a window (`WindowSummary.columns`).

    >>> from features.window_summary import summarize_events
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

