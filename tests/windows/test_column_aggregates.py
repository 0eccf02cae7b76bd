"""The grouped numpy helpers of the pane aggregates equal their per-event definitions exactly."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from features.windows.panes import _welford, run_ends, run_heads


def _welford_per_event(values: list[float], k: int, mean: float, m2: float) -> tuple[float, float]:
    for x in values:
        k += 1
        d = x - mean
        mean += d / k
        m2 += d * (x - mean)
    return mean, m2


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 12), st.floats(-1e6, 1e6, allow_nan=False)), max_size=200),
       st.integers(0, 2**32))
def test_welford_equals_the_per_event_update(events, seed):
    """Bit for bit, whatever the runs' lengths (lockstep for many runs, the loop for a few long ones)."""
    rng = np.random.default_rng(seed)
    events = sorted(events, key=lambda e: e[0])  # sorted by slot, arrival order within a slot
    slots = np.array([s for s, _ in events], np.int64)
    v = np.array([x for _, x in events], np.float64)
    n = rng.integers(0, 5, 13)
    mean, m2 = rng.normal(0, 10, 13), rng.uniform(0, 100, 13)
    expected = {s: _welford_per_event([x for t, x in events if t == s], int(n[s]), float(mean[s]), float(m2[s]))
                for s in set(slots.tolist())}
    heads = run_heads(slots)
    _welford(mean, m2, slots[heads], n[slots[heads]], heads, run_ends(heads, len(slots)) - heads, v)
    for s, (m, q) in expected.items():
        assert (mean[s], m2[s]) == (m, q)

