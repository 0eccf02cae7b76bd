"""The features flow: events -> per-entity windowed features, late events, dead letters.

Each decoded batch (`EventBatch`, columns) goes to a step keyed by input partition, which
decides partition lateness for the whole batch and splits it by shard (a CRC32 hash of the
entity into a fixed number of shards); each shard's `ColumnarEngine` aggregates its part
of the batch with numpy. Bytewax carries one item per batch and shard, never one per event.
"""

from __future__ import annotations

import time
import zlib
from collections import Counter
from collections.abc import Callable, Mapping
from functools import partial
from itertools import repeat
from typing import Any

import bytewax.operators as op
import numpy as np
from bytewax.dataflow import Dataflow, Stream
from bytewax.inputs import FixedPartitionedSource
from bytewax.operators import StatefulBatchLogic
from bytewax.outputs import Sink

from dataflows.counters import FlowCounters
from dataflows.flows.ingest import ingest_batches, wall_clock_ms
from dataflows.flows.samples import sample_stage
from dataflows.flows.worker_routing import key_on_worker
from dataflows.kafka.io import MessageBatch, OutMessage
from features.config import Config
from features.event_batch import EventBatch
from features.messages import encode, feature_message, feature_messages, late_event_message
from features.partition_progress import NEVER
from features.windows.columnar import (
    STATE_LAYOUT,
    ColumnarEngine,
    EngineOutput,
    FeatureWindows,
    partition_verdicts,
)
from features.windows.config import FeatureSet
from features.windows.engine import PartitionClocks
from features.windows.ordering import stable_order
from features.windows.static_features import load_static

# Fixed for the life of a deployment: recovery snapshots are keyed by shard. Few shards, as
# each engine call has a fixed cost of ~1 ms (dozens of numpy calls per set): with 32 shards
# the engine took twice the CPU per event of 8 on the reference job (bench/profile_engine.py).
SHARDS = 8
# Each shard's key is chosen so that Bytewax's hash of it is its number modulo 840, the least
# common multiple of 1..8: on any cluster of up to 8 workers, shard i is on worker i % workers,
# so the shards are spread evenly whatever the worker count a recovery directory resumes with.
_PLACEMENT_MODULUS = 840
_SHARD_KEYS = tuple(key_on_worker(f"{i:02d}", i, _PLACEMENT_MODULUS) for i in range(SHARDS))
_NO_EVENTS = EventBatch.of([])
_NOT_LATE = np.zeros(0, np.int64)

# A shard's part of one partition's batch: its events, their partition-lateness verdicts
# (the partition watermark when behind it, else NEVER), and every partition's progress.
ShardItem = tuple[EventBatch, np.ndarray, dict[int, int]]


def shard_of(entity: str) -> int:
    """A stable shard number for an entity (the same in every process and run).

    >>> shard_of("area-001") == shard_of("area-001"), 0 <= shard_of("x") < SHARDS
    (True, True)
    """
    return zlib.crc32(entity.encode()) % SHARDS


class _PartitionLogic(StatefulBatchLogic[EventBatch, tuple[str, ShardItem], PartitionClocks]):
    """Splits one input partition's batches into one item per shard (every shard, even empty ones).

    Keyed by input partition, so it sees the partition's events in order: it decides
    partition lateness here (`PartitionClocks`) and sends each shard the partition's
    largest event time, so every shard's stream watermark follows the whole stream. The
    clocks are in the recovery snapshot: a restarted flow decides lateness as before.
    """

    def __init__(self, clocks: PartitionClocks, entity_field: str | None) -> None:
        self.clocks = clocks
        self.entity_field = entity_field
        self.shard_of: dict[str, int] = {}

    def _shards(self, keys: list[str]) -> np.ndarray:
        cache = self.shard_of
        if len(cache) > 1 << 17:  # bound the memo, not the entities (a miss costs a CRC32)
            cache.clear()
        shards = np.fromiter(map(cache.get, keys, repeat(-1)), np.int64, len(keys))
        for i in np.flatnonzero(shards < 0).tolist():
            shards[i] = cache[keys[i]] = shard_of(keys[i])
        return shards

    def on_batch(self, values: list[EventBatch]) -> tuple[list[tuple[str, ShardItem]], bool]:
        batch = EventBatch.concat(values)
        verdicts = partition_verdicts(self.clocks.high, self.clocks.lateness, batch.partitions, batch.times)
        shards = self._shards(batch.entities if self.entity_field is None else batch.keys(self.entity_field))
        order = stable_order(shards)
        heads = np.flatnonzero(np.diff(shards[order], prepend=-1) != 0)
        parts = {int(shards[part[0]]): part for part in np.split(order, heads[1:])} if len(batch) else {}
        progress = dict(self.clocks.high)
        items = []
        for i in range(SHARDS):
            part = parts.get(i)
            item = (_NO_EVENTS, _NOT_LATE, progress) if part is None else (batch.take(part), verdicts[part], progress)
            items.append((_SHARD_KEYS[i], item))
        return items, StatefulBatchLogic.RETAIN

    def snapshot(self) -> PartitionClocks:
        return self.clocks


class _ShardLogic(StatefulBatchLogic[ShardItem, "OutMessage | MessageBatch", ColumnarEngine]):
    def __init__(self, engine: ColumnarEngine, default_entity: bool, config: Config,
                 topics: dict[str, str], counters: FlowCounters, clock_ms: Callable[[], int]) -> None:
        self.engine = engine
        self.default_entity = default_entity
        self.source_topic = config.source.topic
        self.late_topic = config.source.late_topic
        self.topics = topics
        self.counters = counters
        self.clock_ms = clock_ms

    def _encode(self, result: EngineOutput, batch: EventBatch | None, now: int) -> list[OutMessage | MessageBatch]:
        out: list[OutMessage | MessageBatch] = []
        by_set: Counter[str] = Counter()
        lags: list[float] = []
        statics = self.engine.statics
        for w in result.windows:
            name = w.feature_set
            by_set[name] += len(w)
            lags.extend(((now - w.ends) / 1000).tolist())
            out.append(MessageBatch(self.topics[name], partial(render_windows, w, now, statics.get(name))))
        for r in result.rows:
            by_set[r.feature_set] += 1
            if r.kind == "final":
                lags.append((now - r.end_ms) / 1000)
            msg = feature_message(r.feature_set, r.entity, r.start_ms, r.end_ms, r.values, r.event_count,
                                  r.kind, r.as_of_ms, now)
            out.append(OutMessage(self.topics[r.feature_set], r.entity.encode(), encode(msg)))
        late = len(result.late)
        if late and batch is not None:
            entities = batch.entities if self.default_entity else batch.keys(self.engine.entity_field)
            for i, watermark in zip(result.late.tolist(), result.late_watermarks.tolist()):
                msg = late_event_message(self.source_topic, int(batch.partitions[i]), int(batch.offsets[i]),
                                         entities[i], int(batch.times[i]), watermark, batch.record(i), now)
                out.append(OutMessage(self.late_topic, entities[i].encode(), encode(msg)))
        if out:
            count_outputs(self.counters, by_set, lags, late)
        return out

    def on_batch(self, values: list[ShardItem]) -> tuple[list[OutMessage | MessageBatch], bool]:
        started = time.perf_counter()
        now = self.clock_ms()
        # The items of one call (one per input partition, usually) go to the engine as one
        # batch: its fixed cost per call is paid once. The results are those of the items one
        # by one: partition lateness is decided upstream, and an event the stream watermark
        # would pass after an earlier item is behind its own partition's watermark too.
        parts = [item for item in values if len(item[0])]
        progress: dict[int, int] = {}
        for _, _, marks in values:
            for p, t in marks.items():
                if t > progress.get(p, NEVER):
                    progress[p] = t
        batch = EventBatch.concat([b for b, _, _ in parts]) if parts else _NO_EVENTS
        verdicts = np.concatenate([v for _, v, _ in parts]) if parts else None
        result = self.engine.process(batch, self.default_entity, progress, verdicts, now)
        out = self._encode(result, batch, now)
        self.counters.observe("stage.features", (time.perf_counter() - started,))
        return out, StatefulBatchLogic.RETAIN

    def on_eof(self) -> tuple[list[OutMessage | MessageBatch], bool]:
        # Each set's last windows are computed when the sink renders them, one set of one shard
        # at a time: a bounded input over a million entities ends with millions of windows, and
        # their values would otherwise all be held until the sink runs.
        now = self.clock_ms()
        later, rows = self.engine.flush_later()
        statics = self.engine.statics
        out: list[OutMessage | MessageBatch] = [
            MessageBatch(self.topics[name], partial(render_flushed, windows, now, statics.get(name), self.counters))
            for name, windows in later]
        return out + self._encode(EngineOutput(rows=rows), None, now), StatefulBatchLogic.RETAIN

    def snapshot(self) -> ColumnarEngine:
        return self.engine


def resumable(state: object) -> ColumnarEngine | None:
    """A shard's state from a recovery snapshot, if this version can resume it; else a clear error.

    >>> resumable(None) is None
    True
    >>> resumable(object())  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    RuntimeError: the recovery directory holds the features flow's state of an older driftline ...
    """
    if state is None or (isinstance(state, ColumnarEngine) and getattr(state, "state_layout", None) == STATE_LAYOUT):
        return state  # type: ignore[return-value]
    raise RuntimeError(
        "the recovery directory holds the features flow's state of an older driftline (its windows are laid out "
        "differently); this version cannot read it. Resume with the version that wrote it, or start with a new "
        "--recovery-dir (the flow then reads its input from the start).")


def render_windows(windows: FeatureWindows, emitted_at_ms: int,
                   statics: Mapping[str, Mapping[str, Any]] | None) -> tuple[list[bytes | None], list[bytes]]:
    """The keys and `driftline.features/1` messages of closed windows (rendered by the sink)."""
    values = feature_messages(windows.feature_set, windows.entities, windows.starts, windows.ends, windows.values,
                              windows.counts, emitted_at_ms, statics)
    return [e.encode() for e in windows.entities], values


def render_flushed(windows: Callable[[], FeatureWindows | None], emitted_at_ms: int,
                   statics: Mapping[str, Mapping[str, Any]] | None, counters: FlowCounters,
                   ) -> tuple[list[bytes | None], list[bytes]]:
    """The keys and messages of a set's windows closed at the end of the input, computed now
    (`ColumnarEngine.flush_later`) and counted as `_ShardLogic._encode` counts the others. The
    counters tie this render to its process: such a batch never leaves the worker that made
    it (the sink is not keyed)."""
    w = windows()
    if w is None:
        return [], []
    count_outputs(counters, {w.feature_set: len(w)}, ((emitted_at_ms - w.ends) / 1000).tolist(), 0)
    return render_windows(w, emitted_at_ms, statics)


def count_outputs(counters: FlowCounters, by_set: Mapping[str, int], lags: list[float], late: int) -> None:
    """Count feature messages written (by set), their emit lags (final windows) and late events."""
    if lags:
        counters.observe("emit_lag", lags)
    counters.add({"features_out": sum(by_set.values()), "late": late,
                  **{f"features_out.{name}": n for name, n in by_set.items()}})


def load_statics(feature_sets: tuple[FeatureSet, ...]) -> dict[str, dict[str, dict[str, Any]]]:
    """Static feature tables of every feature set that has one, by feature set name."""
    from features.config_values import ConfigError

    statics = {}
    for i, fs in enumerate(feature_sets):
        if fs.static is not None:
            try:
                table = load_static(fs.static.path, fs.static.key)
            except ValueError as exc:
                raise ConfigError(f"feature_sets[{i}].static", "a readable CSV or JSONL file", str(fs.static.path),
                                  str(exc)) from None
            clash = {name for row in table.values() for name in row} & {f.name for f in fs.features}
            if clash:
                raise ConfigError(f"feature_sets[{i}].static", "columns named unlike the streaming features",
                                  sorted(clash), "rename the columns or the features.")
            statics[fs.name] = table
    return statics


def feature_stage(batches: Stream[EventBatch], config: Config, counters: FlowCounters, partitions: int,
                  clock_ms: Callable[[], int] = wall_clock_ms) -> list[Stream[OutMessage]]:
    """Add the feature computation; one stateful step per entity field. Returns its output streams.

    `partitions` is the number of input partitions: the stream watermark waits for all of
    them, except partitions silent for 30 s of wall time (`PartitionProgress`).
    """
    statics = load_statics(config.feature_sets)
    topics = {fs.name: fs.topic for fs in config.feature_sets}
    by_entity: dict[str, list[FeatureSet]] = {}
    for fs in config.feature_sets:
        by_entity.setdefault(fs.entity, []).append(fs)
    by_partition = op.flat_map("features_by_partition", batches,
                               lambda b: [(str(p), part) for p, part in b.by_partition()])
    outputs = []
    for entity_field, sets in by_entity.items():
        default = entity_field == config.schema.entity
        step = f"features_{entity_field}"

        def partition_builder(resume: PartitionClocks | None, field: str | None = None if default else entity_field,
                              ) -> _PartitionLogic:
            return _PartitionLogic(resume or PartitionClocks(config.source.lateness_ms), field)

        sharded = op.stateful_batch(f"{step}_shard", by_partition, partition_builder)
        keyed = op.map(f"{step}_key", sharded, lambda item: item[1])  # (partition, (shard, x)) -> (shard, x)

        def builder(resume: ColumnarEngine | None, sets: list[FeatureSet] = sets, default: bool = default,
                    ) -> _ShardLogic:
            resume = resumable(resume)
            if resume is not None:
                resume.progress.resumed(clock_ms())
            engine = resume or ColumnarEngine(sets, config.source.lateness_ms, statics, partitions, config.schema)
            return _ShardLogic(engine, default, config, topics, counters, clock_ms)

        computed = op.stateful_batch(f"{step}_windows", keyed, builder)
        outputs.append(op.key_rm(f"{step}_unkey", computed))
    return outputs


def build_features_flow(config: Config, source: FixedPartitionedSource, sink: Sink[OutMessage],
                        counters: FlowCounters, clock_ms: Callable[[], int] = wall_clock_ms) -> Dataflow:
    """Ingestion + features + sample sets, reading `source` and writing every output message to `sink`."""
    if not config.feature_sets and not config.sample_sets:
        from features.config_values import ConfigError

        raise ConfigError("feature_sets", "at least one [[feature_sets]] or [[sample_sets]] entry", None,
                          "add a feature set (see docs/configuration.md) or run the `ingest` flow.")
    flow = Dataflow("driftline_features")
    batches, dead_letters = ingest_batches(flow, config, source, counters, "features")
    partitions = len(source.list_parts())
    outputs = feature_stage(batches, config, counters, partitions, clock_ms) if config.feature_sets else []
    if config.sample_sets:
        outputs += sample_stage(batches, config, counters, partitions, clock_ms)
    op.output("out", op.merge("all_out", dead_letters, *outputs), sink)
    return flow
