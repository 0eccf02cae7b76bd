"""CPU per event of a session feature set in `ColumnarEngine`, offline (no broker, no Bytewax).

Usage: PYTHONPATH=<tree> .venv/bin/python bench/bench_sessions.py [--events 200000] [--entities 10000]

The workload is `bench_features.py`'s (rides over areas, 2,000 events per second of event
time, +-2 s of jitter, 3 partitions), decoded into `EventBatch`es of `--batch` events before
timing; the engine then gets the batches as the features flow hands them to a shard, and
`flush` at the end. Prints the least process time per event over `--repeats` runs (the
machine is shared), for a session set alone and for the reference job's sets plus it.
Point PYTHONPATH at another tree to measure its engine on the same workload.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from features.event_batch import EventBatch
from features.events import Event
from features.windows.columnar import ColumnarEngine
from features.windows.config import FeatureSet, FeatureSpec, WindowSpec

START_MS = 1_767_225_600_000
EVENT_TIME_RATE = 2_000
FEATURES = (FeatureSpec("rides", "count"), FeatureSpec("mean_price", "mean", "price"),
            FeatureSpec("max_price", "max", "price"))
SESSION = FeatureSet("sess", "area", "features.sess", WindowSpec("session", gap_ms=30_000), FEATURES)
REFERENCE = (
    FeatureSet("bench_1m", "area", "features.bench_1m", WindowSpec("tumbling", 60_000, 60_000), FEATURES),
    FeatureSet("bench_10m", "area", "features.bench_10m", WindowSpec("hopping", 600_000, 60_000), FEATURES[:2]),
)


def workload(events: int, entities: int, batch: int, seed: int = 1) -> list[EventBatch]:
    """The bench workload as batches: rides in event-time order with jitter, over `entities` areas."""
    rng = np.random.default_rng(seed)
    idx = np.arange(events)
    ts = START_MS + idx * 1000 // EVENT_TIME_RATE + rng.integers(-2_000, 2_000, events)
    areas = rng.integers(0, entities, events)
    price = np.round(rng.gamma(2.0, 8.0, events), 2)
    rows = [Event(f"area-{a:07d}", int(t), {"area": f"area-{a:07d}", "price": float(p)}, partition=i % 3, offset=i)
            for i, (a, t, p) in enumerate(zip(areas.tolist(), ts.tolist(), price.tolist()))]
    return [EventBatch.of(rows[i: i + batch]) for i in range(0, events, batch)]


def cpu_per_event(sets: tuple[FeatureSet, ...], batches: list[EventBatch], repeats: int) -> tuple[float, int]:
    """Least process time per event (µs) over `repeats` runs, and the windows written."""
    best, written = float("inf"), 0
    n = sum(len(b) for b in batches)
    for _ in range(repeats):
        engine = ColumnarEngine(sets, 10_000, partitions=3)
        started = time.process_time()
        written = 0
        for batch in batches:
            out = engine.process(batch)
            written += sum(len(w) for w in out.windows) + len(out.rows)
        out = engine.flush()
        written += sum(len(w) for w in out.windows) + len(out.rows)
        best = min(best, time.process_time() - started)
    return best / n * 1e6, written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--entities", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=2_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    batches = workload(args.events, args.entities, args.batch)
    for label, sets in (("session set", (SESSION,)), ("tumbling + hopping + session", (*REFERENCE, SESSION)),
                        ("tumbling + hopping", REFERENCE)):
        us, written = cpu_per_event(sets, batches, args.repeats)
        print(f"{label:30s} {us:7.2f} µs/event CPU  ({written} windows)")


if __name__ == "__main__":
    main()
