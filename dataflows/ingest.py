"""The ingestion stage every flow starts with: read the events topic, decode, dead-letter.

Valid events continue as `Event`s; each rejection becomes a dead-letter message on
`<topic>.dlq` holding the reason, the source position and the original bytes. A bad event
never stops the flow.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

import bytewax.operators as op
from bytewax.dataflow import Dataflow, Stream

from dataflows.counters import FlowCounters
from dataflows.kafka_io import KafkaInput, KafkaOutput, OutMessage, RawMessage
from features.config import Config
from features.events import Event, EventDecoder, Rejection
from features.messages import SourcePosition, dead_letter, encode


def make_batch_decoder(
    config: Config, counters: FlowCounters, clock_ms: Callable[[], int] | None = None
) -> Callable[[list[RawMessage]], list[Event | OutMessage]]:
    """A function decoding a batch of raw messages into events and dead-letter messages.

    It also counts what it saw: `events_in`, `valid`, `rejected.<reason>` and
    `unknown_category.<field>`.
    """
    decoder = EventDecoder(config.schema, config.source.limits)
    dlq_topic = config.source.dead_letter_topic
    now = clock_ms or (lambda: time.time_ns() // 1_000_000)

    def decode_batch(batch: list[RawMessage]) -> list[Event | OutMessage]:
        now_ms = now()
        out: list[Event | OutMessage] = []
        rejected: Counter[str] = Counter()
        unknown: Counter[str] = Counter()
        decode = decoder.decode
        for msg in batch:
            result = decode(msg.value, now_ms, msg.partition, msg.offset)
            if type(result) is Event:
                if result.unknown_categories:
                    unknown.update(result.unknown_categories)
                out.append(result)
            else:
                assert isinstance(result, Rejection)
                rejected[result.reason] += 1
                position = SourcePosition(msg.topic, msg.partition, msg.offset, msg.timestamp_ms)
                letter = dead_letter(result, position, msg.key, msg.value, now_ms)
                out.append(OutMessage(dlq_topic, msg.key, encode(letter)))
        deltas = {"events_in": len(batch), "valid": len(batch) - sum(rejected.values())}
        deltas.update({f"rejected.{reason}": n for reason, n in rejected.items()})
        deltas.update({f"unknown_category.{field}": n for field, n in unknown.items()})
        counters.add(deltas)
        return out

    return decode_batch


def ingest(flow: Dataflow, config: Config, bootstrap: str, counters: FlowCounters,
           stop_at_end: bool = False) -> Stream[Event]:
    """Add the ingestion stage to `flow`; returns the stream of valid events."""
    raw = op.input("events_in", flow, KafkaInput(bootstrap, [config.source.topic], stop_at_end=stop_at_end))
    decoded = op.flat_map_batch("decode", raw, make_batch_decoder(config, counters))
    split = op.branch("split_rejected", decoded, lambda item: type(item) is Event)
    op.output("dead_letters_out", split.falses, KafkaOutput(bootstrap))
    return split.trues


def ingest_flow(config: Config, bootstrap: str, counters: FlowCounters, stop_at_end: bool = False) -> Dataflow:
    """Ingestion alone (`driftline run ingest`): decode, dead-letter, count valid events."""
    flow = Dataflow("driftline_ingest")
    events = ingest(flow, config, bootstrap, counters, stop_at_end)
    # Nothing downstream yet: the events are counted by the decoder and dropped here.
    op.flat_map_batch("discard", events, lambda batch: [])
    return flow
