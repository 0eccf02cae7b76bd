"""How far the whole stream has come: the slowest input partition, idle partitions left out.

A flow's stream watermark waits for its slowest input partition. A Kafka partition that
receives nothing (few keys, a quiet producer, a labels topic with more partitions than
keys) would hold it back forever, so, as Flink's `withIdleness`, a partition that has
reported no progress for `idle_ms` of wall-clock time is left out until it reports again;
a partition that never reported is waited for `idle_ms` after the first report. Without
`now_ms` every partition is waited for, and a single partition (a replayed file) is never
left out: then the result does not depend on the clock.

>>> progress = PartitionProgress(partitions=2, idle_ms=30_000)
>>> progress.report(0, 200_000, now_ms=0); progress.slowest(now_ms=10_000)  # partition 1 awaited
-4611686018427387904
>>> progress.slowest(now_ms=40_000)  # partition 1 never reported: left out
200000
>>> progress.report(1, 150_000, now_ms=41_000); progress.slowest(now_ms=41_000)
150000
>>> progress.slowest(now_ms=60_000)  # partition 0 silent for 60 s: left out
150000
>>> progress.slowest(now_ms=75_000)  # every partition silent: as far as the furthest
200000
"""

from __future__ import annotations

from collections.abc import Hashable

NEVER = -(2**62)
IDLE_PARTITION_MS = 30_000  # wall-clock time after which a silent partition stops holding the stream back


class PartitionProgress:
    """Each input partition's progress mark (a time that only grows) and when it last reported."""

    def __init__(self, partitions: int, idle_ms: int = IDLE_PARTITION_MS) -> None:
        self.partitions = partitions
        self.idle_ms = idle_ms
        self.marks: dict[Hashable, int] = {}
        self.reported_at: dict[Hashable, int] = {}  # wall clock of each partition's last report
        self.first_report: int | None = None

    def report(self, partition: Hashable, mark: int, now_ms: int | None = None) -> None:
        """A partition's progress (kept if larger than before); `now_ms` is the wall clock."""
        if mark > self.marks.get(partition, NEVER):
            self.marks[partition] = mark
        if now_ms is not None:
            self.reported_at[partition] = now_ms
            if self.first_report is None:
                self.first_report = now_ms

    def slowest(self, now_ms: int | None = None) -> int:
        """The smallest mark over the partitions not idle at `now_ms` (all of them without
        `now_ms`); NEVER while a partition is still awaited."""
        marks = self.marks
        if now_ms is None:
            return min(marks.values()) if len(marks) >= self.partitions else NEVER
        if len(marks) < self.partitions and (self.first_report is None or now_ms - self.first_report < self.idle_ms):
            return NEVER
        idle, reported_at = self.idle_ms, self.reported_at
        active = [m for p, m in marks.items() if now_ms - reported_at.get(p, now_ms) < idle]
        return min(active) if active else max(marks.values(), default=NEVER)

    def resumed(self, now_ms: int) -> None:
        """After a restart from a snapshot: the wall-clock times are stale, so every known
        partition gets a fresh `idle_ms` to report before it counts as idle."""
        self.reported_at = {p: now_ms for p in self.marks}
        self.first_report = now_ms
