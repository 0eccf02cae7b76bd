"""Seeded synthetic streams with known change points, for the drift quality benchmark.

A stream is a sequence of base windows of `events_per_window` events, each a dict of
columns: four numeric (`x0` normal, `x1` normal, `x2` normal with 2% nulls, `x3` lognormal)
and one categorical (`c0`, five categories). A scenario plants one change in one column at
window `change_at` (abrupt, or a ramp), or none (the controls). The reference is
`reference_windows` windows drawn from the same process before the stream starts (for the
seasonal control: the stream's own previous day, see `Scenario.period`).

>>> s = SCENARIOS["mean_0.25"]
>>> w = window_columns(s, seed=1, index=s.change_at, events=1000)
>>> sorted(w), len(w["x0"]), round(float(np.nanmean(w["x0"])), 1)
(['c0', 'x0', 'x1', 'x2', 'x3'], 1000, 0.2)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

NUMERIC = ("x0", "x1", "x2", "x3")
CATEGORICAL = ("c0",)
CATEGORIES = ("a", "b", "c", "d", "e")
BASE_SHARES = np.array([0.40, 0.25, 0.15, 0.12, 0.08])


@dataclass(frozen=True)
class Scenario:
    """One kind of stream. `change` names the planted change (None for a control)."""

    name: str
    windows: int
    change: str | None = None
    column: str | None = None
    change_at: int = 20
    size: float = 0.0
    ramp: int = 0  # windows over which a gradual change reaches `size`
    period: int = 0  # > 0: seasonal, one cycle every `period` windows

    @property
    def is_control(self) -> bool:
        return self.change is None

    @property
    def abrupt(self) -> bool:
        return self.change is not None and self.ramp == 0


SCENARIOS: dict[str, Scenario] = {s.name: s for s in (
    Scenario("stationary", windows=60),
    Scenario("seasonal", windows=72, period=24),
    Scenario("mean_0.25", windows=40, change="mean", column="x0", size=0.25),
    Scenario("mean_0.5", windows=40, change="mean", column="x0", size=0.5),
    Scenario("mean_1.0", windows=40, change="mean", column="x0", size=1.0),
    Scenario("gradual_1.0", windows=40, change="mean", column="x1", size=1.0, ramp=10),
    Scenario("variance_1.5", windows=40, change="scale", column="x1", size=1.5),
    Scenario("category_shares", windows=40, change="shares", column="c0", size=0.10),
    Scenario("new_category", windows=40, change="new_category", column="c0", size=0.05),
)}


def _progress_of_change(s: Scenario, index: int) -> float:
    """0 before the change, 1 once fully changed, linear in between for a ramp."""
    if s.change is None or index < s.change_at:
        return 0.0
    if s.ramp == 0:
        return 1.0
    return min(1.0, (index - s.change_at + 1) / s.ramp)


def _season(s: Scenario, index: int) -> float:
    return math.sin(2 * math.pi * index / s.period) if s.period else 0.0


def window_columns(s: Scenario, seed: int, index: int, events: int) -> dict[str, np.ndarray | list]:
    """The columns of window `index` of the stream (`index` < 0: the reference period before it).

    Deterministic in (scenario, seed, index): every window has its own generator.
    """
    rng = np.random.default_rng([seed, index + 1_000_000, len(s.name), sum(map(ord, s.name))])
    season = _season(s, index)
    p = _progress_of_change(s, index)
    cols: dict[str, np.ndarray | list] = {}
    for name in NUMERIC:
        shift = 2.0 * season
        scale = 1.0
        if s.column == name and s.change == "mean":
            shift += s.size * p
        if s.column == name and s.change == "scale":
            scale = 1.0 + (s.size - 1.0) * p
        if name == "x3":
            values = np.exp(rng.normal(0.5 * season, 0.5 * scale, events))  # skewed, seasonal in log
        else:
            values = rng.normal(shift, scale, events)
        if name == "x2":
            values[rng.random(events) < 0.02] = np.nan
        cols[name] = values
    shares = BASE_SHARES.copy()
    if s.period:
        shares = np.roll(BASE_SHARES, int(index % s.period) // 6)
    labels = list(CATEGORIES)
    if s.change == "shares":
        delta = s.size * p
        shares = shares + np.array([-delta, delta, 0.0, 0.0, 0.0])
    if s.change == "new_category" and p > 0:
        shares = np.append(shares * (1 - s.size * p), s.size * p)
        labels.append("new")
    draws = rng.choice(len(labels), size=events, p=shares / shares.sum())
    cols["c0"] = [labels[i] for i in draws]
    return cols


def reference_indices(s: Scenario, windows: int) -> range:
    """Window indices of the reference data: before the stream (seasonal: none, the stream's
    previous day is its reference)."""
    return range(0) if s.period else range(-windows, 0)


def tested_windows(s: Scenario) -> range:
    """The windows where alerts are counted (a seasonal stream needs a day of history first)."""
    return range(s.period, s.windows) if s.period else range(0, s.windows)
