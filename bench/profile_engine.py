"""The features flow's per-batch work without Kafka or Bytewax, timed by stage (µs per event).

Usage: PYTHONPATH=. .venv/bin/python bench/profile_engine.py [--variant wide] [--events 300000]
       [--entities 10000] [--batch 5000] [--repeat 1]
       py-spy record -o wide.svg -- .venv/bin/python bench/profile_engine.py --variant wide

The workload is `bench_features.produce_workload`'s (same generator, same seed), as message
bytes spread over the job's partitions by key. Each batch of `--batch` messages of one
partition goes through the same steps as in `dataflows.flows.features`, the same classes:

- decode: `BatchDecoder` (the ingest step), one batch per partition read;
- route: `_PartitionLogic.on_batch` (partition lateness, the split into shards);
- engine: `ColumnarEngine.process` of every shard's part;
- render: `_ShardLogic._encode` and the sink's `MessageBatch.render` (the output messages' bytes).

Times are CPU time of the process (the machine may be shared). Variants are `bench_features.reference_document`'s: "" (the reference job), "wide", "changes".

`--by-set` also prints the engine's time per feature set and phase (adding events, closing
windows, the end of input), summed over the shards: which set of a job costs what.
"""

from __future__ import annotations

import argparse
import sys
import time
import zlib
from collections import defaultdict
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_features import START_MS, reference_config, ride_rows  # noqa: E402

from dataflows.counters import FlowCounters  # noqa: E402
from dataflows.flows.features import SHARDS, _PartitionLogic, _ShardLogic, _SHARD_KEYS  # noqa: E402
from dataflows.kafka.io import MessageBatch, OutMessage  # noqa: E402
from features.event_batch import BatchDecoder  # noqa: E402
from features.events import EventDecoder  # noqa: E402
from features.windows.columnar import ColumnarEngine  # noqa: E402
from features.windows.engine import PartitionClocks  # noqa: E402


def workload(events: int, entities: int, partitions: int, seed: int = 1) -> list[tuple[int, bytes]]:
    """(partition, message value) of `produce_workload`'s rides, in production order."""
    rows, chunk = ride_rows(entities, seed), 50_000  # the producer's chunks: the same random draws
    return [(zlib.crc32(key) % partitions, value)
            for lo in range(0, events, chunk) for key, value in rows(lo, min(chunk, events - lo))]


def batches(messages: list[tuple[int, bytes]], partitions: int, size: int) -> list[tuple[list[bytes], list[int], list[int]]]:
    """Batches of `size` messages of one partition, interleaved across partitions as a reader would."""
    by_partition: dict[int, list[bytes]] = defaultdict(list)
    for p, value in messages:
        by_partition[p].append(value)
    out = []
    for lo in range(0, max(map(len, by_partition.values())), size):
        for p in range(partitions):
            part = by_partition[p][lo: lo + size]
            if part:
                out.append((part, [p] * len(part), list(range(lo, lo + len(part)))))
    return out


def rendered(items: list[OutMessage | MessageBatch]) -> int:
    """Render a step's output items as the sink does (batches render lazily there); the messages made."""
    return sum(len(item.render()[1]) if type(item) is MessageBatch else 1 for item in items)


def timed_sets(engine: ColumnarEngine, seconds: dict[str, float]) -> None:
    """Make each array-held set of `engine` add its CPU time per phase to `seconds` ("set phase");
    a phase called by another (a flush closes) counts in the outer one only."""
    running: list[str] = []
    for name, windows in engine.panes:
        for phase in ("add", "close", "flush"):
            method = getattr(windows, phase)

            def timed(*args: object, _method=method, _key=f"{name} {phase}", **kwargs: object) -> object:
                if running:
                    return _method(*args, **kwargs)
                running.append(_key)
                started = time.process_time()
                try:
                    return _method(*args, **kwargs)
                finally:
                    seconds[_key] = seconds.get(_key, 0.0) + time.process_time() - started
                    running.pop()
            setattr(windows, phase, timed)  # on the instance: the class and other engines are untouched


def run(variant: str, events: int, entities: int, size: int, by_set: dict[str, float] | None = None,
        ) -> dict[str, float]:
    """CPU seconds per stage for one pass over the workload (and per set and phase into `by_set`)."""
    config = reference_config(variant=variant)
    partitions = config.source.partitions
    work = batches(workload(events, entities, partitions), partitions, size)
    decoder = BatchDecoder(EventDecoder(config.schema, config.source.limits))
    counters = FlowCounters()
    topics = {fs.name: fs.topic for fs in config.feature_sets}
    router = {p: _PartitionLogic(PartitionClocks(config.source.lateness_ms), None) for p in range(partitions)}
    shards = [_ShardLogic(ColumnarEngine(config.feature_sets, config.source.lateness_ms, {}, partitions,
                                         config.schema), True, config, topics, counters, lambda: now)
              for _ in range(SHARDS)]
    if by_set is not None:
        for logic in shards:
            timed_sets(logic.engine, by_set)
    index = {key: i for i, key in enumerate(_SHARD_KEYS)}
    seconds = dict.fromkeys(("decode", "route", "engine", "render"), 0.0)
    outputs = 0
    now = START_MS
    clock = time.process_time  # CPU time: the machine is shared, wall time measures the neighbours too
    for values, parts, offsets in work:
        t0 = clock()
        batch, _ = decoder.decode(values, START_MS + 10**9, parts, offsets)
        t1 = clock()
        items, _ = router[parts[0]].on_batch([batch])
        t2 = clock()
        results = []
        for key, (part, verdicts, progress) in items:
            logic = shards[index[key]]
            results.append((logic, part, logic.engine.process(part, True, progress, verdicts if len(part) else None,
                                                               now)))
        t3 = clock()
        for logic, part, result in results:
            outputs += rendered(logic._encode(result, part, now))
        t4 = clock()
        for stage, dt in zip(seconds, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            seconds[stage] += dt
    t3 = clock()
    for logic in shards:
        result = logic.engine.flush()
        t4 = clock()
        seconds["engine"] += t4 - t3
        outputs += rendered(logic._encode(result, None, now))
        t3 = clock()
        seconds["render"] += t3 - t4
    seconds["outputs"] = outputs
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", default="wide", help='"" (reference job), "wide", "changes"')
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--entities", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=5_000, help="messages per partition batch")
    parser.add_argument("--repeat", type=int, default=1, help="passes; the least time per stage is printed")
    parser.add_argument("--by-set", action="store_true", help="also the engine's time per feature set and phase")
    args = parser.parse_args()
    best: dict[str, float] = {}
    best_sets: dict[str, float] = {}
    for _ in range(args.repeat):
        sets: dict[str, float] = {}
        seconds = run(args.variant, args.events, args.entities, args.batch, sets if args.by_set else None)
        best = {k: min(v, best.get(k, v)) for k, v in seconds.items()}
        best_sets = {k: min(v, best_sets.get(k, v)) for k, v in sets.items()}
    outputs = best.pop("outputs")
    total = sum(best.values())
    print(f"variant {args.variant or 'reference'}: {args.events:,} events, {args.entities:,} entities, "
          f"batches of {args.batch:,}; {outputs:,.0f} output messages")
    for stage, s in best.items():
        print(f"  {stage:<7} {s / args.events * 1e6:8.2f} µs/event")
    print(f"  {'total':<7} {total / args.events * 1e6:8.2f} µs/event")
    if best_sets:
        print("engine by set and phase (the rest of the engine: ids, lateness, watermarks):")
        for key, s in sorted(best_sets.items(), key=lambda kv: -kv[1]):
            print(f"  {key:<24} {s / args.events * 1e6:8.2f} µs/event")
    return 0


if __name__ == "__main__":
    sys.exit(main())
