"""The alert policy: which test results become drift alerts. Few, meaningful alerts.

For the results of one monitor at one scale in one window:

1. **False discovery control**: the p-values of all column tests of the window are
   adjusted together with Benjamini-Hochberg (the multivariate test is its own family). A
   p-valued result is *significant* when its adjusted p-value is <= `fdr`; a test without a
   p-value (Wasserstein) when its effect size reaches its threshold.
2. **Severity** from the effect size: `critical` at or above the test's `critical` level,
   `warning` at or above its threshold, else `info`. Results below `min_severity` are
   ignored, so a tiny but significant shift in a huge window does not page anyone.
3. **Persistence**: a column (per kind of drift) must be flagged in `consecutive` windows
   of the scale in a row, unless the evidence is overwhelming (adjusted p <= `immediate_p`,
   or a critical effect for a test without p-value): then one window suffices.
4. **Cooldown**: after an alert, the same column and kind stays quiet for `cooldown_ms` of
   event time, at every scale.

Per column and kind the alert reports the strongest flagged test (severity, then adjusted
p-value, then effect relative to threshold).

Why these defaults: under no drift, BH at q = 0.01 flags some column in at most ~1% of
windows, two windows in a row ~1e-4, and adjusted p <= 1e-6 almost never, which keeps false
alarms far below 1 per 1,000 windows, while a 0.25-standard-deviation mean shift in a
1,000-event window has p ~ 1e-13 (Welch z ~ 7.5) and alerts in its first full window.

>>> from features.drift.result import TestResult
>>> policy, state = AlertPolicy(), PolicyState()
>>> shifted = [TestResult("mean", 7.5, 1e-13, 0.25, column="price"),
...            TestResult("mean", 0.3, 0.76, 0.01, column="eta")]
>>> [(a.result.column, a.severity) for a in state.decide(policy, shifted, "covariate", 60_000, 60_000)]
[('price', 'warning')]
>>> state.decide(policy, shifted, "covariate", 60_000, 120_000)   # cooling down
[]
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from features.drift.result import SCHEMA_TESTS, TestResult

SEVERITIES = ("info", "warning", "critical")

# Effect sizes (see each test's docstring for its unit) at which a result is a warning...
DEFAULT_THRESHOLDS: dict[str, float] = {
    "ks": 0.05, "mean": 0.1, "std": 0.1, "null_rate": 0.01, "psi": 0.1, "js": 0.1,
    "wasserstein": 0.25, "chi2": 0.05, "new_category": 0.005, "vanished_category": 0.005,
    "mmd": 0.1, "missing": 0.5,
}
# ... and critical.
DEFAULT_CRITICAL: dict[str, float] = {
    "ks": 0.2, "mean": 0.5, "std": 0.4, "null_rate": 0.1, "psi": 0.25, "js": 0.3,
    "wasserstein": 1.0, "chi2": 0.2, "new_category": 0.05, "vanished_category": 0.05,
    "mmd": 0.5, "missing": 0.9,
}
# Expectations (features.monitors.expectation_checks): the effect size is the share of failing values
# proven beyond what `mostly` allows; any proven excess is a warning, 10 points a critical.
EXPECTATION_TESTS = ("range", "in", "regex", "not_null", "type", "compare")
DEFAULT_THRESHOLDS.update(dict.fromkeys(EXPECTATION_TESTS, 1e-9))
DEFAULT_CRITICAL.update(dict.fromkeys(EXPECTATION_TESTS, 0.1))


@dataclass(frozen=True)
class AlertPolicy:
    """The policy's parameters (module docstring); thresholds per test name.

    >>> AlertPolicy().threshold("psi"), AlertPolicy(thresholds={"psi": 0.2}).threshold("psi")
    (0.1, 0.2)
    """

    fdr: float = 0.01
    consecutive: int = 2
    immediate_p: float = 1e-6
    cooldown_ms: int = 3_600_000
    min_severity: str = "warning"
    thresholds: Mapping[str, float] = field(default_factory=dict)
    critical: Mapping[str, float] = field(default_factory=dict)

    def threshold(self, test: str) -> float:
        """The effect size at which `test` is a warning."""
        return self.thresholds.get(test, DEFAULT_THRESHOLDS.get(test, 0.0))

    def critical_level(self, test: str) -> float:
        """The effect size at which `test` is critical."""
        return self.critical.get(test, DEFAULT_CRITICAL.get(test, math.inf))

    def severity(self, result: TestResult) -> str:
        """info, warning or critical from the size of the effect.

        >>> AlertPolicy().severity(TestResult("mean", -9.0, 0.0, -0.6))
        'critical'
        """
        effect = abs(result.effect_size) if result.effect_size is not None else 0.0
        if effect >= self.critical_level(result.test):
            return "critical"
        return "warning" if effect >= self.threshold(result.test) else "info"


def benjamini_hochberg(p_values: Sequence[float]) -> list[float]:
    """Benjamini-Hochberg adjusted p-values (step-up; reject where adjusted <= q).

    >>> [round(p, 6) for p in benjamini_hochberg([0.01, 0.03, 0.02, 0.5])]
    [0.04, 0.04, 0.04, 0.5]
    """
    p = np.asarray(p_values, dtype=float)
    m = len(p)
    if m == 0:
        return []
    order = np.argsort(p, kind="stable")
    scaled = p[order] * (m / np.arange(1, m + 1))
    adjusted = np.minimum.accumulate(scaled[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(adjusted, 1.0)
    return [float(x) for x in out]


def drift_kind(test: str, monitor_kind: str) -> str:
    """The `kind` of a drift event: value-set changes are `schema`, the joint test is
    `multivariate`, everything else the monitor's kind (covariate, prediction, label).

    >>> drift_kind("new_category", "covariate"), drift_kind("ks", "prediction")
    ('schema', 'prediction')
    """
    if test in SCHEMA_TESTS:
        return "schema"
    return "multivariate" if test == "mmd" else monitor_kind


@dataclass(frozen=True)
class Alert:
    """A result the policy lets through, with what decided it."""

    result: TestResult
    kind: str
    adjusted_p: float | None
    threshold: float
    severity: str
    streak: int


class PolicyState:
    """What the policy remembers between windows: flagged streaks per (scale, column,
    kind) and quiet-until times per (column, kind). Plain dicts: it pickles into snapshots.
    """

    def __init__(self) -> None:
        self.streaks: dict[tuple[int, str, str], int] = {}
        self.quiet_until: dict[tuple[str, str], int] = {}

    def decide(self, policy: AlertPolicy, results: Sequence[TestResult], monitor_kind: str,
               scale_ms: int, end_ms: int) -> list[Alert]:
        """The alerts for the results of one window [end_ms - scale_ms, end_ms) at one scale.

        Call it for every tested window of a scale, in time order: a column tested and not
        flagged resets its streak.
        """
        adjusted = _adjust(results)
        floor = SEVERITIES.index(policy.min_severity)
        best: dict[tuple[str, str], Alert] = {}
        tested: set[tuple[str, str]] = set()
        for result, adj in zip(results, adjusted):
            key = (result.column, drift_kind(result.test, monitor_kind))
            tested.add(key)
            threshold = policy.threshold(result.test)
            effect = abs(result.effect_size) if result.effect_size is not None else 0.0
            significant = adj <= policy.fdr if adj is not None else effect >= threshold
            severity = policy.severity(result)
            if not significant or SEVERITIES.index(severity) < floor:
                continue
            alert = Alert(result, key[1], adj, threshold, severity, 0)
            if key not in best or _rank(alert) > _rank(best[key]):
                best[key] = alert
        alerts = []
        for key in sorted(tested):
            streak_key = (scale_ms, *key)
            if key not in best:
                self.streaks[streak_key] = 0
                continue
            streak = self.streaks.get(streak_key, 0) + 1
            self.streaks[streak_key] = streak
            alert = best[key]
            immediate = (alert.adjusted_p <= policy.immediate_p if alert.adjusted_p is not None
                         else alert.severity == "critical")
            if (streak >= policy.consecutive or immediate) and end_ms >= self.quiet_until.get(key, end_ms):
                self.quiet_until[key] = end_ms + policy.cooldown_ms
                alerts.append(Alert(alert.result, alert.kind, alert.adjusted_p, alert.threshold,
                                    alert.severity, streak))
        return alerts


def _adjust(results: Sequence[TestResult]) -> list[float | None]:
    # Two families: the column tests, and the multivariate test.
    adjusted: list[float | None] = [None] * len(results)
    for family in (False, True):
        idx = [i for i, r in enumerate(results) if r.p_value is not None and (r.test == "mmd") == family]
        for i, adj in zip(idx, benjamini_hochberg([results[i].p_value for i in idx])):  # type: ignore[misc]
            adjusted[i] = adj
    return adjusted


def _rank(alert: Alert) -> tuple[int, float, float]:
    p = alert.adjusted_p if alert.adjusted_p is not None else 1.0
    effect = abs(alert.result.effect_size or 0.0)
    relative = effect / alert.threshold if alert.threshold > 0 else effect
    return (SEVERITIES.index(alert.severity), -math.log10(p) if p > 0 else math.inf, relative)
