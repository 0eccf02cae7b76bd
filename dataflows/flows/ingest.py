"""The ingestion stage every flow starts with: read the events, decode, dead-letter.

Valid events continue as `Event`s; each rejection becomes a dead-letter message on
`<topic>.dlq` holding the reason, the source position and the original bytes. A bad event
never stops the flow. The source is Kafka (`KafkaInput`) or a file (`JsonlInput`, for
replay); both yield the same `RawMessage`s, so everything after this stage is one code path.
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
from features.events import Event, EventDecoder, Rejection
from features.messages import SourcePosition, dead_letter, encode


def wall_clock_ms() -> int:
    """Milliseconds since the epoch, from the system clock."""
    return time.time_ns() // 1_000_000


def make_batch_decoder(
    config: Config, counters: FlowCounters, clock_ms: Callable[[], int] = wall_clock_ms
) -> Callable[[list[RawMessage]], list[Event | OutMessage]]:
    """A function decoding a batch of raw messages into events and dead-letter messages.

    It also counts what it saw: `events_in`, `valid`, `rejected.<reason>` and
    `unknown_category.<field>`.
    """
    decoder = EventDecoder(config.schema, config.source.limits)
    dlq_topic = config.source.dead_letter_topic

    def decode_batch(batch: list[RawMessage]) -> list[Event | OutMessage]:
        started = time.perf_counter()
        now_ms = clock_ms()
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


def ingest(flow: Dataflow, config: Config, source: Source, counters: FlowCounters,
           flow_name: str) -> tuple[Stream[Event], Stream[OutMessage]]:
    """Add the ingestion stage to `flow`: returns (valid events, dead-letter messages).

    Every flow counts its rejections, but only the flow named by `config.dead_letter_flow`
    (and the `ingest` flow, whose whole job they are) writes them: with several flows on one
    topic, each rejected event is dead-lettered once.
    """
    raw = op.input("events_in", flow, source)
    decoded = op.flat_map_batch("decode", raw, make_batch_decoder(config, counters))
    split = op.branch("split_rejected", decoded, lambda item: type(item) is Event)
    dead_letters = split.falses
    if not writes_dead_letters(config, flow_name):
        dead_letters = op.filter("dead_letters_owned_elsewhere", dead_letters, lambda _m: False)
    return split.trues, dead_letters


def build_ingest_flow(config: Config, source: Source, sink: Sink[OutMessage], counters: FlowCounters) -> Dataflow:
    """Ingestion alone (`driftline run ingest`): decode, dead-letter, count valid events."""
    flow = Dataflow("driftline_ingest")
    _events, dead_letters = ingest(flow, config, source, counters, "ingest")
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
