"""The feature engine for one shard of entities: lateness, watermarks, window closing.

Event-time semantics (the same in a Kafka run, a replay, and with any number of workers):

- Each entity has its own watermark: the largest event time seen for it, less the allowed
  lateness. The stream has one too: the smallest, over input partitions, of the largest
  event time seen from that partition, less the lateness (the slowest partition holds it
  back, so a fast partition never makes a slow one's events late).
- An event is late when its time is behind the larger of the two; it is not aggregated and
  is returned as a `LateEvent` (the flow writes it to `<topic>.late`).
- A window closes (its features are emitted) when either watermark passes its end.

Because an entity's events arrive in order (Kafka keys by entity) and its watermark depends
only on them, lateness is decided the same way wherever the entity is processed; the stream
watermark only closes the windows of entities that have gone quiet.

>>> from features.feature_config import FeatureSet, FeatureSpec, WindowSpec
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
from features.feature_config import FeatureSet
from features.window_state import FeatureRow, new_window_state

_NEVER = -(2**62)


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
                 statics: Mapping[str, Mapping[str, Mapping[str, Any]]] | None = None) -> None:
        entities = {fs.entity for fs in feature_sets}
        if len(entities) != 1:
            raise ValueError(f"a shard engine serves feature sets of one entity field, got {sorted(entities)}")
        self.entity_field = entities.pop()
        self.lateness = lateness_ms
        self.states = [new_window_state(fs, (statics or {}).get(fs.name)) for fs in feature_sets]
        self.entity_max: dict[str, int] = {}
        self.partition_max: dict[int, int] = {}
        self.stream_watermark = _NEVER

    def process(self, events: Sequence[Event], default_entity: bool = True,
                progress: Mapping[int, int] | None = None) -> list[FeatureRow | LateEvent]:
        """Aggregate a batch of events (in arrival order); returns closed windows and late events.

        `default_entity` says the sets' entity field is the schema's entity (then
        `Event.entity` is used as is). `progress` maps input partitions to the largest event
        time read from them so far, including events routed to other shards, so a shard's
        stream watermark follows the whole stream and not only its own entities.
        """
        out: list[FeatureRow | LateEvent] = []
        lateness = self.lateness
        entity_max = self.entity_max
        partition_max = self.partition_max
        states = self.states
        field = self.entity_field
        for event in events:
            t = event.time_ms
            entity = event.entity if default_entity else str(event.fields[field])
            previous = entity_max.get(entity)
            watermark = self.stream_watermark
            if previous is not None and previous - lateness > watermark:
                watermark = previous - lateness
            if t < watermark:
                out.append(LateEvent(event, watermark))
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
            if t > partition_max.get(p, _NEVER):
                partition_max[p] = t
        if progress:
            for p, t in progress.items():
                if t > partition_max.get(p, _NEVER):
                    partition_max[p] = t
        if partition_max:
            stream = min(partition_max.values()) - lateness
            if stream > self.stream_watermark:
                self.stream_watermark = stream
                for state in states:
                    out.extend(state.close_due(stream))
        return out

    def flush(self) -> list[FeatureRow]:
        """Close every open window (the inputs have ended)."""
        return [row for state in self.states for row in state.flush()]
