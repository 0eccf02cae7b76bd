"""The feature engine against an independent reference computed with plain Python group-bys.

Events are fed one at a time from a single partition, so the watermark after each event is
simply (largest event time so far) - lateness, and the reference can decide lateness the
same way without knowing anything about the engine's internals.
"""

from __future__ import annotations

import math
import random
import statistics
from collections import defaultdict
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features.events import Event
from features.windows.config import FeatureSet, FeatureSpec, Filter, WindowSpec
from features.windows.engine import LateEvent, ShardEngine
from features.windows.state import FeatureRow

LATENESS = 5_000
FEATURES = (
    FeatureSpec("n", "count"),
    FeatureSpec("total", "sum", field="price"),
    FeatureSpec("avg", "mean", field="price"),
    FeatureSpec("lo", "min", field="price"),
    FeatureSpec("hi", "max", field="price"),
    FeatureSpec("sd", "std", field="price"),
    FeatureSpec("first_price", "first", field="price"),
    FeatureSpec("last_price", "last", field="price"),
    FeatureSpec("payments", "distinct", field="payment"),
    FeatureSpec("p90", "quantile", field="price", q=0.9),
    FeatureSpec("med", "median", field="price"),
    FeatureSpec("per_s", "rate"),
    FeatureSpec("cash_share", "share", field="payment", value="cash"),
    FeatureSpec("card_rides", "count", where=Filter("payment", frozenset({"card"}))),
    FeatureSpec("card_avg", "mean", field="price", where=Filter("payment", frozenset({"card"}))),
)
WINDOWS = {
    "tumbling": WindowSpec("tumbling", length_ms=10_000, step_ms=10_000),
    "hopping": WindowSpec("hopping", length_ms=30_000, step_ms=10_000),
    "session": WindowSpec("session", gap_ms=4_000),
    "last_n": WindowSpec("last_n", n=4, step_ms=10_000),
}


def feature_set(kind: str) -> FeatureSet:
    return FeatureSet(kind, "area", f"features.{kind}", WINDOWS[kind], FEATURES)


# ---------------------------------------------------------------- the reference


def reference_late(events: list[Event], lateness: int) -> list[bool]:
    """Late iff behind (largest event time seen before it) - lateness."""
    flags, high = [], None
    for e in events:
        flags.append(high is not None and e.time_ms < high - lateness)
        high = e.time_ms if high is None else max(high, e.time_ms)
    return flags


def reference_values(chosen: list[tuple[int, Event]], window_ms: int) -> tuple[dict[str, Any], int]:
    """Aggregations over (arrival, event) pairs, computed directly."""
    events = [e for _, e in chosen]
    prices = [e.fields["price"] for e in events if e.fields.get("price") is not None]
    payments = [e.fields["payment"] for e in events]
    card = [e for e in events if e.fields["payment"] == "card"]
    card_prices = [e.fields["price"] for e in card if e.fields.get("price") is not None]
    priced = [(e.time_ms, i, e.fields["price"]) for i, e in chosen if e.fields.get("price") is not None]
    values = {
        "n": len(events),
        "total": float(sum(prices)),
        "avg": statistics.fmean(prices) if prices else None,
        "lo": min(prices) if prices else None,
        "hi": max(prices) if prices else None,
        "sd": statistics.stdev(prices) if len(prices) > 1 else None,
        "first_price": min(priced, key=lambda x: (x[0], x[1]))[2] if priced else None,
        "last_price": max(priced, key=lambda x: (x[0], x[1]))[2] if priced else None,
        "payments": len(set(payments)),
        "p90": float(np.quantile(prices, 0.9)) if prices else None,
        "med": float(np.quantile(prices, 0.5)) if prices else None,
        "per_s": len(events) / (window_ms / 1000),
        "cash_share": payments.count("cash") / len(payments) if payments else None,
        "card_rides": len(card),
        "card_avg": statistics.fmean(card_prices) if card_prices else None,
    }
    return values, len(events)


def reference(kind: str, events: list[Event], lateness: int) -> dict[tuple[str, int], tuple[int, dict, int]]:
    """(entity, window end) -> (window start, values, event count) for every window."""
    kept = [(i, e) for i, (e, late) in enumerate(zip(events, reference_late(events, lateness))) if not late]
    by_entity: dict[str, list[tuple[int, Event]]] = defaultdict(list)
    for i, e in kept:
        by_entity[e.entity].append((i, e))
    out = {}
    spec = WINDOWS[kind]
    for entity, items in by_entity.items():
        items.sort(key=lambda x: (x[1].time_ms, x[0]))
        if kind == "tumbling":
            groups = defaultdict(list)
            for i, e in items:
                groups[e.time_ms // spec.length_ms * spec.length_ms].append((i, e))
            for start, chosen in groups.items():
                out[(entity, start + spec.length_ms)] = (start, *reference_values(chosen, spec.length_ms))
        elif kind == "hopping":
            ends = {(e.time_ms // spec.step_ms + j) * spec.step_ms
                    for _, e in items for j in range(1, spec.length_ms // spec.step_ms + 1)}
            for end in ends:
                chosen = [(i, e) for i, e in items if end - spec.length_ms <= e.time_ms < end]
                out[(entity, end)] = (end - spec.length_ms, *reference_values(chosen, spec.length_ms))
        elif kind == "session":
            session = [items[0]]
            for item in items[1:]:
                if item[1].time_ms - session[-1][1].time_ms < spec.gap_ms:
                    session.append(item)
                else:
                    start, end = session[0][1].time_ms, session[-1][1].time_ms + spec.gap_ms
                    out[(entity, end)] = (start, *reference_values(session, end - start))
                    session = [item]
            start, end = session[0][1].time_ms, session[-1][1].time_ms + spec.gap_ms
            out[(entity, end)] = (start, *reference_values(session, end - start))
        else:
            boundaries = {(e.time_ms // spec.step_ms + 1) * spec.step_ms for _, e in items}
            for b in boundaries:
                chosen = [(i, e) for i, e in items if e.time_ms < b][-spec.n:]
                start = chosen[0][1].time_ms
                out[(entity, b)] = (start, *reference_values(chosen, b - start))
    return out


# ---------------------------------------------------------------- helpers


def run_engine(kind: str, events: list[Event], batch: int = 1,
               partitions: int = 1) -> tuple[list[FeatureRow], list[LateEvent]]:
    engine = ShardEngine((feature_set(kind),), LATENESS, partitions=partitions)
    results: list[Any] = []
    for i in range(0, len(events), batch):
        results.extend(engine.process(events[i:i + batch]))
    results.extend(engine.flush())
    rows = [r for r in results if isinstance(r, FeatureRow)]
    late = [r for r in results if isinstance(r, LateEvent)]
    return rows, late


def assert_close(actual: dict, expected: dict, context: object) -> None:
    assert actual.keys() == expected.keys(), context
    for name, want in expected.items():
        got = actual[name]
        if want is None or got is None:
            assert got is None and want is None, (context, name, got, want)
        else:
            assert math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-9), (context, name, got, want)


def stream(seed: int, count: int = 400, entities: int = 4, jitter: int = 1_500, late_every: int = 23,
           partitions: int = 1, behind: tuple[int, int] = (15_000, 40_000)) -> list[Event]:
    """Events ~100 ms apart with jitter, some far behind (late), nullable prices."""
    rng = random.Random(seed)
    events = []
    for i in range(count):
        t = 1_000_000 + i * 100 + rng.randint(-jitter, jitter)
        if i % late_every == late_every - 1:
            t -= rng.randint(*behind)
        entity = f"e{rng.randrange(entities)}"
        price = None if rng.random() < 0.05 else round(rng.uniform(1, 100), 2)
        fields = {"area": entity, "price": price, "payment": rng.choice(["card", "cash", "wallet"])}
        events.append(Event(entity, t, fields, partition=int(entity[1:]) % partitions, offset=i))
    return events


# ---------------------------------------------------------------- tests


@pytest.mark.parametrize("kind", sorted(WINDOWS))
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_matches_reference(kind: str, seed: int) -> None:
    events = stream(seed)
    rows, late = run_engine(kind, events)
    expected = reference(kind, events, LATENESS)
    got = {(r.entity, r.end_ms): r for r in rows}
    assert len(got) == len(rows), "a window was emitted twice"
    assert got.keys() == expected.keys()
    for key, (start, values, count) in expected.items():
        row = got[key]
        assert row.start_ms == start and row.event_count == count, key
        assert_close(row.values, values, (kind, key))
    late_expected = [e for e, flag in zip(events, reference_late(events, LATENESS)) if flag]
    assert [x.event for x in late] == late_expected
    assert len(late_expected) > 0


@settings(max_examples=40)
@given(st.data())
def test_matches_reference_on_arbitrary_streams(data: st.DataObject) -> None:
    kind = data.draw(st.sampled_from(sorted(WINDOWS)))
    times = data.draw(st.lists(st.integers(0, 60_000), min_size=1, max_size=60))
    events = []
    for i, t in enumerate(times):
        entity = data.draw(st.sampled_from(["a", "b"]))
        price = data.draw(st.one_of(st.none(), st.integers(-50, 50).map(float)))
        payment = data.draw(st.sampled_from(["card", "cash"]))
        events.append(Event(entity, t, {"price": price, "payment": payment}, offset=i))
    rows, late = run_engine(kind, events)
    expected = reference(kind, events, LATENESS)
    got = {(r.entity, r.end_ms): r for r in rows}
    assert got.keys() == expected.keys()
    for key, (start, values, count) in expected.items():
        assert (got[key].start_ms, got[key].event_count) == (start, count)
        assert_close(got[key].values, values, key)
    assert len(late) == sum(reference_late(events, LATENESS))


def test_late_events_stay_out_of_features() -> None:
    events = stream(5)
    rows, late = run_engine("tumbling", events)
    assert late, "the stream plants late events"
    counted = sum(r.event_count for r in rows)
    assert counted + len(late) == len(events)
    for item in late:
        assert item.event.time_ms < item.watermark_ms


@pytest.mark.parametrize("kind", sorted(WINDOWS))
def test_partition_interleaving_and_batching_do_not_change_results(kind: str) -> None:
    """The Kafka run (3 partitions read in any interleaving, any batch size) equals the replay.

    This holds for events within the lateness of their entity and for events further behind
    than lateness + partition skew + one batch (here 5 s + 6 s + 5 s): in between, whether
    an event is late depends on how far the slowest partition had been read.
    """
    events = stream(11, count=600, entities=9, jitter=400, late_every=37, partitions=3, behind=(25_000, 40_000))
    baseline, baseline_late = run_engine(kind, events, partitions=3)
    rng = random.Random(4)
    queues = [[e for e in events if e.partition == p] for p in range(3)]
    for attempt in range(5):
        cursors, mixed = [0, 0, 0], []
        while any(c < len(q) for c, q in zip(cursors, queues)):
            # Like a consumer polling each partition in turn: random order, random batch sizes.
            for p in rng.sample(range(3), 3):
                take = rng.randint(1, 10)
                mixed.extend(queues[p][cursors[p]:cursors[p] + take])
                cursors[p] += take
        rows, late = run_engine(kind, mixed, batch=rng.randint(1, 50), partitions=3)
        assert sorted((r.entity, r.end_ms, sorted(r.values.items(), key=str)) for r in rows) == \
            sorted((r.entity, r.end_ms, sorted(r.values.items(), key=str)) for r in baseline)
        assert sorted(x.event.offset for x in late) == sorted(x.event.offset for x in baseline_late)


def test_update_mode_emits_interim_values_at_most_every_interval() -> None:
    fs = FeatureSet("u", "area", "features.u", WINDOWS["tumbling"], (FeatureSpec("n", "count"),),
                    emit="update", update_every_ms=2_000)
    engine = ShardEngine((fs,), LATENESS)
    events = [Event("a", 1_000_000 + i * 500, {}) for i in range(19)]  # 9 s of one window
    rows = [r for e in events for r in engine.process([e])] + engine.flush()
    updates = [r for r in rows if r.kind == "update"]
    finals = [r for r in rows if r.kind == "final"]
    assert [u.as_of_ms - 1_000_000 for u in updates] == [0, 2_000, 4_000, 6_000, 8_000]
    assert [u.values["n"] for u in updates] == [1, 5, 9, 13, 17]
    assert len(finals) == 1 and finals[0].values["n"] == 19


def test_session_bridging_event_merges_two_sessions() -> None:
    fs = feature_set("session")
    engine = ShardEngine((fs,), lateness_ms=60_000)
    out = engine.process([Event("a", 10_000, {"price": 1.0, "payment": "card"}),
                          Event("a", 17_000, {"price": 2.0, "payment": "card"}),
                          Event("a", 13_500, {"price": 3.0, "payment": "cash"})])
    assert out == []
    (row,) = engine.flush()
    assert (row.start_ms, row.end_ms, row.event_count) == (10_000, 21_000, 3)


def test_static_values_are_joined() -> None:
    fs = FeatureSet("s", "area", "features.s", WINDOWS["tumbling"], (FeatureSpec("n", "count"),))
    engine = ShardEngine((fs,), LATENESS, statics={"s": {"a": {"zone": "north"}}})
    engine.process([Event("a", 1_000, {}), Event("b", 1_000, {})])
    rows = {r.entity: r.values for r in engine.flush()}
    assert rows == {"a": {"n": 1, "zone": "north"}, "b": {"n": 1}}


def test_engine_state_pickles_mid_stream() -> None:
    import pickle

    events = stream(8)
    half = len(events) // 2
    for kind in WINDOWS:
        engine = ShardEngine((feature_set(kind),), LATENESS)
        first = [r for e in events[:half] for r in engine.process([e])]
        engine = pickle.loads(pickle.dumps(engine))
        rest = [r for e in events[half:] for r in engine.process([e])] + engine.flush()
        rows, _ = run_engine(kind, events)
        resumed = [r for r in first + rest if isinstance(r, FeatureRow)]
        assert [(r.entity, r.end_ms, r.values) for r in resumed] == [(r.entity, r.end_ms, r.values) for r in rows]
