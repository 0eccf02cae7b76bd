"""The ingestion stage every flow starts with: read the events, decode, dead-letter.

Each batch of messages is decoded once into an `EventBatch` (columns; `BatchDecoder`);
each rejection becomes a dead-letter message on `<topic>.dlq` holding the reason, the
source position and the original bytes. A bad event never stops the flow. Every flow reads
the batches' columns (the model flow's steps that take one event at a time read a batch as
`Event`s, `EventBatch.events`). The source is Kafka
(`KafkaInput`) or a file (`JsonlInput`, for replay); both yield the same `RawMessage`s, so
everything after this stage is one code path.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

import bytewax.operators as op
from bytewax.dataflow import Dataflow, Stream
from bytewax.inputs import Source
from bytewax.outputs import Sink

from dataflows.counters import FlowCounters
from dataflows.kafka.io import OutMessage, RawMessage
from features.config import Config
from features.event_batch import BatchDecoder, EventBatch
from features.events import EventDecoder
from features.messages import SourcePosition, dead_letter, encode


def wall_clock_ms() -> int:
    """Milliseconds since the epoch, from the system clock."""
    return time.time_ns() // 1_000_000


def make_batch_decoder(
    config: Config, counters: FlowCounters, clock_ms: Callable[[], int] = wall_clock_ms,
    exact_numbers: bool = False,
) -> Callable[[list[RawMessage]], list[EventBatch | OutMessage]]:
    """A function decoding a batch of raw messages into one `EventBatch` and dead-letter messages
    (`exact_numbers`: see `BatchDecoder`).

    It also counts what it saw: `events_in`, `valid`, `rejected.<reason>` and
    `unknown_category.<field>`.
    """
    decoder = BatchDecoder(EventDecoder(config.schema, config.source.limits), exact_numbers)
    dlq_topic = config.source.dead_letter_topic

    def decode_batch(messages: list[RawMessage]) -> list[EventBatch | OutMessage]:
        started = time.perf_counter()
        now_ms = clock_ms()
        batch, rejections = decoder.decode([m.value for m in messages], now_ms, [m.partition for m in messages],
                                           [m.offset for m in messages])
        out: list[EventBatch | OutMessage] = [batch] if len(batch) else []
        rejected: Counter[str] = Counter()
        for i, rejection in rejections:
            msg = messages[i]
            rejected[rejection.reason] += 1
            position = SourcePosition(msg.topic, msg.partition, msg.offset, msg.timestamp_ms)
            out.append(OutMessage(dlq_topic, msg.key, encode(dead_letter(rejection, position, msg.key, msg.value,
                                                                         now_ms))))
        deltas = {"events_in": len(messages), "valid": len(batch)}
        deltas.update({f"rejected.{reason}": n for reason, n in rejected.items()})
        deltas.update({f"unknown_category.{name}": int(mask.sum()) for name, mask in batch.unknown.items()})
        counters.add(deltas)
        counters.observe("stage.decode", (time.perf_counter() - started,))
        return out

    return decode_batch


def writes_dead_letters(config: Config, flow_name: str) -> bool:
    """Whether the flow `flow_name` writes the events' dead letters (see `ingest`).

    >>> from features.config import parse_config
    >>> config = parse_config({"source": {"topic": "rides"},
    ...     "schema": {"entity": "a", "event_time": "ts", "fields": {"a": "string"}}})
    >>> writes_dead_letters(config, "ingest"), writes_dead_letters(config, "model")
    (True, False)
    """
    return flow_name in ("ingest", config.dead_letter_flow)


def ingest_batches(flow: Dataflow, config: Config, source: Source, counters: FlowCounters,
                   flow_name: str) -> tuple[Stream[EventBatch], Stream[OutMessage]]:
    """Add the ingestion stage to `flow`: returns (batches of valid events, dead-letter messages).

    Every flow counts its rejections, but only the flow named by `config.dead_letter_flow`
    (and the `ingest` flow, whose whole job they are) writes them: with several flows on one
    topic, each rejected event is dead-lettered once.
    """
    raw = op.input("events_in", flow, source)
    decoded = op.flat_map_batch("decode", raw, make_batch_decoder(config, counters))
    split = op.branch("split_rejected", decoded, lambda item: type(item) is EventBatch)
    dead_letters = split.falses
    if not writes_dead_letters(config, flow_name):
        dead_letters = op.filter("dead_letters_owned_elsewhere", dead_letters, lambda _m: False)
    return split.trues, dead_letters


def build_ingest_flow(config: Config, source: Source, sink: Sink[OutMessage], counters: FlowCounters) -> Dataflow:
    """Ingestion alone (`driftline run ingest`): decode, dead-letter, count valid events."""
    flow = Dataflow("driftline_ingest")
    _batches, dead_letters = ingest_batches(flow, config, source, counters, "ingest")
    op.output("out", dead_letters, sink)
    return flow


INGEST_COUNTERS = ("events_in", "valid", "rejected.", "unknown_category.")


def combined_counters(per_flow: list[FlowCounters]) -> FlowCounters:
    """The counters of several flows run over the same input, with the ingestion counts
    (which every flow makes of the same events) taken once, from the first flow.

    >>> a, b = FlowCounters(), FlowCounters()
    >>> a.add({"events_in": 5, "features_out": 2}); b.add({"events_in": 5, "drift_events_out": 1})
    >>> c = combined_counters([a, b]); c.get("events_in"), c.get("features_out"), c.get("drift_events_out")
    (5, 2, 1)
    """
    out = FlowCounters()
    if per_flow:
        out.started = per_flow[0].started
    for i, counters in enumerate(per_flow):
        out.add({k: v for k, v in counters.snapshot().items()
                 if i == 0 or not any(k == p or (p.endswith(".") and k.startswith(p)) for p in INGEST_COUNTERS)})
    return out
