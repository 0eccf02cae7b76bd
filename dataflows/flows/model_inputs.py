"""The model flow's first step: events and labels decoded in one batch function.

Per-item Bytewax steps cost microseconds each, so the flow does not split its input by topic
with a Bytewax branch: this one function decodes a batch of both.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dataflows.counters import FlowCounters
from dataflows.flows.ingest import make_batch_decoder, writes_dead_letters
from dataflows.kafka.io import OutMessage, RawMessage
from features.config import Config
from features.event_batch import EventBatch
from features.events import Rejection
from features.messages import SourcePosition, dead_letter, encode
from features.models.labels import Label, LabelDecoder


def input_decoder(config: Config, counters: FlowCounters,
                  clock_ms: Callable[[], int]) -> Callable[[list[RawMessage]], list[tuple[str, Any]]]:
    """A batch function: events through the ingestion decoder, labels through theirs. Each
    output is `(part, (part, EventBatch | [Label, ...]))`: the batch's events or labels of one
    input partition, in partition order, keyed by its part name (`<partition>-<topic>`); or
    `("", ("", OutMessage))`
    for a dead letter: rejected labels go to `<labels topic>.dlq` (this flow is their only
    reader), rejected events to `<topic>.dlq` when this flow owns them (`Config.dead_letter_flow`).

    One output per partition, not per item: each output costs the next (keyed) step about a
    microsecond, and between processes it is pickled."""
    decode_events = make_batch_decoder(config, counters, clock_ms)
    events_topic = config.source.topic
    events_dlq = writes_dead_letters(config, "model")
    decoders = {spec.labels.topic: LabelDecoder(spec.labels, config.source.limits.max_event_bytes)
                for spec in config.models}

    def decode(batch: list[RawMessage]) -> list[tuple[str, Any]]:
        out: list[tuple[str, Any]] = []
        parts: dict[tuple[int, str], Any] = {}  # (partition, topic) -> EventBatch or [Label, ...]
        by_partition: dict[int, list[RawMessage]] = {}
        for m in batch:
            if m.topic == events_topic:
                by_partition.setdefault(m.partition, []).append(m)
        for partition, events in by_partition.items():
            for item in decode_events(events):
                if type(item) is EventBatch:
                    # What the next step reads (times, entities, the messages' bytes), and all
                    # it pickles when it runs in another process: not the decoded columns.
                    parts[partition, events_topic] = EventBatch(item.entities, item.times, item.partitions,
                                                                item.offsets, {}, item.raws)
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
