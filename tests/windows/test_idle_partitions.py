"""Idle input partitions stop holding windows open after 30 s of wall time (`PartitionProgress`),
in the features engine, the sample windows and the drift windows alike; what an idle partition
delivers afterwards for a closed window is counted as late, never emitted twice."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from features.events import Event
from features.windows.config import FeatureSet, FeatureSpec, WindowSpec
from features.windows.engine import LateEvent, ShardEngine
from features.partition_progress import NEVER, PartitionProgress
from features.samples.config import SampleSet
from features.samples.windows import PaneSampler, SampleWindows
from features.windows.state import FeatureRow

MINUTE = 60_000
FEATURES = FeatureSet("s", "area", "features.s", WindowSpec("tumbling", MINUTE, MINUTE), (FeatureSpec("n", "count"),))


def event(partition: int, entity: str, t: int) -> Event:
    return Event(entity, t, {"area": entity}, partition=partition)


def rows(out: list) -> list[tuple[str, int, int]]:
    return [(r.entity, r.end_ms, r.values["n"]) for r in out if type(r) is FeatureRow]


def test_features_of_a_quiet_entity_close_once_the_silent_partition_counts_as_idle() -> None:
    engine = ShardEngine((FEATURES,), lateness_ms=0, partitions=2)
    # "quiet" has one event; "busy" keeps partition 0 going; partition 1 never delivers.
    assert rows(engine.process([event(0, "quiet", 1_000), event(0, "busy", 2_000)], now_ms=0)) == []
    busy = [event(0, "busy", t) for t in range(3_000, 200_000, 10_000)]
    # Within 30 s of wall time, partition 1 is awaited: only "busy" closes its own windows.
    assert {e for e, _, _ in rows(engine.process(busy[:10], now_ms=20_000))} == {"busy"}
    # After 30 s, the stream watermark follows partition 0 alone: the quiet entity's window closes.
    closed = rows(engine.process(busy[10:], now_ms=31_000))
    assert ("quiet", MINUTE, 1) in closed
    # Partition 1 wakes up with an event of that closed window: late, not a second row.
    out = engine.process([event(1, "quiet", 30_000)], now_ms=32_000)
    assert [type(r) for r in out] == [LateEvent] and out[0].watermark_ms >= MINUTE
    assert ("quiet", MINUTE, 1) not in rows(engine.flush())


def test_without_the_wall_clock_every_partition_is_waited_for() -> None:
    engine = ShardEngine((FEATURES,), lateness_ms=0, partitions=2)
    out = engine.process([event(0, "quiet", 1_000)] + [event(0, "busy", t) for t in range(3_000, 200_000, 10_000)])
    assert "quiet" not in {e for e, _, _ in rows(out)}
    assert ("quiet", MINUTE, 1) in rows(engine.flush())


def test_sample_windows_close_without_the_idle_partition_and_count_its_late_pane() -> None:
    spec = SampleSet("s", WindowSpec("tumbling", MINUTE, MINUTE), k=2, topic="samples.s")
    windows = SampleWindows(spec, lateness_ms=0, partitions=2)
    awake, sleepy = PaneSampler(spec), PaneSampler(spec)
    awake.add([event(0, "a", t) for t in range(0, 150_000, 5_000)])
    for start, pane in awake.release(150_000):
        windows.absorb(start, pane)
    assert windows.advance({0: 150_000}, now_ms=0) == []  # partition 1 awaited
    closed = windows.advance({0: 150_000}, now_ms=30_000)
    assert [(c.start_ms, c.end_ms) for c in closed] == [(0, MINUTE), (MINUTE, 2 * MINUTE)]
    sleepy.add([event(1, "b", 10_000), event(1, "b", 20_000)])
    for start, pane in sleepy.release(150_000):
        windows.absorb(start, pane)
    assert windows.late_after_close == 2
    for start, pane in awake.release_all():
        windows.absorb(start, pane)
    assert [(c.start_ms, c.end_ms) for c in windows.flush()] == [(2 * MINUTE, 3 * MINUTE)]


@given(st.lists(st.tuples(st.integers(0, 120_000), st.integers(0, 2), st.integers(0, 10**6)), max_size=40))
def test_progress_is_the_slowest_active_partition(reports: list[tuple[int, int, int]]) -> None:
    """Against a direct reading of the rule, for reports in wall-clock order."""
    progress = PartitionProgress(partitions=3, idle_ms=30_000)
    marks: dict[int, int] = {}
    last: dict[int, int] = {}
    reports = sorted(reports)
    for now, partition, mark in reports:
        progress.report(partition, mark, now)
        marks[partition] = max(mark, marks.get(partition, mark))
        last[partition] = now
        active = [m for p, m in marks.items() if now - last[p] < 30_000]
        if len(marks) < 3 and now - reports[0][0] < 30_000:
            want = NEVER
        else:
            want = min(active) if active else max(marks.values())
        assert progress.slowest(now) == want
        assert progress.slowest() == (min(marks.values()) if len(marks) == 3 else NEVER)


def test_model_join_shard_stops_waiting_for_a_silent_labels_partition() -> None:
    """A join shard of the model flow: the labels partition never delivers; after 30 s of wall
    time the watermark follows the events partition alone, and a label that then comes behind
    it is counted late instead of reaching the model shards out of order."""
    from dataflows.counters import FlowCounters
    import numpy as np

    from dataflows.flows.model import _JoinLogic, _JoinState
    from features.models.columns import EventColumns, LabelColumns
    from features.models.config import LabelSpec, ModelSpec

    spec = ModelSpec("m", "hoeffding_tree_classifier", "classification", ("x",),
                     LabelSpec("rides.labels", "id", "y", ttl_ms=60_000))
    clock = [0]
    counters = FlowCounters()
    join = _JoinLogic(_JoinState(spec, partitions=2, lateness_ms=1_000), spec, counters, lambda: clock[0])

    def event(t: int, key: str, x: float) -> EventColumns:
        times = np.array([t], dtype=np.int64)
        return EventColumns(times, times, [key], [None], ["a"], ([x],), None)

    def send(part: str, items: list, high: int) -> int:
        out, _ = join.on_batch([("m/j0", items, part, high)])
        return out[0][1][2]  # the watermark sent to the model shards

    assert send("0-rides", [event(5_000, "r1", 1.0)], 5_000) == NEVER
    clock[0] = 29_000
    assert send("0-rides", [event(9_000, "r2", 2.0)], 9_000) == NEVER
    clock[0] = 31_000
    assert send("0-rides", [], 20_000) == 19_000
    assert send("0-rides.labels", [LabelColumns.of([(6_000, "r1", None, True, 6_000)])], 6_000) == 19_000
    assert counters.get("model.late_labels") == 1
    # The labels partition now reports again: the watermark waits for it (it never goes back).
    assert send("0-rides.labels", [LabelColumns.of([(21_000, "r2", None, False, 21_000)])], 21_000) == 19_000
    assert send("0-rides", [], 40_000) == 20_000
