"""The columnar engine writes exactly what the per-event engine (the oracle) writes."""

from __future__ import annotations

import pickle

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import features.windows.panes
from features.event_batch import EventBatch
from features.events import Event
from features.windows.columnar import ColumnarEngine
from features.windows.config import FeatureSet, FeatureSpec, Filter, WindowSpec
from features.windows.engine import LateEvent, ShardEngine
from features.windows.state import FeatureRow

MINUTE = 60_000
ALL_AGGS = (
    FeatureSpec("n", "count"), FeatureSpec("total", "sum", "price"), FeatureSpec("avg", "mean", "price"),
    FeatureSpec("lo", "min", "price"), FeatureSpec("hi", "max", "price"), FeatureSpec("sd", "std", "price"),
    FeatureSpec("first", "first", "payment"), FeatureSpec("last", "last", "price"),
    FeatureSpec("p90", "quantile", "price", q=0.9), FeatureSpec("med", "median", "price"),
    FeatureSpec("kinds", "distinct", "payment"), FeatureSpec("cash", "share", "payment", value="cash"),
    FeatureSpec("per_s", "rate"), FeatureSpec("cards", "count", where=Filter("payment", frozenset({"card"}))),
    FeatureSpec("card_total", "sum", "price", where=Filter("payment", frozenset({"card"}))),
    FeatureSpec("units", "sum", "units"), FeatureSpec("units_hi", "max", "units"),
)
SETS = (
    FeatureSet("t1m", "area", "features.t1m", WindowSpec("tumbling", MINUTE, MINUTE), ALL_AGGS),
    FeatureSet("h3m", "area", "features.h3m", WindowSpec("hopping", 3 * MINUTE, MINUTE), ALL_AGGS),
    FeatureSet("h2m", "area", "features.h2m", WindowSpec("hopping", 2 * MINUTE, 30_000),
               (FeatureSpec("n", "count"), FeatureSpec("avg", "mean", "price"))),
)
LAST_N = (
    FeatureSet("last3", "area", "features.last3", WindowSpec("last_n", step_ms=MINUTE, n=3), ALL_AGGS),
    FeatureSet("last1", "area", "features.last1", WindowSpec("last_n", step_ms=30_000, n=1),
               (FeatureSpec("med", "median", "price"), FeatureSpec("per_s", "rate"))),
)
SESSIONS = (
    FeatureSet("s90", "area", "features.s90", WindowSpec("session", gap_ms=90_000), ALL_AGGS),
    FeatureSet("s20", "area", "features.s20", WindowSpec("session", gap_ms=20_000),
               (FeatureSpec("n", "count"), FeatureSpec("sd", "std", "price"), FeatureSpec("per_s", "rate"))),
)
LEGACY = (
    FeatureSet("sess", "area", "features.sess", WindowSpec("session", gap_ms=90_000), (FeatureSpec("n", "count"),),
               emit="update", update_every_ms=20_000),
    FeatureSet("upd", "area", "features.upd", WindowSpec("tumbling", MINUTE, MINUTE), (FeatureSpec("n", "count"),),
               emit="update", update_every_ms=20_000),
)


@st.composite
def streams(draw, partitions: int = 3):
    n = draw(st.integers(0, 120))
    entities = draw(st.lists(st.sampled_from([f"a{i}" for i in range(8)]), min_size=n, max_size=n))
    # Mostly in time order with jitter, some far behind or ahead; times of several hours in all.
    clock = draw(st.integers(0, 10 * MINUTE))
    events = []
    for i, entity in enumerate(entities):
        clock += draw(st.sampled_from([0, 500, 5_000, 20_000, 61_000, 7 * MINUTE]))
        t = max(0, clock + draw(st.sampled_from([0, 0, 0, -3_000, -15_000, -70_000, -5 * MINUTE])))
        price = draw(st.one_of(st.none(), st.floats(0, 100, allow_nan=False), st.integers(0, 50)))
        payment = draw(st.sampled_from(["card", "cash", "wallet", None]))
        units = draw(st.integers(-5, 5))
        events.append(Event(entity, t, {"area": entity, "price": price, "payment": payment, "units": units},
                            partition=draw(st.integers(0, partitions - 1)), offset=i))
    cuts = sorted(draw(st.lists(st.integers(0, n), max_size=6)))
    batches = [events[a:b] for a, b in zip([0, *cuts], [*cuts, n])]
    return batches, draw(st.sampled_from([0, 10_000, 45_000, 2 * MINUTE]))


def _canonical(rows: list[FeatureRow]) -> list[tuple]:
    """Rows as comparable tuples. Values must be equal exactly (sums and moments are accumulated
    event by event in both engines). A sum or min of a float field is a float in the columnar
    engine even when producers sent integers (the per-event engine kept Python's int): equal
    as numbers, so equal here."""
    return sorted((r.feature_set, r.entity, r.start_ms, r.end_ms, r.event_count, r.kind,
                   tuple(sorted(r.values.items()))) for r in rows)


def _run_oracle(sets, batches, lateness):
    engine = ShardEngine(sets, lateness, partitions=3)
    rows, late = [], []
    for batch in batches:
        for item in engine.process(batch):
            if type(item) is LateEvent:
                late.append((item.event.offset, item.watermark_ms))
            else:
                rows.append(item)
    return rows + engine.flush(), late


def _nearly(rows: list[FeatureRow]) -> list[tuple]:
    """Rows as comparable tuples with floats rounded to 12 significant digits (sums and std of
    merged sessions: the same numbers added in another order)."""
    def rounded(v):
        return float(f"{v:.11e}") if isinstance(v, float) else v
    return [(*r[:6], tuple((k, rounded(v)) for k, v in r[6])) for r in _canonical(rows)]


def _run_columnar(sets, batches, lateness, snapshot_every: int = 0, engines: list | None = None):
    engine = ColumnarEngine(sets, lateness, partitions=3)
    rows, late = [], []
    for i, events in enumerate(batches):
        batch = EventBatch.of(events)
        out = engine.process(batch)
        rows.extend(r for w in out.windows for r in w.rows())
        rows.extend(out.rows)
        late.extend(zip(batch.offsets[out.late].tolist(), out.late_watermarks.tolist()))
        if snapshot_every and i % snapshot_every == 0:
            engine = pickle.loads(pickle.dumps(engine))  # recovery: the state survives a snapshot
    flushed = engine.flush()
    if engines is not None:
        engines.append(engine)
    return rows + [r for w in flushed.windows for r in w.rows()] + flushed.rows, late


@pytest.fixture(params=["c", "numpy"])
def fold(request, monkeypatch):
    """With the compiled pane fold, and with its numpy equivalent (the fallback without a C compiler)."""
    if request.param == "numpy":
        monkeypatch.setattr(features.windows.panes, "_fold", None)
    return request.param


@pytest.mark.parametrize("sets", [SETS, LAST_N], ids=["panes", "last_n"])
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=streams())
def test_columnar_sets_equal_the_oracle(fold, sets, case):
    batches, lateness = case
    expected_rows, expected_late = _run_oracle(sets, batches, lateness)
    rows, late = _run_columnar(sets, batches, lateness, snapshot_every=2)
    assert sorted(late) == sorted(expected_late)
    assert _canonical(rows) == _canonical(expected_rows)


@settings(max_examples=300, deadline=None)
@given(case=streams())
def test_session_sets_equal_the_oracle(case):
    """Exactly, unless an event merged sessions: then sums and std to 12 significant digits."""
    batches, lateness = case
    expected_rows, expected_late = _run_oracle(SESSIONS, batches, lateness)
    engines: list[ColumnarEngine] = []
    rows, late = _run_columnar(SESSIONS, batches, lateness, snapshot_every=2, engines=engines)
    assert sorted(late) == sorted(expected_late)
    _assert_same(rows, expected_rows, engines[0])


def _assert_same(rows: list[FeatureRow], expected: list[FeatureRow], engine: ColumnarEngine) -> None:
    merges = sum(getattr(sets, "merges", 0) for _, sets in engine.panes)
    event("sessions merged" if merges else "no merge")
    if merges:
        assert _nearly(rows) == _nearly(expected)
    else:
        assert _canonical(rows) == _canonical(expected)


@settings(max_examples=100, deadline=None)
@given(streams())
def test_mixed_with_per_event_sets_equal_the_oracle(case):
    batches, lateness = case
    sets = SETS[:1] + LAST_N[:1] + SESSIONS[:1] + LEGACY
    expected_rows, expected_late = _run_oracle(sets, batches, lateness)
    engines: list[ColumnarEngine] = []
    rows, late = _run_columnar(sets, batches, lateness, engines=engines)
    assert sorted(late) == sorted(expected_late)
    _assert_same(rows, expected_rows, engines[0])


def test_state_is_bounded_under_churn():
    """400 short-lived entities at a time over 40,000: held entities, events and sessions stay near the live ones."""
    last_n = FeatureSet("last3", "area", "features.last3", WindowSpec("last_n", step_ms=MINUTE, n=3),
                        (FeatureSpec("med", "median", "price"),), state_ttl_ms=2 * MINUTE)
    engine = ColumnarEngine((*SETS[:2], last_n, *SESSIONS), 10_000, partitions=1)
    held, logged, sessions = [], [], []
    for step in range(100):
        t0 = step * 20_000
        # Each entity's events: two in one session, a third in a second session 25 s later.
        events = [Event(f"e{step * 400 + i}", t0 + i * 50 + dt, {"price": 1.0, "payment": "card", "units": 1})
                  for dt in (0, 1_000, 26_000) for i in range(400)]
        engine.process(EventBatch.of(events))
        held.append(engine.entities)
        logged.append(engine.panes[2][1].log_size)
        sessions.append(engine.panes[3][1].slots_held + engine.panes[4][1].slots_held)
    assert engine.evicted > 30_000
    assert max(held[50:]) <= 1.2 * max(held[10:50])  # a plateau, not growth
    assert max(logged[50:]) <= 1.2 * max(logged[10:50])
    assert max(sessions[50:]) <= 1.2 * max(sessions[10:50])
    assert max(held) < 5_000
    assert engine.ids.capacity < 6_000  # ids are reused


def test_update_sets_release_their_entities_under_churn():
    """Per-event sets with updates release an entity once its windows closed and its pacing is past."""
    engine = ColumnarEngine((*LEGACY, SETS[0]), 10_000, partitions=1)
    held = []
    for step in range(60):
        t0 = step * 20_000
        events = [Event(f"e{step * 400 + i}", t0 + i * 50, {"price": 1.0, "payment": "card", "units": 1})
                  for i in range(400)]
        engine.process(EventBatch.of(events))
        held.append(engine.entities)
    assert engine.evicted > 20_000
    assert max(held[30:]) <= 1.2 * max(held[10:30])
    assert all(len(state.last_update) <= max(held) for state in engine.legacy)


CHANGES = (
    FeatureSet("h3m", "area", "features.h3m", WindowSpec("hopping", 3 * MINUTE, MINUTE), ALL_AGGS),
    FeatureSet("last3", "area", "features.last3", WindowSpec("last_n", step_ms=MINUTE, n=3),
               (FeatureSpec("med", "median", "price"), FeatureSpec("n", "count"))),
)


@settings(max_examples=200, deadline=None)
@given(streams())
def test_emit_changes_carries_the_same_information(case):
    """With emit = "changes", the latest row written at or before each window end holds that window's
    final values; rows are only written when values change; a hopping entity's emptied window is written."""
    from dataclasses import replace

    batches, lateness = case
    changed_sets = tuple(replace(fs, name=fs.name + "_c", emit="changes") for fs in CHANGES)
    rows, _ = _run_columnar(CHANGES + changed_sets, batches, lateness, snapshot_every=2)
    final = {}
    changes = {}
    for r in rows:
        target = changes if r.feature_set.endswith("_c") else final
        target.setdefault((r.feature_set.removesuffix("_c"), r.entity), []).append(r)
    assert set(changes) == set(final)
    for key, finals in final.items():
        written = sorted(changes[key], key=lambda r: r.end_ms)
        for before, after in zip(written, written[1:]):
            assert before.values != after.values  # only changes are written
        for f in finals:
            latest = [c for c in written if c.end_ms <= f.end_ms][-1]
            assert latest.values == f.values  # the same information
        ends = {f.end_ms for f in finals}
        for c in written:
            assert c.end_ms in ends or (key[0] == "h3m" and c.event_count == 0)
        if key[0] == "h3m":  # the entity's windows end empty, once
            assert written[-1].event_count == 0 and written[-1].end_ms > max(ends)
    assert sum(map(len, changes.values())) <= sum(map(len, final.values())) + len(final)


def test_a_snapshot_of_another_state_layout_is_refused_with_a_message():
    """A recovery snapshot pickled by a driftline whose engine laid its state out differently
    stops the flow with what to do, instead of failing later on a missing attribute."""
    from dataflows.flows.features import resumable

    engine = ColumnarEngine(SETS, 10_000, partitions=3)
    assert resumable(pickle.loads(pickle.dumps(engine))) is not None
    del engine.state_layout  # as pickled before layouts were numbered
    with pytest.raises(RuntimeError, match="new --recovery-dir"):
        resumable(pickle.loads(pickle.dumps(engine)))


def test_entities_with_only_late_events_hold_no_state():
    """An entity whose every event is late gets no window: its id is released at once, so a
    stream of late stragglers of ever new entities does not grow the shard's state."""
    engine = ColumnarEngine(SETS + LAST_N[:1], 10_000, partitions=1)
    engine.process(EventBatch.of([Event("a", 10 * MINUTE, {"area": "a", "price": 1.0})]))
    stragglers = [Event(f"s{i}", MINUTE, {"area": f"s{i}", "price": 1.0}) for i in range(500)]
    out = engine.process(EventBatch.of(stragglers))
    assert len(out.late) == 500
    assert engine.entities == 1
    later = engine.process(EventBatch.of([Event("s1", 10 * MINUTE + 1, {"area": "s1", "price": 2.0})]))
    assert not len(later.late) and engine.entities == 2


def test_a_last_n_boundary_added_twice_is_written_once():
    """Events behind their entity's latest boundary add theirs without a lookup, so a boundary
    can be pending twice: it is still one row, over the same events as the oracle's."""
    sets = LAST_N[:1]
    events = [Event("a", t, {"area": "a", "price": float(i), "payment": "card", "units": 1}, offset=i)
              for i, t in enumerate([10_000, 61_000, 20_000, 30_000, 125_000])]
    batches = [events[:2], events[2:3], events[3:4], events[4:]]
    rows, _ = _run_columnar(sets, batches, 2 * MINUTE)
    expected, _ = _run_oracle(sets, batches, 2 * MINUTE)
    assert [(r.end_ms, r.event_count) for r in sorted(rows, key=lambda r: r.end_ms)] == [
        (MINUTE, 3), (2 * MINUTE, 3), (3 * MINUTE, 3)]
    assert _canonical(rows) == _canonical(expected)


def test_a_last_n_snapshot_with_the_old_set_of_pending_pairs_resumes_without_it():
    """Snapshots made before the pending pairs lost their Python set carry one: it is dropped on
    resume, and the set goes on writing what it would have written."""
    sets = LAST_N[:1]
    events = [Event("a", t, {"area": "a", "price": 1.0, "payment": "card", "units": 1}, offset=i)
              for i, t in enumerate([10_000, 61_000, 125_000])]
    engine = ColumnarEngine(sets, 0, partitions=1)
    first = engine.process(EventBatch.of(events[:2]))
    (_, last), = engine.panes
    last._pending_keys = {(0, 2 * MINUTE)}  # as the previous code held its pending pair
    engine = pickle.loads(pickle.dumps(engine))
    (_, last), = engine.panes
    assert not hasattr(last, "_pending_keys")
    then = engine.process(EventBatch.of(events[2:]))
    assert [(r.end_ms, r.event_count) for out in (first, then) for w in out.windows for r in w.rows()] == [
        (MINUTE, 1), (2 * MINUTE, 2)]


@pytest.mark.parametrize("batches", [[[0, 420_000]], [[420_000, 0], [700_000], [800_000]]],
                         ids=["one close", "across closes"])
def test_emit_changes_writes_the_empty_window_of_a_gap_between_panes(batches):
    """An entity quiet for longer than the window, with events before and after: the first
    window of the gap is written empty, or its readers would keep the earlier values through it."""
    from dataclasses import replace

    hopping = replace(CHANGES[0], emit="changes")
    events = [[Event("a", t, {"area": "a", "price": 1.0, "payment": "card", "units": 1}, offset=t) for t in batch]
              for batch in batches]
    rows, _ = _run_columnar((hopping,), events, 500_000)
    written = [(r.end_ms, r.event_count) for r in sorted(rows, key=lambda r: r.end_ms)]
    assert written[:3] == [(MINUTE, 1), (4 * MINUTE, 0), (8 * MINUTE, 1)]
