"""`ColumnarEngine.flush_later` (the features flow's end of input) writes what `flush` writes."""

from __future__ import annotations

import pickle
from unittest.mock import patch

from hypothesis import given, settings

from features.event_batch import EventBatch
from features.windows import columnar
from features.windows.columnar import ColumnarEngine
from tests.windows.test_columnar import LAST_N, LEGACY, SESSIONS, SETS, _canonical, streams


def _rows(windows) -> list:
    return [r for w in windows if w is not None for r in w.rows()]


@settings(max_examples=30, deadline=None)
@given(streams(), streams())
def test_flush_later_equals_flush(first, then) -> None:
    (batches, lateness), (more, _) = first, then
    engine = ColumnarEngine((*SETS, *LAST_N, *SESSIONS, *LEGACY), lateness, partitions=3)
    for events in batches:
        engine.process(EventBatch.of(events))
    eager = pickle.loads(pickle.dumps(engine))
    flushed = eager.flush()
    with patch.object(columnar, "FLUSH_CHUNK", 2):  # a few entities per chunk: many chunks per set
        later, rows = engine.flush_later()
    assert list(dict.fromkeys(name for name, _ in later)) == [name for name, _ in engine.panes]
    assert _canonical(_rows(windows() for _, windows in later) + rows) == \
        _canonical(_rows(flushed.windows) + flushed.rows)
    # Afterwards the engines decide lateness alike (watermarks are kept); the array-held sets
    # of `flush_later`'s engine start empty (see its docstring), so their windows may differ.
    for events in more:
        assert eager.process(EventBatch.of(events)).late.tolist() == engine.process(EventBatch.of(events)).late.tolist()


@settings(max_examples=15, deadline=None)
@given(streams())
def test_an_end_of_input_after_an_end_of_input_writes_nothing(first) -> None:
    """A run resumed from a snapshot taken after its bounded input ended reaches the end again
    with nothing new: its array-held sets were emptied (they hold no ids) while the shard
    still names its entities; the second end writes nothing and does not fail."""
    batches, lateness = first
    engine = ColumnarEngine((*SETS, *LAST_N, *SESSIONS), lateness, partitions=3)
    for events in batches:
        engine.process(EventBatch.of(events))
    with patch.object(columnar, "FLUSH_CHUNK", 2):
        later, _ = engine.flush_later()
        [windows() for _, windows in later]
        resumed = pickle.loads(pickle.dumps(engine))
        again, rows = resumed.flush_later()
    assert _rows(windows() for _, windows in again) + rows == []
