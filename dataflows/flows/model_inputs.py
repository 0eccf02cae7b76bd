"""The model flow's first step: events and labels decoded in one batch function.

Per-item Bytewax steps cost microseconds each, so the flow does not split its input by topic
with a Bytewax branch: this one function decodes a batch of both.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from dataflows.counters import FlowCounters
from dataflows.flows.ingest import make_batch_decoder, writes_dead_letters
from dataflows.kafka.io import OutMessage, RawMessage
from features.config import Config
from features.event_batch import EventBatch
from features.events import Event, Rejection
from features.messages import SourcePosition, dead_letter, encode
from features.models.config import ModelSpec
from features.models.feature_inputs import fields_read
from features.models.labels import Label, LabelDecoder


class EventPart(NamedTuple):
    """One input partition's valid events of a batch, as the route step reads them: the event
    times, entities, and the columns of the fields the models read (`model_fields`), as
    `orjson.loads` reads them (`exact_numbers`: a JSON integer stays an integer in a
    prediction's inputs), so no event is parsed twice. Across processes it pickles as a few
    lists, not the messages' bytes."""

    partition: int
    times: np.ndarray  # int64
    entities: list[str]
    columns: dict[str, list[Any]]

    def __len__(self) -> int:  # type: ignore[override]
        return len(self.entities)

    def events(self) -> list[Event]:
        """Each event as an `Event` holding the fields read (`driftline training-set` replays them).

        >>> EventPart(2, np.array([5]), ["a"], {"x": [1.5]}).events()
        [Event(entity='a', time_ms=5, fields={'x': 1.5}, unknown_categories=(), partition=2, offset=0)]
        """
        names = list(self.columns)
        return [Event(entity, t, dict(zip(names, values)), partition=self.partition)
                for entity, t, *values in zip(self.entities, self.times.tolist(), *self.columns.values())]


def model_fields(config: Config) -> tuple[str, ...]:
    """The event fields the models read: join keys, segments, field inputs, and for a model with
    feature inputs the fields its feature sets' windows read (`feature_fields`).

    >>> from features.config import parse_config
    >>> config = parse_config({"source": {"topic": "t"}, "schema": {"entity": "a", "event_time": "ts",
    ...     "fields": {"a": "string", "id": "string", "x": "float", "y": "float"}}, "models": [{"name": "m",
    ...     "kind": "hoeffding_tree_classifier", "inputs": ["x"], "labels": {"key": "id", "field": "c"}}]})
    >>> model_fields(config)
    ('id', 'x')
    """
    names: list[str] = []
    for spec in config.models:
        names += [spec.labels.key, *([spec.segment_by] if spec.segment_by else []), *spec.field_inputs,
                  *feature_fields(config, spec)]
    return tuple(dict.fromkeys(names))


def feature_fields(config: Config, spec: ModelSpec) -> tuple[str, ...]:
    """The fields a model's feature inputs read (each event's, for the windows of its feature
    sets: `fields_read`), or none without feature inputs. Only these are copied per event
    from the decoder to the model shard (and kept in its ordering buffer and windows' buffer)."""
    return fields_read(config.feature_sets, spec.features, config.schema) if spec.features else ()


def input_decoder(config: Config, counters: FlowCounters,
                  clock_ms: Callable[[], int]) -> Callable[[list[RawMessage]], list[tuple[str, Any]]]:
    """A batch function: events through the ingestion decoder, labels through theirs. Each
    output is `(part, (part, EventPart | [Label, ...]))`: the batch's events or labels of one
    input partition, in partition order, keyed by its part name (`<partition>-<topic>`); or
    `("", ("", OutMessage))`
    for a dead letter: rejected labels go to `<labels topic>.dlq` (this flow is their only
    reader), rejected events to `<topic>.dlq` when this flow owns them (`Config.dead_letter_flow`).

    One output per partition, not per item: each output costs the next (keyed) step about a
    microsecond, and between processes it is pickled."""
    decode_events = make_batch_decoder(config, counters, clock_ms, exact_numbers=True)
    fields = model_fields(config)
    events_topic = config.source.topic
    events_dlq = writes_dead_letters(config, "model")
    decoders = {spec.labels.topic: LabelDecoder(spec.labels, config.source.limits.max_event_bytes)
                for spec in config.models}

    def decode(batch: list[RawMessage]) -> list[tuple[str, Any]]:
        out: list[tuple[str, Any]] = []
        parts: dict[tuple[int, str], Any] = {}  # (partition, topic) -> EventPart or [Label, ...]
        by_partition: dict[int, list[RawMessage]] = {}
        for m in batch:
            if m.topic == events_topic:
                by_partition.setdefault(m.partition, []).append(m)
        for partition, events in by_partition.items():
            for item in decode_events(events):
                if type(item) is EventBatch:
                    parts[partition, events_topic] = EventPart(partition, item.times, item.entities,
                                                               {name: item.values(name) for name in fields})
                elif events_dlq:
                    out.append(("", ("", item)))
        labels = [m for m in batch if m.topic != events_topic]
        if not labels:
            return _grouped(parts, out)
        rejected: dict[str, int] = {}
        now = clock_ms()
        for msg in labels:
            result = decoders[msg.topic].decode(msg.value, msg.partition, msg.offset)
            if type(result) is Label:
                parts.setdefault((msg.partition, msg.topic), []).append(result)
            else:
                assert isinstance(result, Rejection)
                name = f"model.labels_rejected.{result.reason}"
                rejected[name] = rejected.get(name, 0) + 1
                position = SourcePosition(msg.topic, msg.partition, msg.offset, msg.timestamp_ms)
                letter = dead_letter(result, position, msg.key, msg.value, now)
                out.append(("", ("", OutMessage(f"{msg.topic}.dlq", msg.key, encode(letter)))))
        counters.add({"model.labels_in": len(labels), **rejected})
        return _grouped(parts, out)

    return decode


def _grouped(parts: dict[tuple[int, str], Any], out: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """`out` (the dead letters) and then each partition's items, keyed by its part name.

    >>> _grouped({(0, "rides"): ["e1", "e2"], (1, "labels"): ["l1"]}, [("", ("", "dead"))])
    [('', ('', 'dead')), ('0-rides', ('0-rides', ['e1', 'e2'])), ('1-labels', ('1-labels', ['l1']))]
    """
    for (partition, topic), items in parts.items():
        part = f"{partition}-{topic}"
        out.append((part, (part, items)))
    return out
