"""File input and output for `driftline replay`: the same flows, over JSONL files.

`JsonlInput` yields each line of a file as a `RawMessage` (partition 0, offset = line
number, starting at 0), exactly like a one-partition topic, and resumes from a line number;
`JsonlTopics` does so for several files, one per topic (events and labels), and
`JsonlPartitions` for a file per partition of a topic.
`TopicFiles` writes each `OutMessage` to `<dir>/<topic>.jsonl`, one value per line.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import IO

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from bytewax.outputs import DynamicSink, StatelessSinkPartition

from dataflows.kafka.io import MessageBatch, OutMessage, RawMessage, out_messages


class _LineReader(StatefulSourcePartition[RawMessage, int]):
    def __init__(self, path: Path, topic: str, start_line: int, batch_size: int, partition: int = 0) -> None:
        self._handle = path.open("rb")
        self._topic = topic
        self._partition = partition
        self._line = 0
        self._batch_size = batch_size
        while self._line < start_line and self._handle.readline():
            self._line += 1

    def next_batch(self) -> list[RawMessage]:
        batch: list[RawMessage] = []
        for _ in range(self._batch_size):
            line = self._handle.readline()
            if not line:
                break
            batch.append(RawMessage(self._topic, self._partition, self._line, 0, None, line.rstrip(b"\n")))
            self._line += 1
        if not batch:
            raise StopIteration()
        return batch

    def snapshot(self) -> int:
        return self._line

    def close(self) -> None:
        self._handle.close()


class JsonlPartitions(FixedPartitionedSource[RawMessage, int]):
    """JSONL files as input partitions, keyed by part name `<partition>-<topic>`: a file per
    partition of a topic, as Kafka would deliver them.

    >>> import tempfile
    >>> JsonlPartitions({"1-rides": Path(tempfile.mktemp()), "0-rides": Path(tempfile.mktemp())}).list_parts()
    ['0-rides', '1-rides']
    """

    def __init__(self, files: dict[str, Path], batch_size: int = 2000) -> None:
        self._files = dict(files)
        self._batch_size = batch_size

    def list_parts(self) -> list[str]:
        return sorted(self._files)

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _LineReader:
        index, topic = for_part.split("-", 1)
        return _LineReader(self._files[for_part], topic, resume_state or 0, self._batch_size, int(index))


class JsonlTopics(JsonlPartitions):
    """Several JSONL files, each a one-partition input named like its topic (events and labels).

    >>> import tempfile
    >>> JsonlTopics({"rides": Path(tempfile.mktemp()), "rides.labels": Path(tempfile.mktemp())}).list_parts()
    ['0-rides', '0-rides.labels']
    """

    def __init__(self, files: dict[str, Path], batch_size: int = 2000) -> None:
        super().__init__({f"0-{topic}": path for topic, path in files.items()}, batch_size)


class JsonlInput(JsonlTopics):
    """One JSONL file as a one-partition input named like the topic it stands for."""

    def __init__(self, path: Path, topic: str, batch_size: int = 2000) -> None:
        super().__init__({topic: path}, batch_size)


class _TopicFilesPartition(StatelessSinkPartition[OutMessage]):
    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._handles: dict[str, IO[bytes]] = {}

    def write_batch(self, items: Iterable[OutMessage | MessageBatch]) -> None:
        for topic, _key, value in out_messages(items):
            handle = self._handles.get(topic)
            if handle is None:
                handle = self._handles[topic] = (self._directory / f"{topic}.jsonl").open("ab")
            handle.write(value + b"\n")
        for handle in self._handles.values():
            handle.flush()

    def close(self) -> None:
        for handle in self._handles.values():
            handle.close()


class TopicFiles(DynamicSink[OutMessage]):
    """Writes every output topic to `<directory>/<topic>.jsonl` (appending)."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _TopicFilesPartition:
        self._directory.mkdir(parents=True, exist_ok=True)
        return _TopicFilesPartition(self._directory)
