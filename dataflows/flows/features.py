"""The features flow: events -> per-entity windowed features, late events, dead letters.

Entities are hashed into a fixed number of shards; Bytewax keys its state by shard, and
each shard's `ShardEngine` processes a whole batch of its events in one call. This keeps
the per-event cost to a few microseconds of plain Python instead of one Bytewax window
object per entity.
"""

from __future__ import annotations

import time
import zlib
from collections import Counter
from collections.abc import Callable
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Dataflow, Stream
from bytewax.inputs import FixedPartitionedSource
from bytewax.operators import StatefulBatchLogic
from bytewax.outputs import Sink

from dataflows.counters import FlowCounters
from dataflows.flows.ingest import ingest, wall_clock_ms
from dataflows.kafka.io import OutMessage
from dataflows.flows.samples import sample_stage
from features.config import Config
from features.events import Event
from features.windows.config import FeatureSet
from features.windows.engine import LateEvent, PartitionClocks, ShardEngine
from features.messages import encode, feature_message, late_event_message
from features.windows.static_features import load_static

# Fixed for the life of a deployment: recovery snapshots are keyed by shard.
SHARDS = 32
_SHARD_KEYS = tuple(f"{i:02d}" for i in range(SHARDS))

ShardItem = tuple[list[Event], list[int | None], dict[int, int]]


def shard_of(entity: str) -> int:
    """A stable shard number for an entity (the same in every process and run).

    >>> shard_of("area-001") == shard_of("area-001"), 0 <= shard_of("x") < SHARDS
    (True, True)
    """
    return zlib.crc32(entity.encode()) % SHARDS


class _PartitionLogic(StatefulBatchLogic[Event, tuple[str, ShardItem], PartitionClocks]):
    """Splits one input partition's events into one item per shard (every shard, even empty ones).

    Keyed by input partition, so it sees the partition's events in order: it decides
    partition lateness here (`PartitionClocks`) and sends each shard the partition's
    largest event time, so every shard's stream watermark follows the whole stream. The
    clocks are in the recovery snapshot: a restarted flow decides lateness as before.
    """

    def __init__(self, clocks: PartitionClocks, entity_field: str | None) -> None:
        self.clocks = clocks
        self.entity_field = entity_field
        self.shard_of: dict[str, int] = {}

    def on_batch(self, values: list[Event]) -> tuple[list[tuple[str, ShardItem]], bool]:
        groups: list[list[Event]] = [[] for _ in range(SHARDS)]
        verdicts: list[list[int | None]] = [[] for _ in range(SHARDS)]
        behind = self.clocks.behind
        cache = self.shard_of
        field = self.entity_field
        for event in values:
            entity = event.entity if field is None else str(event.fields[field])
            shard = cache.get(entity)
            if shard is None:
                if len(cache) > 1_000_000:  # bound the memo, not the entities
                    cache.clear()
                shard = cache[entity] = shard_of(entity)
            groups[shard].append(event)
            verdicts[shard].append(behind(event))
        progress = dict(self.clocks.high)
        return [(_SHARD_KEYS[i], (groups[i], verdicts[i], progress)) for i in range(SHARDS)], StatefulBatchLogic.RETAIN

    def snapshot(self) -> PartitionClocks:
        return self.clocks


class _ShardLogic(StatefulBatchLogic[ShardItem, OutMessage, ShardEngine]):
    def __init__(self, engine: ShardEngine, default_entity: bool, config: Config,
                 topics: dict[str, str], counters: FlowCounters, clock_ms: Callable[[], int]) -> None:
        self.engine = engine
        self.default_entity = default_entity
        self.source_topic = config.source.topic
        self.late_topic = config.source.late_topic
        self.topics = topics
        self.counters = counters
        self.clock_ms = clock_ms

    def _encode(self, results: list[Any]) -> list[OutMessage]:
        now = self.clock_ms()
        out: list[OutMessage] = []
        late = 0
        by_set: Counter[str] = Counter()
        lags: list[float] = []
        for r in results:
            if type(r) is LateEvent:
                e = r.event
                late += 1
                msg = late_event_message(self.source_topic, e.partition, e.offset, e.entity, e.time_ms,
                                         r.watermark_ms, e.fields, now)
                out.append(OutMessage(self.late_topic, e.entity.encode(), encode(msg)))
            else:
                by_set[r.feature_set] += 1
                if r.kind == "final":
                    lags.append((now - r.end_ms) / 1000)
                msg = feature_message(r.feature_set, r.entity, r.start_ms, r.end_ms, r.values, r.event_count,
                                      r.kind, r.as_of_ms, now)
                out.append(OutMessage(self.topics[r.feature_set], r.entity.encode(), encode(msg)))
        if lags:
            self.counters.observe("emit_lag", lags)
        if out:
            self.counters.add({"features_out": len(out) - late, "late": late,
                               **{f"features_out.{name}": n for name, n in by_set.items()}})
        return out

    def on_batch(self, values: list[ShardItem]) -> tuple[list[OutMessage], bool]:
        started = time.perf_counter()
        results: list[Any] = []
        now = self.clock_ms()
        for events, verdicts, progress in values:
            results.extend(self.engine.process(events, self.default_entity, progress, verdicts, now))
        out = self._encode(results)
        self.counters.observe("stage.features", (time.perf_counter() - started,))
        return out, StatefulBatchLogic.RETAIN

    def on_eof(self) -> tuple[list[OutMessage], bool]:
        return self._encode(self.engine.flush()), StatefulBatchLogic.RETAIN

    def snapshot(self) -> ShardEngine:
        return self.engine


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


def feature_stage(events: Stream[Event], config: Config, counters: FlowCounters, partitions: int,
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
    outputs = []
    for entity_field, sets in by_entity.items():
        default = entity_field == config.schema.entity
        step = f"features_{entity_field}"
        by_partition = op.key_on(f"{step}_partition", events, lambda e: str(e.partition))

        def partition_builder(resume: PartitionClocks | None, field: str | None = None if default else entity_field,
                              ) -> _PartitionLogic:
            return _PartitionLogic(resume or PartitionClocks(config.source.lateness_ms), field)

        sharded = op.stateful_batch(f"{step}_shard", by_partition, partition_builder)
        keyed = op.map(f"{step}_key", sharded, lambda item: item[1])  # (partition, (shard, x)) -> (shard, x)

        def builder(resume: ShardEngine | None, sets: list[FeatureSet] = sets, default: bool = default) -> _ShardLogic:
            if resume is not None:
                resume.progress.resumed(clock_ms())
            engine = resume or ShardEngine(sets, config.source.lateness_ms, statics, partitions)
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
    events, dead_letters = ingest(flow, config, source, counters, "features")
    partitions = len(source.list_parts())
    outputs = feature_stage(events, config, counters, partitions, clock_ms)
    outputs += sample_stage(events, config, counters, partitions, clock_ms)
    op.output("out", op.merge("all_out", dead_letters, *outputs), sink)
    return flow
