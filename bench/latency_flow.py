"""`driftline` with each input read timed, for bench_model_latency.py's breakdown.

Usage: python bench/latency_flow.py READS_FILE run model --config ... (the `driftline` arguments)

Wraps `_PartitionReader.next_batch` so that every non-empty batch appends
`(wall-clock ms when the read returned, topic, partition, first offset, count)` to a list,
written to READS_FILE as JSON lines when the flow stops. The offsets of a batch are
consecutive, so the bench maps each event's (partition, offset), from its delivery report,
to the moment the flow read it. One tuple per batch: the flow's own timing is unchanged.
Collections of the oldest generation are timed too: `["gc", wall-clock ms when it ended, duration ms]`.
"""

from __future__ import annotations

import gc
import sys
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dataflows.kafka import io  # noqa: E402

Read = tuple[int, str, int, int, int]  # read ms, topic, partition, first offset, count


def traced(reads: list[Read]) -> None:
    """Replace `_PartitionReader.next_batch` with one that records its non-empty batches."""
    next_batch = io._PartitionReader.next_batch

    def timed(self: io._PartitionReader) -> list[io.RawMessage]:
        batch = next_batch(self)
        if batch:
            first = batch[0]
            reads.append((int(time.time() * 1000), first.topic, first.partition, first.offset, len(batch)))
        return batch

    io._PartitionReader.next_batch = timed


def timed_collections(pauses: list[tuple[str, int, float]]) -> None:
    """Record each collection of the oldest generation: when it began and how long it took."""
    started = [0.0]

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            pauses.append(("gc", int(time.time() * 1000), (time.perf_counter() - started[0]) * 1000))

    gc.callbacks.append(on_gc)


def main() -> int:
    path = Path(sys.argv[1])
    reads: list[Read] = []
    pauses: list[tuple[str, int, float]] = []
    traced(reads)
    timed_collections(pauses)
    from dataflows.cli.commands import main as driftline

    try:
        return driftline(sys.argv[2:])
    finally:
        path.write_bytes(b"\n".join(orjson.dumps(r) for r in [*reads, *pauses]))


if __name__ == "__main__":
    sys.exit(main())
