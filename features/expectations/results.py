"""The result of an expectation, and the verdict rule shared by every expectation.

Verdicts are three-valued and conservative both ways: "pass" when even the least favourable
end of the failing-count bounds meets `mostly`, "fail" when even the most favourable end
misses it, and "uncertain" when a sketch's error straddles the threshold. `passed` is true
only for "pass" and `failed` only for "fail": gate on `passed` to require proof of
compliance, alert on `failed` to alert only on proven violations. Exact evidence (equal
bounds) is never uncertain.

>>> from types import SimpleNamespace
>>> spec = SimpleNamespace(column="x", mostly=0.9)
>>> r = result_from_bounds(spec, "not null", 10, 1, 1, 1, "90.0% not null")
>>> r.verdict, r.expected
('pass', '>= 90%')
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

Verdict = Literal["pass", "fail", "uncertain"]

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


def check_mostly(mostly: float) -> None:
    """Refuse a `mostly` outside [0, 1] (95 for 95% is a common slip)."""
    if not 0.0 <= mostly <= 1.0:
        raise ValueError(f"mostly is a fraction in [0, 1], got {mostly!r}; 0.95 means 95%")


def percent(fraction: float, mostly: float) -> str:
    """A share as a percentage, never printed equal to a threshold it misses.

    >>> percent(0.9496, 0.95), percent(0.912, 0.95)
    ('94.960%', '91.2%')
    """
    text = f"{100 * fraction:.1f}%"
    # Never print a miss as the threshold itself ("95.0%, expected >= 95%").
    if fraction < mostly and text == f"{100 * mostly:.1f}%":
        text = f"{100 * fraction:.3f}%"
    return text


def required(mostly: float, checked: int) -> int:
    """How many of `checked` values must comply: mostly x checked rounded up, computed so that
    a decimal `mostly` is not betrayed by binary floating point (0.07 x 100 is
    7.000000000000001 in floats, which would demand 8 of 100).

    >>> required(0.07, 100), required(0.95, 101), required(1.0, 3)
    (7, 96, 3)
    """
    return math.ceil(round(mostly * checked, 6))


def result_from_bounds(spec: Any, text: str, checked: int, failing: float,
                       failing_lo: float, failing_hi: float, observed: str,
                       examples: Iterable[str] = ()) -> ExpectationResult:
    """The result of `spec` (anything with `column` and `mostly`) given `checked` values of
    which between failing_lo and failing_hi failed (`failing` estimated)."""
    lo, hi = math.floor(max(0.0, failing_lo)), math.ceil(min(checked, failing_hi))
    estimate = min(max(round(failing), lo), hi)
    need = required(spec.mostly, checked)
    if checked == 0:
        verdict: Verdict = "pass"  # nothing to check: vacuously met, as in Great Expectations
    elif checked - hi >= need:
        verdict = "pass"
    elif checked - lo < need:
        verdict = "fail"
    else:
        verdict = "uncertain"
    return ExpectationResult(f"{spec.column}: {text}", spec.column, verdict, observed,
                             f">= {100 * spec.mostly:g}%", estimate, (lo, hi), checked,
                             tuple(examples)[:MAX_EXAMPLES])


@dataclass(frozen=True)
class Spec:
    """What every expectation has: a column. Each subclass declares `mostly` (the share of
    checked values that must comply) after its own fields, so that those come first
    positionally: ValueRange("t", 60, 75, 0.95). (A field declared here would keep its
    place before them.)

    >>> Spec("x").column
    'x'
    """

    column: str
