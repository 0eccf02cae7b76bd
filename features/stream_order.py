"""Put items from several senders back into one deterministic order: event time, then a tie-break.

Each sender reports a watermark with its items, promising that nothing it sends later is
earlier than that. Items are released in (time, rank, tie-break) order once every sender's
watermark has passed them, so the released sequence is the same however the senders'
messages interleave. This is what makes the model flow's predict/learn sequence the same in
a Kafka run, a replay, and with any number of workers.

Items come as columns (times, ranks, tie-breaks, any payload columns) and leave as
entries, `(time, rank, tie-break, arrival number, *payload)`: the entries are built and
sorted in C (`zip`, `list.sort`), not item by item in Python.

>>> order = OrderedRelease(senders=2)
>>> order.push([20, 10, 10], [0, 0, 1], ["b", "a", "a"], ["b@20", "a@10", "a@10 label"])
>>> order.mark("s1", 30); order.release()
[]
>>> order.mark("s2", 15); [entry[4] for entry in order.release()]
['a@10', 'a@10 label']
>>> order.flush()
[(20, 0, 'b', 1, 'b@20')]
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from typing import Any

from features.partition_progress import NEVER


Entry = tuple[Any, ...]  # (time, rank, tie-break, arrival number, *payload)


class OrderedRelease:
    """Waiting items and the latest watermark of each sender.

    Items wait in sorted runs, one per push (a sender's items are nearly ordered: timsort is
    linear on them). A release takes the due prefix of each run and sorts only those, so an
    item that waits through many releases is not sorted again at each (as one sorted list of
    everything waiting would be); a heap would cost more per item.
    """

    MAX_RUNS = 64  # beyond this many runs, they are merged into one: a release visits each run

    def __init__(self, senders: int) -> None:
        self.senders = senders
        self.runs: list[list[Entry]] = []
        self.marks: dict[str, int] = {}
        self.seq = 0  # keeps equal keys in arrival order, and items out of comparisons

    def push(self, times: Sequence[int], ranks: Iterable[int], keys: Sequence[str], *columns: Iterable[Any]) -> None:
        """Add one run of items as columns: their times, ranks (at equal times a lower rank
        comes first: the model flow's events before labels), tie-breaks and payload columns.
        A sender's batch is best one run: a release visits every run."""
        n = len(keys)
        if not n:
            return
        seq = self.seq
        run = list(zip(times, ranks, keys, range(seq + 1, seq + n + 1), *columns))
        run.sort()  # the arrival numbers are unique: comparisons never reach the payload
        self.seq = seq + n
        runs = self.runs
        runs.append(run)
        if len(runs) > self.MAX_RUNS:
            merged = [entry for run in runs for entry in run]
            merged.sort()
            self.runs = [merged]

    def mark(self, sender: str, watermark: int) -> None:
        """Record a sender's watermark (it only moves forward)."""
        if watermark > self.marks.get(sender, NEVER):
            self.marks[sender] = watermark

    @property
    def watermark(self) -> int:
        """Every item earlier than this has been pushed (NEVER until every sender reported)."""
        if len(self.marks) < self.senders:
            return NEVER
        return min(self.marks.values())

    def release(self) -> list[Entry]:
        """The entries of the items earlier than the watermark, in order."""
        bound = self.watermark
        if not self.runs or bound == NEVER:
            return []
        due: list[Entry] = []
        kept = []
        for run in self.runs:
            cut = bisect.bisect_left(run, (bound,))
            if cut == len(run):
                due += run
                continue
            if cut:
                due += run[:cut]
                del run[:cut]
            kept.append(run)
        self.runs = kept
        due.sort()  # merges the runs' due prefixes
        return due

    def flush(self) -> list[Entry]:
        """The entries of every remaining item, in order (the inputs have ended)."""
        due = [entry for run in self.runs for entry in run]
        due.sort()
        self.runs = []
        return due
