"""The synthetic ride stream of the demo, tests and benchmarks: rides, planted changes,
malformed events, and writing them to Kafka or JSONL files.
"""

from dataflows.synth.generator import StreamSpec, generate, generate_batches
from dataflows.synth.planted_changes import parse_change
from dataflows.synth.malformed_events import MalformedPlan
from dataflows.synth.produce import produce_to_kafka, write_jsonl

__all__ = [
    "MalformedPlan",
    "StreamSpec",
    "generate",
    "generate_batches",
    "parse_change",
    "produce_to_kafka",
    "write_jsonl",
]
