"""A starting set of expectations from a reference summary, for a person to review.

From a monitor's summary of training events (`features.monitors.reference.build_references`):

- numeric columns: `range` from the 0.1% and 99.9% quantiles (their outer confidence
  bounds, rounded outward to 3 significant digits) with `mostly = 0.99`, so that the 0.2% of
  training values outside, and some more, do not alert;
- categorical columns: `in` the categories seen (none suggested once the summary passed its
  cap: the categories are not all known);
- `not_null` on every column without a null in the data.

>>> from features.summaries.window import summarize_columns
>>> import numpy as np
>>> w = summarize_columns(0, 1, {"km": np.linspace(0.5, 40.0, 1000), "pay": ["card", "cash"] * 500},
...                       ["km"], ["pay"])
>>> for line in suggest_lines(w, ("km",), ("pay",)):
...     print(line)
  { column = "km", range = { min = 0.5, max = 40 }, mostly = 0.99 },
  { column = "km", not_null = true },
  { column = "pay", in = ["card", "cash"] },
  { column = "pay", not_null = true },
"""

from __future__ import annotations

import json
import math

from features.summaries.categorical import CategoricalSummary
from features.summaries.numeric import NumericSummary
from features.summaries.window import WindowSummary

LOW_RANK, HIGH_RANK, RANGE_MOSTLY = 0.001, 0.999, 0.99


def _round(x: float, up: bool) -> float | int:
    """x rounded outward (up or down) to 3 significant digits; integral results as int.

    >>> _round(12.345, True), _round(-0.01234, False), _round(0.0, True)
    (12.4, -0.0124, 0)
    """
    if x == 0 or not math.isfinite(x):
        return 0 if x == 0 else x
    step = 10.0 ** (math.floor(math.log10(abs(x))) - 2)
    r = (math.ceil if up else math.floor)(round(x / step, 9)) * step
    r = float(f"{r:.3g}")
    return int(r) if r.is_integer() else r


def _toml(value: object) -> str:
    return json.dumps(value)  # strings, numbers and lists of strings are the same in TOML


def suggest_lines(summary: WindowSummary, numeric: tuple[str, ...], categorical: tuple[str, ...]) -> list[str]:
    """The suggested expectations as lines of a TOML `expectations = [...]` list."""
    lines = []
    for column in numeric + categorical:
        s = summary.columns[column]
        if isinstance(s, NumericSummary) and s.count:
            q = s.quantiles([LOW_RANK, HIGH_RANK])
            low, high = _round(q.lower[0], up=False), _round(q.upper[1], up=True)
            lines.append(f"  {{ column = {_toml(column)}, range = {{ min = {low}, max = {high} }}, "
                         f"mostly = {RANGE_MOSTLY} }},")
        elif isinstance(s, CategoricalSummary) and s.count and not s.other:
            seen = sorted(s.counts, key=lambda c: (-s.counts[c], c))
            lines.append(f"  {{ column = {_toml(column)}, in = {_toml(seen)} }},")
        values = s.count + (s.infinite + s.invalid if isinstance(s, NumericSummary) else 0)
        if values and s.nulls == 0:
            lines.append(f"  {{ column = {_toml(column)}, not_null = true }},")
    return lines


def suggest_toml(monitors: dict[str, tuple[WindowSummary, tuple[str, ...], tuple[str, ...]]], source: str) -> str:
    """A TOML text with one commented `expectations` list per monitor, to paste under its
    `[[monitors]]` entry after review."""
    out = [f"# Expectations suggested by `driftline expectations suggest` from {source}.",
           "# Review before use: ranges are the 0.1%-99.9% quantiles of that data, categories the",
           "# ones seen, not_null where it had no null. Paste each list under its [[monitors]] entry."]
    for name, (summary, numeric, categorical) in monitors.items():
        out += ["", f"# [[monitors]] name = {_toml(name)} ({summary.event_count:,} events)", "expectations = ["]
        out += suggest_lines(summary, numeric, categorical)
        out.append("]")
    return "\n".join(out) + "\n"
