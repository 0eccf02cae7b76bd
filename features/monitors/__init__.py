"""Drift monitors on a stream: their config and reference, event-time base windows, the drift
engine that tests each window and applies the alert policy, expectation checks, drift events.

Start at `engine.DriftEngine` (base windows in, summaries and drift events out).
"""

from features.monitors.config import Monitor, ReferenceSpec, parse_monitor, parse_monitors
from features.monitors.reference import Reference, build_references, load_monitor_references
from features.monitors.base_windows import PartitionWindows, WindowCloser
from features.monitors.engine import DriftEngine, EngineOutput
from features.monitors.events import DriftEvent
from features.monitors.expectation_checks import ExpectationMonitor

__all__ = [
    "DriftEngine",
    "DriftEvent",
    "EngineOutput",
    "ExpectationMonitor",
    "Monitor",
    "PartitionWindows",
    "Reference",
    "ReferenceSpec",
    "WindowCloser",
    "build_references",
    "load_monitor_references",
    "parse_monitor",
    "parse_monitors",
]
