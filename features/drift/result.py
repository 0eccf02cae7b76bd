"""The outcome of one drift test on one column: statistic, p-value, effect size.

Every test in `features.drift.numeric`, `features.drift.categorical` and `features.drift.mmd`
returns a `TestResult`. The p-value is None for tests without one (Wasserstein); the effect
size is the quantity the alert policy's thresholds and severities apply to (for instance
the mean shift in reference standard deviations), so a tiny but significant difference in a
huge window can be told apart from a large one.

>>> r = TestResult("mean", statistic=7.9, p_value=2.8e-15, effect_size=0.25)
>>> r.with_column("price").column, round(r.strength, 2)
('price', 14.55)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

# Findings that are a change of the column's value set rather than of its distribution
# ("missing": a column with values in the reference has none in the window).
SCHEMA_TESTS = frozenset({"new_category", "vanished_category", "missing"})


@dataclass(frozen=True)
class TestResult:
    """One test of one column (or of a monitor's columns jointly, for `mmd`).

    `note` is a short human-readable addition (e.g. the new categories and their shares).

    >>> TestResult("ks", 0.12, 0.003, 0.09, note="D within 0.027").note
    'D within 0.027'
    """

    __test__ = False  # not a pytest test class, despite the name

    test: str
    statistic: float
    p_value: float | None
    effect_size: float | None
    column: str = ""
    note: str = ""

    def with_column(self, column: str) -> TestResult:
        """The same result, attributed to `column`."""
        return replace(self, column=column)

    @property
    def strength(self) -> float:
        """-log10 of the p-value (inf at p = 0; 0 without a p-value): for ordering results.

        >>> TestResult("x", 1.0, None, 0.5).strength
        0.0
        """
        if self.p_value is None:
            return 0.0
        return math.inf if self.p_value <= 0.0 else -math.log10(self.p_value)
