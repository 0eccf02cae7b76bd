"""`driftline tail`: print the messages of a topic, JSON pretty-printed."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from typing import TextIO

import orjson
from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, KafkaError, Message, TopicPartition

from dataflows.kafka.clients import client_config, new_client
from dataflows.kafka.io import list_partitions
from features.kafka_settings import KafkaSettings
from features.monitors.events import DRIFT_EVENT_SCHEMA, describe_message


def format_message(key: bytes | None, value: bytes | None, partition: int, offset: int, compact: bool) -> str:
    """One message as text: a header line and the value, pretty-printed when it is JSON.

    >>> print(format_message(b"a", b'{"x":1}', 0, 7, compact=True))
    [0:7] a {"x":1}
    """
    header = f"[{partition}:{offset}] {key.decode(errors='replace') if key is not None else '-'}"
    if value is None:
        return f"{header} (null)"
    try:
        parsed = orjson.loads(value)
        if isinstance(parsed, dict) and parsed.get("schema") == DRIFT_EVENT_SCHEMA:
            return f"{header} {describe_message(parsed)}"  # drift events read best as one line
        body = orjson.dumps(parsed, option=0 if compact else orjson.OPT_INDENT_2).decode()
    except orjson.JSONDecodeError:
        body = repr(value[:200])
    return f"{header} {body}" if compact else f"{header}\n{body}"


def tail_consumer_config(bootstrap: str, settings: KafkaSettings) -> dict[str, object]:
    """The properties of `tail`'s consumer (partitions assigned, nothing committed).

    >>> tail_consumer_config("k:9092", KafkaSettings((("client.id", "me"),)))["client.id"]
    'me'
    """
    return client_config(bootstrap, settings, {"group.id": "driftline-tail", "enable.auto.commit": "false",
                                               "enable.partition.eof": "true"})


def read_messages(bootstrap: str, topic: str, from_beginning: bool = True, follow: bool = False,
                  settings: KafkaSettings = KafkaSettings()) -> Iterator[Message]:
    """A topic's messages, partition by partition as they come.

    Without `follow` it stops at the end of every partition (or after 10 s without any
    message); with it, it waits for more.
    """
    partitions = list_partitions(bootstrap, topic, settings=settings)
    consumer = new_client(Consumer, tail_consumer_config(bootstrap, settings), settings)
    start = OFFSET_BEGINNING if from_beginning else OFFSET_END
    consumer.assign([TopicPartition(topic, p, start) for p in partitions])
    at_end: set[int] = set()
    idle_deadline = time.monotonic() + 10.0
    try:
        while True:
            msg = consumer.poll(0.5)
            if msg is None:
                if not follow and time.monotonic() > idle_deadline:
                    return
                continue
            error = msg.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    at_end.add(msg.partition())
                    if not follow and at_end >= set(partitions):
                        return
                    continue
                raise RuntimeError(f"error reading {topic}: {error}")
            at_end.discard(msg.partition())
            idle_deadline = time.monotonic() + 10.0
            yield msg
    finally:
        consumer.close()


def read_json(bootstrap: str, topic: str, settings: KafkaSettings = KafkaSettings()) -> list[tuple[bytes | None, dict]]:
    """Every JSON object now in `topic` as (key, parsed value), partition by partition; values
    that are not JSON objects (tombstones, foreign bytes) are skipped."""
    out = []
    for msg in read_messages(bootstrap, topic, settings=settings):
        value = msg.value()
        try:
            parsed = orjson.loads(value) if value else None
        except orjson.JSONDecodeError:
            continue
        if isinstance(parsed, dict):
            out.append((msg.key(), parsed))
    return out


def tail(bootstrap: str, topic: str, from_beginning: bool = True, follow: bool = False,
         max_messages: int | None = None, compact: bool = False, out: TextIO = sys.stdout,
         settings: KafkaSettings = KafkaSettings()) -> int:
    """Print a topic's messages; returns how many were printed.

    Without `follow` it stops at the end of every partition; with it, it waits for more.
    """
    printed = 0
    messages = read_messages(bootstrap, topic, from_beginning, follow, settings)
    try:
        for msg in messages:
            if max_messages is not None and printed >= max_messages:
                break
            out.write(format_message(msg.key(), msg.value(), msg.partition(), msg.offset(), compact) + "\n")
            printed += 1
    finally:
        messages.close()
    return printed
