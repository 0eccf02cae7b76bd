"""The online store's tee renders each batch once and writes the same messages to both sides."""

from __future__ import annotations

from dataflows.kafka.io import MessageBatch, OutMessage, out_messages
from dataflows.serving.sink import _TeePartition


class Recorder:
    """Stands in for the Kafka sink and the store writer: records what each was given."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, bytes | None, bytes]] = []
        self.older = 0

    def write_batch(self, items) -> None:
        self.seen += [tuple(m) for m in out_messages(items)]

    def write(self, items) -> int:
        self.seen += [tuple(m) for m in items]
        return len(items)


def test_a_batch_is_rendered_once_and_both_sides_get_it() -> None:
    renders = []

    def render():  # as the features flow's end-of-input batches: a second call finds nothing
        renders.append(1)
        return ([b"a", b"b"], [b"1", b"2"]) if len(renders) == 1 else ([], [])

    inner, store = Recorder(), Recorder()
    _TeePartition(inner, store, None).write_batch([OutMessage("t", b"k", b"0"), MessageBatch("t", render)])
    assert len(renders) == 1
    assert inner.seen == store.seen == [("t", b"k", b"0"), ("t", b"a", b"1"), ("t", b"b", b"2")]
