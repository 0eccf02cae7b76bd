"""A message the producer cannot deliver stops the sink with the error, never silently."""

from __future__ import annotations

import pytest

from dataflows.kafka.broker import free_port
from dataflows.kafka.io import KafkaOutput, MessageBatch, OutMessage
from features.kafka_settings import KafkaSettings


def test_undeliverable_messages_raise_with_the_first_error() -> None:
    # Nothing listens on the port and messages time out at once: every delivery fails.
    settings = KafkaSettings((("message.timeout.ms", "200"),))
    sink = KafkaOutput(f"127.0.0.1:{free_port()}", settings).build("out", 0, 1)
    with pytest.raises(RuntimeError, match=r"^3 message\(s\) could not be delivered; first error: .*timed out"):
        sink.write_batch([OutMessage("t", b"k", b"v"), MessageBatch.of("t", [b"a", b"b"], [b"1", b"2"])])
        sink.close()  # flushes: the delivery reports arrive here at the latest
