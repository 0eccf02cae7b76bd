"""Feature sets: their config, the aggregates, open windows per entity and the shard engine that closes them.

Start at `engine.ShardEngine` (lateness, watermarks, window closing) and `state` (one class per
window type: tumbling, hopping, session, last N).
"""

from features.windows.config import (
    FeatureSet,
    FeatureSpec,
    WindowSpec,
    parse_feature_set,
    parse_feature_sets,
)
from features.windows.aggregates import Aggregates, compile_aggregates
from features.windows.state import FeatureRow, new_window_state
from features.windows.engine import LateEvent, ShardEngine
from features.windows.static_features import load_static

__all__ = [
    "Aggregates",
    "FeatureRow",
    "FeatureSet",
    "FeatureSpec",
    "LateEvent",
    "ShardEngine",
    "WindowSpec",
    "compile_aggregates",
    "load_static",
    "new_window_state",
    "parse_feature_set",
    "parse_feature_sets",
]
