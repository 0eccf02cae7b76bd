"""Segments of a model spread over workers by load: a plan computed once, the same everywhere.

A River tree cannot be split, so a segment (one model) is the unit of work; with Zipf-sized
segments (the busiest area has a quarter of the rides) a hash of the segment leaves one
worker with far more than its share. `plan_segments` places the known segments by weight,
heaviest first, each on the least-loaded worker (LPT: within 4/3 of the best possible
makespan, and exact when one segment outweighs the rest). Segments the weights do not name
(new ones) go to a worker by a stable hash of their name: they are assumed light.

The plan depends only on the weights and the worker count, so every process of a cluster,
and every restart, computes the same one.

>>> plan = plan_segments({"a": 26, "b": 10, "c": 9, "d": 8}, 2)
>>> plan
{'a': 0, 'b': 1, 'c': 1, 'd': 1}
>>> worker_for(plan, "a", 2), worker_for(plan, "new-area", 2) in (0, 1)
(0, True)
>>> plan_fingerprint(plan, 2) == plan_fingerprint(dict(plan), 2)
True
"""

from __future__ import annotations

import hashlib
import zlib
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

import orjson

from features.models.config import ModelSpec


def segment_weights(spec: ModelSpec) -> dict[str, float]:
    """The model's segment weights: counted in `placement.weights_file` (a JSONL sample of
    events: each event counts 1 for its `segment_by` value), then the configured `weights`
    (which win)."""
    weights: dict[str, float] = {}
    path = spec.placement.weights_file
    if path is not None:
        weights.update(count_segments(Path(path), spec.segment_by or ""))
    weights.update(spec.placement.weights)
    return weights


def count_segments(path: Path, field: str) -> dict[str, float]:
    """Events per value of `field` in a JSONL file (lines that are not objects with it are skipped).

    >>> import tempfile
    >>> f = Path(tempfile.mkdtemp()) / "e.jsonl"; _ = f.write_bytes(b'{"a": "x"}\\n{"a": "x"}\\n{"a": "y"}\\nnot json\\n')
    >>> count_segments(f, "a")
    {'x': 2.0, 'y': 1.0}
    """
    counts: Counter[str] = Counter()
    with path.open("rb") as lines:
        for line in lines:
            try:
                doc = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if isinstance(doc, dict) and doc.get(field) is not None:
                counts[str(doc[field])] += 1
    return {segment: float(n) for segment, n in counts.items()}


def plan_segments(weights: Mapping[str, float], workers: int) -> dict[str, int]:
    """Segment -> worker: heaviest first (ties by name), each to the least-loaded worker (ties: lowest)."""
    loads = [0.0] * workers
    plan: dict[str, int] = {}
    for segment, weight in sorted(weights.items(), key=lambda sw: (-sw[1], sw[0])):
        worker = min(range(workers), key=lambda w: (loads[w], w))
        plan[segment] = worker
        loads[worker] += weight
    return plan


def worker_for(plan: Mapping[str, int], segment: str | None, workers: int) -> int:
    """The planned worker of a segment; a stable hash for one the plan does not name."""
    worker = plan.get(segment) if segment is not None else 0
    if worker is None:
        worker = zlib.crc32(segment.encode()) % workers  # type: ignore[union-attr]
    return worker


def plan_fingerprint(plan: Mapping[str, int], workers: int) -> str:
    """A short digest of a plan and its worker count, kept in the recovery state to notice a change."""
    text = orjson.dumps([workers, sorted(plan.items())])
    return hashlib.sha256(text).hexdigest()[:16]


def planned_loads(plan: Mapping[str, int], weights: Mapping[str, float], workers: int) -> list[float]:
    """Each worker's share of the planned weight.

    >>> planned_loads({"a": 0, "b": 1, "c": 1}, {"a": 2, "b": 1, "c": 1}, 2)
    [0.5, 0.5]
    """
    loads = [0.0] * workers
    for segment, worker in plan.items():
        loads[worker] += weights.get(segment, 0.0)
    total = sum(loads) or 1.0
    return [load / total for load in loads]
