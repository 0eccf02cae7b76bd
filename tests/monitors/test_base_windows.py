"""Base windows per partition, merged per monitor: the same windows however events are
spread over partitions, late events kept out."""

from __future__ import annotations

import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from features.monitors.base_windows import PartitionWindows, WindowCloser, combine
from features.events import Event
from features.monitors.config import Monitor, ReferenceSpec
from features.summaries.window import summarize_columns

MIN = 60_000
MONITOR = Monitor("m", ("x",), ("c",), MIN, (MIN,), ReferenceSpec("first_windows"))

events_strategy = st.lists(
    st.tuples(st.integers(0, 5 * MIN), st.one_of(st.none(), st.floats(-100, 100)), st.sampled_from("ab"),
              st.integers(0, 2)),
    min_size=1, max_size=80)


def run(events: list[Event], partitions: int, batch: int) -> list:
    parts = {p: PartitionWindows((MONITOR,), lateness_ms=10**9) for p in range(partitions)}
    closer = WindowCloser(MONITOR, partitions)
    out = []
    by_partition = {p: [e for e in events if e.partition == p] for p in range(partitions)}
    for p in range(partitions):
        for i in range(0, len(by_partition[p]), batch):
            partials, late = parts[p].add(by_partition[p][i:i + batch])
            assert not late
            out += closer.add(p, parts[p].watermark(p), partials)
    for p in range(partitions):
        out += closer.add(p, -(2**62), parts[p].flush())
    return out + closer.flush()


@given(events_strategy, st.integers(1, 7))
def test_windows_do_not_depend_on_partitioning_or_batches(rows: list, batch: int) -> None:
    events = [Event("e", t, {"x": x, "c": c}, partition=p) for t, x, c, p in rows]
    one = run([Event(e.entity, e.time_ms, e.fields, partition=0) for e in events], 1, 1000)
    three = run(events, 3, batch)
    assert [w.start_ms for w, *_ in one] == [w.start_ms for w, *_ in three]
    assert [w.start_ms for w, *_ in one] == sorted({t - t % MIN for t, *_ in rows})
    for (a, *_), (b, *_) in zip(one, three):
        assert a.event_count == b.event_count
        xa, xb = a.columns["x"], b.columns["x"]
        assert (xa.count, xa.nulls, xa.min, xa.max) == (xb.count, xb.nulls, xb.min, xb.max)
        assert xa.total == pytest.approx(xb.total, abs=1e-6)
        assert a.columns["c"].counts == b.columns["c"].counts
        direct = summarize_columns(a.start_ms, a.end_ms,
                                   {"x": [x for t, x, c, p in rows if a.start_ms <= t < a.end_ms],
                                    "c": [c for t, x, c, p in rows if a.start_ms <= t < a.end_ms]}, ["x"], ["c"])
        assert a.columns["c"].counts == direct.columns["c"].counts and a.event_count == direct.event_count


def test_windows_close_with_the_slowest_partition_and_late_events_stay_out() -> None:
    part = PartitionWindows((MONITOR,), lateness_ms=5_000)
    closer = WindowCloser(MONITOR, partitions=2)
    partials, late = part.add([Event("a", t, {"x": 1.0, "c": "a"}, partition=0) for t in (1_000, 70_000, 3_000)])
    assert len(late) == 1 and late[0].watermark_ms == 65_000
    assert closer.add(0, part.watermark(0), partials) == []  # partition 1 has not spoken yet
    partials, _ = part.add([Event("b", 80_000, {"x": 2.0, "c": "b"}, partition=1)])
    closed = closer.add(1, part.watermark(1), partials)
    assert [(w.start_ms, w.event_count) for w, *_ in closed] == [(0, 1)]
    restored = pickle.loads(pickle.dumps((part, closer)))
    assert [w.event_count for w, *_ in restored[1].flush()] == [] and len(restored[0].flush()) == 2


def test_combine_refuses_different_windows() -> None:
    a = summarize_columns(0, MIN, {"x": [1.0]}, ["x"], [])
    with pytest.raises(ValueError, match="one window"):
        combine([a, summarize_columns(MIN, 2 * MIN, {"x": [1.0]}, ["x"], [])])


def test_an_idle_partition_stops_holding_windows_open_after_the_idle_time() -> None:
    p0, p1 = PartitionWindows((MONITOR,), 5_000), PartitionWindows((MONITOR,), 5_000)
    closer = WindowCloser(MONITOR, partitions=2, idle_ms=30_000)
    partials, _ = p0.add([Event("a", t, {"x": 1.0, "c": "a"}, partition=0) for t in (1_000, 70_000)])
    assert closer.add(0, p0.watermark(0), partials, now_ms=0) == []  # partition 1 awaited
    more, _ = p0.add([Event("a", 71_000, {"x": 1.0, "c": "a"}, partition=0)])
    assert [w.start_ms for w, *_ in closer.add(0, p0.watermark(0), more, now_ms=31_000)] == [0]
    # The idle partition wakes up with an event of the published window: counted, left out.
    late, _ = p1.add([Event("b", 2_000, {"x": 1.0, "c": "b"}, partition=1), Event("b", 90_000, {}, partition=1)])
    assert closer.add(1, p1.watermark(1), late, now_ms=32_000) == [] and closer.late_after_close == 1
    # Both partitions active again: the slowest one holds the next window until it passes.
    assert closer.stream_watermark(now_ms=33_000) == min(71_000, 90_000) - 5_000


def test_after_a_restart_every_partition_gets_a_fresh_idle_time() -> None:
    closer = WindowCloser(MONITOR, partitions=2, idle_ms=30_000)
    closer.add(0, 100_000, [], now_ms=0)
    closer.add(1, 50_000, [], now_ms=0)
    restored = pickle.loads(pickle.dumps(closer))
    restored.resumed(now_ms=10**9)  # hours later: without this, partition 1 would look idle
    assert restored.add(0, 200_000, [], now_ms=10**9 + 1) == []
    assert restored.stream_watermark(now_ms=10**9 + 1) == 50_000
