"""Scoring a detector's alerts on a scenario: detection, delay, false alarms, localisation.

For a drift scenario, an alert on the changed column at or after the change window is a
detection; every other alert (another column, or the changed column before the change) is
a false alarm. On a control, every alert is a false alarm. False alarms are counted as
windows with at least one false alert, per 1,000 tested windows. Delay counts base windows
from the change: 1 means the first changed window raised the alert.

>>> from drift_baselines import Alert
>>> from drift_streams import SCENARIOS
>>> s = SCENARIOS["mean_1.0"]
>>> tally = Tally()
>>> tally.add(s, [Alert(5, "x3"), Alert(20, "x0", began=20)], tested=40)
>>> tally.detected, tally.delays, tally.false_windows, tally.localisation_errors
(1, [1], 1, [0])
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from drift_baselines import Alert
from drift_streams import Scenario


@dataclass
class Tally:
    """Running totals over the seeds of one scenario and one detector."""

    seeds: int = 0
    detected: int = 0
    delays: list[int] = field(default_factory=list)
    localisation_errors: list[int] = field(default_factory=list)
    false_windows: int = 0
    windows: int = 0

    def add(self, s: Scenario, alerts: list[Alert], tested: int) -> None:
        self.seeds += 1
        self.windows += tested
        false = set()
        first: Alert | None = None
        for a in sorted(alerts, key=lambda a: a.window):
            if not s.is_control and a.column == s.column and a.window >= s.change_at:
                first = first or a
            else:
                false.add(a.window)
        self.false_windows += len(false)
        if first is not None:
            self.detected += 1
            self.delays.append(first.window - s.change_at + 1)
            if first.began is not None and s.abrupt:
                self.localisation_errors.append(abs(first.began - s.change_at))

    def within(self, windows: int) -> float:
        """Share of seeds detected within `windows` base windows of the change."""
        return sum(d <= windows for d in self.delays) / max(self.seeds, 1)

    @property
    def rate(self) -> float:
        return self.detected / max(self.seeds, 1)

    @property
    def median_delay(self) -> float | None:
        return statistics.median(self.delays) if self.delays else None

    @property
    def false_per_1000(self) -> float:
        return 1000 * self.false_windows / max(self.windows, 1)

    def localised_within(self, windows: int) -> float | None:
        """Share of localised detections whose start window is within `windows` of the truth."""
        if not self.localisation_errors:
            return None
        return sum(e <= windows for e in self.localisation_errors) / len(self.localisation_errors)
