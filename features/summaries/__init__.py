"""Mergeable column summaries: exact moments, KLL quantiles, HLL distinct counts, frequent items.

A summary is a value, as in Apache DataSketches: update, merge, serialise, query, each answer
with its error bound. `window.WindowSummary` holds every monitored column of one window.
"""

from features.summaries.numeric import NumericSummary
from features.summaries.categorical import CategoricalSummary, FrequentItem
from features.summaries.window import (
    SummaryConfig,
    WindowAccumulator,
    WindowSummary,
    merge_all,
    summarize_columns,
    summarize_events,
)
from features.summaries.moments import Moments, merge_moments, moments_of
from features.summaries.quantiles import Cdf, Histogram, Quantiles
from features.summaries.hll import DistinctCount, HllBatchFeeder

__all__ = [
    "CategoricalSummary",
    "Cdf",
    "DistinctCount",
    "FrequentItem",
    "Histogram",
    "HllBatchFeeder",
    "Moments",
    "NumericSummary",
    "Quantiles",
    "SummaryConfig",
    "WindowAccumulator",
    "WindowSummary",
    "merge_all",
    "merge_moments",
    "moments_of",
    "summarize_columns",
    "summarize_events",
]
