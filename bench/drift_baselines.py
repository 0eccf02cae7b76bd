"""The peers driftline's drift detection is measured against, on the same windows.

- River's ADWIN, KSWIN and PageHinkley, one detector per numeric column and one per
  reference category of a categorical column (fed the category's 0/1 indicator), fed value
  by value: the reference windows first as warm-up (their detections ignored), then the
  stream. A detection belongs to the window of the value that raised it.
- scipy's exact tests on the raw windows: `ks_2samp` per numeric column against the raw
  reference, chi-squared (`chi2_contingency`) per categorical column, an alert when the
  p-value is below alpha / columns (Bonferroni), window by window, no other policy.

Each returns `Alert`s: (window index, column, began window or None).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from drift_streams import CATEGORICAL, CATEGORIES, NUMERIC

Columns = dict[str, "np.ndarray | list"]


@dataclass(frozen=True)
class Alert:
    window: int
    column: str
    began: int | None = None


@dataclass(frozen=True)
class Stream:
    """A stream's reference windows and tested windows (index, columns), in order."""

    reference: Sequence[Columns]
    windows: Sequence[tuple[int, Columns]]
    warmup: int = 0  # the first `warmup` windows only feed history (seasonal streams)


def _value_streams(columns: Columns) -> dict[str, np.ndarray]:
    """What a per-value detector sees: numeric values without nulls, category indicators."""
    out: dict[str, np.ndarray] = {}
    for name in NUMERIC:
        values = np.asarray(columns[name], dtype=float)
        out[name] = values[~np.isnan(values)]
    for name in CATEGORICAL:
        labels = np.asarray(columns[name], dtype=object)
        for category in CATEGORIES:
            out[f"{name}={category}"] = (labels == category).astype(float)
    return out


def run_river(stream: Stream, make: Callable[[], object], only: Sequence[str] | None = None) -> list[Alert]:
    """Per-column River drift detectors (`make()` builds one), value by value."""
    detectors: dict[str, object] = {}
    alerts: list[Alert] = []

    def feed(columns: Columns, window: int | None) -> None:
        for key, values in _value_streams(columns).items():
            column = key.split("=", 1)[0]
            if only is not None and column not in only:
                continue
            detector = detectors.get(key)
            if detector is None:
                detector = detectors[key] = make()
            update = detector.update
            fired = False
            for v in values.tolist():
                update(v)
                if detector.drift_detected:
                    fired = True
            if fired and window is not None:
                alerts.append(Alert(window, column))

    for columns in stream.reference:
        feed(columns, None)
    for position, (index, columns) in enumerate(stream.windows):
        feed(columns, None if position < stream.warmup else index)
    # several detectors of one categorical column may fire in one window: one alert
    return sorted(set(alerts), key=lambda a: (a.window, a.column))


def run_scipy(stream: Stream, alpha: float = 0.01, period: int = 0) -> list[Alert]:
    """Exact tests on the raw windows against the raw reference (period > 0: the window one
    period earlier is the reference)."""
    alerts: list[Alert] = []
    n_columns = len(NUMERIC) + len(CATEGORICAL)
    history = [columns for _, columns in stream.windows]

    def reference_for(position: int) -> Columns:
        if period:
            return history[position - period]
        return {name: (np.concatenate([np.asarray(r[name], dtype=float) for r in stream.reference])
                       if name in NUMERIC else [v for r in stream.reference for v in r[name]])
                for name in (*NUMERIC, *CATEGORICAL)}

    fixed = None if period else reference_for(0)
    for position, (index, columns) in enumerate(stream.windows):
        if position < stream.warmup:
            continue
        ref = fixed if fixed is not None else reference_for(position)
        for name in NUMERIC:
            a = np.asarray(ref[name], dtype=float)
            b = np.asarray(columns[name], dtype=float)
            p = stats.ks_2samp(a[~np.isnan(a)], b[~np.isnan(b)]).pvalue
            if p < alpha / n_columns:
                alerts.append(Alert(index, name))
        for name in CATEGORICAL:
            ref_counts, cur_counts = Counter(ref[name]), Counter(columns[name])
            cats = sorted(set(ref_counts) | set(cur_counts))
            table = np.array([[ref_counts[c] for c in cats], [cur_counts[c] for c in cats]])
            p = stats.chi2_contingency(table).pvalue
            if p < alpha / n_columns:
                alerts.append(Alert(index, name))
    return alerts
