"""Alert policy cases: Benjamini-Hochberg, consecutive windows, cooldown, severity."""

from __future__ import annotations

import pickle

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from features.drift.alert_policy import AlertPolicy, PolicyState, benjamini_hochberg
from features.drift.result import TestResult

MIN = 60_000


@given(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=40), st.floats(0.001, 0.2))
def test_bh_rejects_exactly_the_step_up_set(p_values: list[float], q: float) -> None:
    adjusted = benjamini_hochberg(p_values)
    m = len(p_values)
    ordered = sorted(p_values)
    k = max((i + 1 for i, p in enumerate(ordered) if p <= q * (i + 1) / m), default=0)
    cut = ordered[k - 1] if k else -1.0
    assert {i for i, a in enumerate(adjusted) if a <= q} == {i for i, p in enumerate(p_values) if p <= cut}
    assert all(a >= p for a, p in zip(adjusted, p_values))


def test_bh_keeps_false_discoveries_rare_under_the_null() -> None:
    rng = np.random.default_rng(1)
    windows_with_any = sum(min(benjamini_hochberg(rng.uniform(size=30))) <= 0.01 for _ in range(2000))
    assert windows_with_any <= 40  # <= q = 1% of windows, with slack for chance


def r(column: str, p: float | None, effect: float, test: str = "mean") -> TestResult:
    return TestResult(test, 0.0, p, effect, column=column)


def test_bh_across_columns_decides_significance() -> None:
    policy = AlertPolicy(consecutive=1)
    # 0.004 alone is significant at q = 0.01; among 10 tests with nothing else, it is not.
    alone = PolicyState().decide(policy, [r("a", 0.004, 0.3)], "covariate", MIN, MIN)
    crowd = PolicyState().decide(policy, [r("a", 0.004, 0.3)] + [r(f"c{i}", 0.5, 0.0) for i in range(9)],
                                 "covariate", MIN, MIN)
    assert [a.result.column for a in alone] == ["a"] and crowd == []
    assert alone[0].adjusted_p == 0.004


def test_consecutive_windows_unless_the_evidence_is_overwhelming() -> None:
    policy = AlertPolicy(consecutive=2, immediate_p=1e-6)
    state = PolicyState()
    flagged = [r("a", 1e-4, 0.3)]
    assert state.decide(policy, flagged, "covariate", MIN, 1 * MIN) == []
    assert state.decide(policy, [r("a", 0.5, 0.0)], "covariate", MIN, 2 * MIN) == []  # streak broken
    assert state.decide(policy, flagged, "covariate", MIN, 3 * MIN) == []
    alerts = state.decide(policy, flagged, "covariate", MIN, 4 * MIN)
    assert [(a.result.column, a.streak) for a in alerts] == [("a", 2)]
    fresh = PolicyState().decide(policy, [r("b", 1e-9, 0.3)], "covariate", MIN, MIN)
    assert [(a.result.column, a.streak) for a in fresh] == [("b", 1)]
    # Streaks are per scale: a flagged 5m window does not extend the 1m streak.
    other = PolicyState()
    other.decide(policy, flagged, "covariate", MIN, MIN)
    assert other.decide(policy, flagged, "covariate", 5 * MIN, 5 * MIN) == []


def test_cooldown_per_column_and_kind_across_scales() -> None:
    policy = AlertPolicy(consecutive=1, cooldown_ms=10 * MIN)
    state = PolicyState()
    strong = [r("a", 1e-9, 0.3), r("b", 1e-9, 0.3)]
    assert len(state.decide(policy, strong, "covariate", MIN, MIN)) == 2
    assert state.decide(policy, strong, "covariate", 5 * MIN, 5 * MIN) == []
    # Another kind of drift on the same column is not silenced by the covariate alert.
    schema = state.decide(policy, [TestResult("new_category", 0.2, None, 0.2, column="a")],
                          "covariate", MIN, 6 * MIN)
    assert [(a.kind, a.severity) for a in schema] == [("schema", "critical")]
    assert len(state.decide(policy, strong, "covariate", MIN, 11 * MIN)) == 2


def test_severity_min_severity_and_the_strongest_test_per_column() -> None:
    policy = AlertPolicy(consecutive=1)
    state = PolicyState()
    tiny = [r("a", 1e-12, 0.02)]  # significant but below the mean threshold (0.1): info
    assert state.decide(policy, tiny, "covariate", MIN, MIN) == []
    assert PolicyState().decide(AlertPolicy(consecutive=1, min_severity="info"), tiny, "covariate",
                                MIN, MIN)[0].severity == "info"
    several = [r("a", 1e-8, 0.15, "ks"), r("a", 1e-12, 0.6, "mean"), r("a", None, 0.3, "wasserstein")]
    alerts = PolicyState().decide(policy, several, "prediction", MIN, MIN)
    assert [(a.result.test, a.severity, a.kind) for a in alerts] == [("mean", "critical", "prediction")]
    # Without a p-value, a test needs its threshold; below it, nothing.
    assert PolicyState().decide(policy, [r("a", None, 0.2, "wasserstein")], "covariate", MIN, MIN) == []


def test_state_pickles_and_continues_identically() -> None:
    policy = AlertPolicy()
    state = PolicyState()
    state.decide(policy, [r("a", 1e-4, 0.3)], "covariate", MIN, MIN)
    copy = pickle.loads(pickle.dumps(state))
    nxt = [r("a", 1e-4, 0.3)]
    assert state.decide(policy, nxt, "covariate", MIN, 2 * MIN) == copy.decide(policy, nxt, "covariate", MIN, 2 * MIN)
