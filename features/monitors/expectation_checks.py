"""A monitor's expectations, checked on every closed base window, and its schema versions.

For each base window (its merged summaries and `WindowChecks`):

1. **Expectations**: those answerable from the summaries are evaluated on them
   (`features.expectations.column_checks.evaluate`, sketch error accounted for); the per-event ones
   (`regex`, `type` on a non-numeric column, `compare`) come from the merged checks. A
   result counts as *flagged* only on the verdict "fail" (the violation is proven, beyond
   the sketch's bound for a range on a sketch); "pass" and "uncertain" reset the streak.
   Flagged results go through the monitor's alert policy (`features.drift.alert_policy`: effect
   size = the share of failing values proven beyond what `mostly` allows; consecutive
   windows, immediate when critical, cooldown, min severity), each expectation with its
   own policy state, and become drift events of kind `expectation`.
2. **Schema versions**: a window holding a schema version the previous base window did not
   have (the first window is compared with the config's `[schema] version`) is reported as
   one event (kind `schema`, test `schema_version`), and the alerts of that window are held
   back: the expectation alerts here, and the drift alerts of the scale windows it closes
   (`hold_back`). Held back means not published and no cooldown started; the policy's
   streaks still count the window, so a violation that persists under the new version
   alerts in the next window.

>>> from features.expectations.config import Expectation
>>> from features.expectations.column_checks import ValueRange
>>> from features.monitors.config import Monitor, ReferenceSpec
>>> from features.summaries.window import summarize_columns
>>> m = Monitor("inputs", ("km",), (), 60_000, (60_000,), ReferenceSpec("first_windows"),
...             expectations=(Expectation("range", ValueRange("km", 0, 100, 0.95), False),))
>>> guard = ExpectationMonitor(m)
>>> w = summarize_columns(0, 60_000, {"km": [5.0] * 50 + [5000.0] * 50}, ["km"], [])
>>> [(e.kind, e.test, e.severity, e.detail) for e in guard.check(w, None).events]   # critical: no need to persist
[('expectation', 'range', 'critical', 'km: 50.0% in [0, 100], expected >= 95%; 50 failing of 100; e.g. max 5000')]
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from features.drift.alert_policy import PolicyState
from features.drift.categorical import summary_stats as categorical_stats
from features.monitors.events import DriftEvent
from features.drift.result import TestResult
from features.expectations.config import Expectation
from features.expectations.results import ExpectationResult
from features.expectations.column_checks import evaluate
from features.monitors.config import Monitor
from features.drift.numeric import summary_stats as numeric_stats
from features.summaries.numeric import NumericSummary
from features.expectations.window_checks import WindowChecks
from features.summaries.window import WindowSummary

VERSION_COLUMN = "schema_version"  # the column of schema-version events without a version_field


@dataclass(frozen=True)
class WindowCheck:
    """What one base window gave: every expectation's result, the alerts the policy let
    through, and the schema-version event (then `held` is true)."""

    results: tuple[ExpectationResult, ...]
    events: tuple[DriftEvent, ...]
    schema_event: DriftEvent | None

    @property
    def held(self) -> bool:
        """True when the window changed schema version: its alerts are held back."""
        return self.schema_event is not None


def excess(result: ExpectationResult, mostly: float) -> float:
    """The share of failing values proven beyond what `mostly` allows (0 unless "fail").

    >>> from features.expectations.results import ExpectationResult
    >>> r = ExpectationResult("x", "x", "fail", "", "", 12, (10, 14), 100)
    >>> round(excess(r, 0.95), 3)
    0.05
    """
    if not result.failed:
        return 0.0
    # verdict "fail" means lo / checked > 1 - mostly; keep it above the default threshold
    return max(result.failing_bounds[0] / result.checked - (1.0 - mostly), 1e-9)


class ExpectationMonitor:
    """One monitor's expectations and schema-version tracking (module docstring); plain
    state, it pickles into snapshots."""

    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor
        self.states: dict[tuple[str, str], PolicyState] = {}
        self.versions: dict[str, int] = {str(monitor.schema_version): 0}  # the previous window's

    def check(self, window: WindowSummary, checks: WindowChecks | None) -> WindowCheck:
        """Evaluate the window's expectations and schema versions (windows in time order)."""
        m = self.monitor
        schema_event = self._version_change(window, checks)
        per_event = iter(checks.checks if checks is not None else ())
        results, events = [], []
        for expectation in m.expectations:
            result = next(per_event).result() if expectation.per_event else evaluate(
                expectation.spec, window.columns)  # type: ignore[arg-type]
            results.append(result)
            state = self.states.setdefault((expectation.column, expectation.test), PolicyState())
            quiet = dict(state.quiet_until)
            flagged = TestResult(expectation.test, _share(result), None, excess(result, expectation.spec.mostly),
                                 column=expectation.column)
            for alert in state.decide(m.policy, [flagged], "expectation", m.window_ms, window.end_ms):
                events.append(self._event(expectation, result, window, alert.severity))
            if schema_event is not None:
                state.quiet_until = quiet  # held back: no cooldown starts
        return WindowCheck(tuple(results), () if schema_event else tuple(events), schema_event)

    def _version_change(self, window: WindowSummary, checks: WindowChecks | None) -> DriftEvent | None:
        if checks is None or not checks.versions:
            return None
        before, now = self.versions, checks.versions
        self.versions = dict(now)
        new = sorted(set(now) - set(before))
        if not new:
            return None
        total = sum(now.values())
        share = sum(now[v] for v in new) / total
        m = self.monitor
        column = m.version_field or VERSION_COLUMN
        detail = (f"{column}: version {', '.join(new)} appeared ({100 * share:.1f}% of {total} events; the "
                  f"previous window had {', '.join(sorted(before))}); expectation and drift alerts of this "
                  "window are held back")
        return DriftEvent(m.name, column, "schema", "schema_version", share, None, share, None, m.window_ms,
                          window.start_ms, window.end_ms, (window.start_ms, window.end_ms),
                          _shares(before), _shares(now), "warning", detail, runbook=m.runbook)

    def _event(self, expectation: Expectation, result: ExpectationResult, window: WindowSummary,
               severity: str) -> DriftEvent:
        m = self.monitor
        summary = window.columns.get(expectation.column)
        if expectation.per_event or summary is None:
            current: dict[str, Any] = {"count": result.checked}
        else:
            current = numeric_stats(summary) if isinstance(summary, NumericSummary) else categorical_stats(summary)
        detail = (f"{expectation.column}: {result.observed}, expected {result.expected}; "
                  f"{result.failing} failing of {result.checked}")
        if result.examples:
            detail += f"; e.g. {', '.join(result.examples)}"
        return DriftEvent(m.name, expectation.column, "expectation", expectation.test, _share(result), None,
                          excess(result, expectation.spec.mostly), expectation.spec.mostly, m.window_ms,
                          window.start_ms, window.end_ms, None, {"count": 0}, current, severity, detail,
                          failing=result.failing, checked=result.checked, examples=result.examples,
                          runbook=m.runbook)


def _share(result: ExpectationResult) -> float:
    """The estimated share of checked values that comply (1.0 with nothing to check)."""
    return 1.0 - result.failing / result.checked if result.checked else 1.0


def _shares(versions: Mapping[str, int]) -> dict[str, Any]:
    total = sum(versions.values())
    return {"count": total, "categories": {v: (n / total if total else 0.0) for v, n in sorted(versions.items())}}


def hold_back(quiet_until: dict[tuple[str, str], int], state: PolicyState) -> None:
    """Undo the cooldowns a window's drift alerts started (`PolicyState.quiet_until`, as it
    was before the window), when the window's alerts are held back."""
    state.quiet_until = dict(quiet_until)
