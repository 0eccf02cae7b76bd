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


def test_a_sink_stopped_in_the_middle_of_a_batch_closes_without_waiting_for_the_broker() -> None:
    """A batch interrupted half-way (SIGTERM raises out of `write_batch`) is in no snapshot and
    a restart writes it again: `close` gives what is queued a bounded chance instead of
    waiting, as a complete run's close does, for a broker that cannot answer (nothing listens
    here; messages would wait the 5-minute delivery timeout)."""
    import threading

    sink = KafkaOutput(f"127.0.0.1:{free_port()}").build("out", 0, 1)

    def items():
        yield OutMessage("t", b"k", b"v")
        raise KeyboardInterrupt  # as the SIGTERM handler's exception, mid-batch

    with pytest.raises(KeyboardInterrupt):
        sink.write_batch(items())
    closing = threading.Thread(target=sink.close, daemon=True)
    closing.start()
    closing.join(60)
    assert not closing.is_alive(), "close() waited for an unreachable broker after an interrupted batch"
