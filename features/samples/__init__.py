"""Samples of the stream: seeded reservoirs (uniform, weighted, stratified), order-independent
priority samples over event-time windows, and their messages.
"""

from features.samples.config import SampleSet, parse_sample_sets
from features.samples.reservoirs import (
    SkipReservoir,
    StratifiedReservoir,
    UniformReservoir,
    WeightedReservoir,
    merge_uniform,
    merge_weighted,
)
from features.samples.priority import Bottom, WindowSample
from features.samples.windows import PaneSampler, SampleWindows
from features.samples.messages import merge_samples, sample_messages

__all__ = [
    "Bottom",
    "PaneSampler",
    "SampleSet",
    "SampleWindows",
    "SkipReservoir",
    "StratifiedReservoir",
    "UniformReservoir",
    "WeightedReservoir",
    "WindowSample",
    "merge_samples",
    "merge_uniform",
    "merge_weighted",
    "parse_sample_sets",
    "sample_messages",
]
