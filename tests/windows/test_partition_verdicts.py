"""Partition lateness for a batch (`partition_verdicts`) is `PartitionClocks.behind` event by event."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from features.events import Event
from features.partition_progress import NEVER
from features.windows.columnar import partition_verdicts
from features.windows.engine import PartitionClocks

EVENTS = st.lists(st.tuples(st.integers(0, 2), st.integers(0, 200)), max_size=60)


@given(EVENTS, st.lists(st.integers(1, 20), max_size=8), st.integers(0, 30), st.booleans())
def test_batches_decide_as_one_event_at_a_time(events: list[tuple[int, int]], cuts: list[int], lateness: int,
                                               one_partition: bool) -> None:
    if one_partition:  # the flow's steps: every batch from one partition (the fast path)
        events = [(0, t) for _, t in events]
    clocks = PartitionClocks(lateness)
    expected = [clocks.behind(Event("e", t, {}, partition=p)) for p, t in events]
    high: dict[int, int] = {}
    got: list[int | None] = []
    i = 0
    for size in [*cuts, len(events)]:  # the stream cut into batches
        part = events[i: i + size]
        i += len(part)
        if part:
            verdicts = partition_verdicts(high, lateness, np.array([p for p, _ in part]), np.array([t for _, t in part]))
            got += [None if v == NEVER else v for v in verdicts.tolist()]
    assert got == expected
    assert high == clocks.high
