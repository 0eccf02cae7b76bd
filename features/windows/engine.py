"""The feature engine for one shard of entities: lateness, watermarks, window closing.

Event-time semantics (the same in a Kafka run and with any number of workers; a replay of a
file gives the same results whenever each event is either within the lateness of its
partition or further behind than lateness plus the partitions' skew):

- An event is late when it is behind its input partition's watermark (the largest event
  time read before it from the same partition, less the allowed lateness) or its entity's
  watermark (the same over the entity's events). Both depend only on the order within a
  partition, which Kafka fixes, so the decision is the same however the partitions are
  interleaved or spread over workers. Late events are not aggregated: they come back as
  `LateEvent`s (the flow writes them to `<topic>.late`).
- A window closes (its features are emitted) when its entity's watermark passes its end,
  or the stream's watermark does: the smallest, over input partitions, of the partition
  watermarks (it exists once every partition has delivered an event), so windows of quiet
  entities close too. Given the wall clock, a partition silent for 30 s stops holding the
  stream's watermark back (`PartitionProgress`); an event behind the stream's watermark
  (one from such a partition once it delivers again) is late too. So an event that is not
  late can never fall into a closed window.

>>> from features.windows.config import FeatureSet, FeatureSpec, WindowSpec
>>> from features.events import Event
>>> fs = FeatureSet("s", "area", "features.s", WindowSpec("tumbling", 60_000, 60_000),
...                 (FeatureSpec("n", "count"),))
>>> engine = ShardEngine((fs,), lateness_ms=10_000)
>>> out = engine.process([Event("a", 1_000, {}), Event("a", 75_000, {}), Event("a", 2_000, {})])
>>> [(type(o).__name__, getattr(o, "values", None)) for o in out]
[('FeatureRow', {'n': 1}), ('LateEvent', None)]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from features.events import Event
from features.windows.config import FeatureSet
from features.partition_progress import NEVER, PartitionProgress
from features.windows.state import FeatureRow, new_window_state



class PartitionClocks:
    """The largest event time read so far from each input partition, in partition order.

    >>> clocks = PartitionClocks(lateness_ms=10)
    >>> [clocks.behind(Event("a", t, {})) for t in (100, 95, 89, 120)]
    [None, None, 90, None]
    """

    def __init__(self, lateness_ms: int) -> None:
        self.lateness = lateness_ms
        self.high: dict[int, int] = {}

    def behind(self, event: Event) -> int | None:
        """Record the event; returns its partition's watermark if the event is behind it, else None."""
        p, t = event.partition, event.time_ms
        high = self.high.get(p)
        if high is None or t > high:
            self.high[p] = t
            return None
        watermark = high - self.lateness
        return watermark if t < watermark else None


@dataclass(frozen=True)
class LateEvent:
    """An event behind the watermark: kept out of the features, written to the late topic."""

    event: Event
    watermark_ms: int


class ShardEngine:
    """Feature sets that share one entity field, for the entities of one shard.

    The whole object is the shard's state: it pickles into Bytewax recovery snapshots.
    """

    def __init__(self, feature_sets: Sequence[FeatureSet], lateness_ms: int,
                 statics: Mapping[str, Mapping[str, Mapping[str, Any]]] | None = None, partitions: int = 1) -> None:
        entities = {fs.entity for fs in feature_sets}
        if len(entities) != 1:
            raise ValueError(f"a shard engine serves feature sets of one entity field, got {sorted(entities)}")
        self.entity_field = entities.pop()
        self.lateness = lateness_ms
        self.states = [new_window_state(fs, (statics or {}).get(fs.name)) for fs in feature_sets]
        self.entity_max: dict[str, int] = {}
        self.clocks = PartitionClocks(lateness_ms)
        self.progress = PartitionProgress(partitions)
        self.stream_watermark = NEVER

    def process(self, events: Sequence[Event], default_entity: bool = True,
                progress: Mapping[int, int] | None = None,
                partition_late: Sequence[int | None] | None = None,
                now_ms: int | None = None) -> list[FeatureRow | LateEvent]:
        """Aggregate a batch of events (in arrival order); returns closed windows and late events.

        `default_entity` says the sets' entity field is the schema's entity (then
        `Event.entity` is used as is). When the engine sees only some of a partition's
        events (one shard of many), the caller, who sees them all, passes `partition_late`
        (`PartitionClocks.behind` of each event) and `progress` (the largest event time
        read per partition), so the shard follows the whole stream and not only its own
        entities. Without them the engine keeps its own partition clocks. `now_ms`, the wall
        clock, lets idle partitions stop holding the stream's watermark back.
        """
        out: list[FeatureRow | LateEvent] = []
        lateness = self.lateness
        entity_max = self.entity_max
        partition_max: dict[int, int] = {}  # this batch's largest event time per partition
        stream_watermark = self.stream_watermark
        states = self.states
        field = self.entity_field
        if partition_late is None:
            partition_late = [self.clocks.behind(e) for e in events]
        for event, partition_watermark in zip(events, partition_late):
            t = event.time_ms
            entity = event.entity if default_entity else str(event.fields[field])
            previous = entity_max.get(entity)
            if partition_watermark is not None or (previous is not None and t < previous - lateness) \
                    or t < stream_watermark:
                own = NEVER if previous is None else previous - lateness
                out.append(LateEvent(event, max(own, partition_watermark or NEVER, stream_watermark)))
                continue
            if previous is None or t > previous:
                entity_max[entity] = t
                own = t - lateness
                if previous is not None and own > previous - lateness:
                    for state in states:
                        out.extend(state.close_entity(entity, own))
            for state in states:
                rows = state.add(entity, t, event.fields)
                if rows:
                    out.extend(rows)
            p = event.partition
            if t > partition_max.get(p, NEVER):
                partition_max[p] = t
        if progress:
            for p, t in progress.items():
                if t > partition_max.get(p, NEVER):
                    partition_max[p] = t
        for p, t in partition_max.items():
            self.progress.report(p, t, now_ms)
        slowest = self.progress.slowest(now_ms)
        if slowest != NEVER:
            stream = slowest - lateness
            if stream > self.stream_watermark:
                self.stream_watermark = stream
                for state in states:
                    out.extend(state.close_due(stream))
        return out

    def flush(self) -> list[FeatureRow]:
        """Close every open window (the inputs have ended)."""
        return [row for state in self.states for row in state.flush()]
