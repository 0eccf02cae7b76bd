"""Feature-set values as model inputs: point-in-time correct against a brute-force computation,
and equal to what the features flow writes for the window each prediction read."""

from __future__ import annotations

import bisect
import dataclasses
import math
import pickle
import statistics
from collections import defaultdict
from pathlib import Path

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from dataflows.synth.generator import StreamSpec
from dataflows.synth.produce import write_jsonl
from dataflows.cli.replay import replay
from features.config import parse_config
from features.windows.config import FeatureSet, FeatureSpec, Filter, WindowSpec
from features.models.config import FeatureInput
from features.models.feature_inputs import FeatureInputs, fields_read
from tests.flow_fixtures import to_toml

MINUTE = 60_000
SETS = (
    FeatureSet("t1m", "area", "features.t1m", WindowSpec("tumbling", MINUTE, MINUTE),
               (FeatureSpec("n", "count"), FeatureSpec("total", "sum", "price"))),
    FeatureSet("h3m", "area", "features.h3m", WindowSpec("hopping", 3 * MINUTE, MINUTE),
               (FeatureSpec("n", "count"), FeatureSpec("top", "max", "price"))),
    FeatureSet("last3", "area", "features.last3", WindowSpec("last_n", n=3, step_ms=MINUTE),
               (FeatureSpec("median", "median", "price"), FeatureSpec("last", "last", "price"))),
    FeatureSet("sess", "area", "features.sess", WindowSpec("session", gap_ms=30_000),
               (FeatureSpec("n", "count"),)),
)
INPUTS = tuple(FeatureInput(f"{fs.name}.{f.name}", fs.name, f.name, True) for fs in SETS for f in fs.features)


def expected(history: list[tuple[int, str, float]], t: int, area: str) -> dict[str, float]:
    """What an event of `area` at `t` should read, computed from the raw events before it."""
    mine = [(ts, p) for ts, a, p in history if a == area]
    out: dict[str, float] = {}
    b = t - t % MINUTE
    in_minute = [p for ts, p in mine if b - MINUTE <= ts < b]
    out["t1m.n"], out["t1m.total"] = len(in_minute), sum(in_minute)
    in_3m = [p for ts, p in mine if b - 3 * MINUTE <= ts < b]
    out["h3m.n"] = len(in_3m)
    if in_3m:
        out["h3m.top"] = max(in_3m)
    # last_n emits at each minute boundary that follows an event: the latest such boundary <= t.
    boundaries = [(ts // MINUTE + 1) * MINUTE for ts, _ in mine]
    emitted = [bd for bd in boundaries if bd <= t]
    if emitted:
        boundary = max(emitted)
        last = [p for ts, p in mine if ts < boundary][-3:]  # arrival order among equal times
        out["last3.median"], out["last3.last"] = statistics.median(last), last[-1]
    # Sessions closed by t: gaps of at least 30 s between consecutive events (in time order).
    times = sorted(ts for ts, _ in mine)
    sessions, start = [], 0
    for i in range(1, len(times) + 1):
        if i == len(times) or times[i] - times[i - 1] >= 30_000:
            sessions.append((times[i - 1] + 30_000, i - start))
            start = i
    closed = [s for s in sessions if s[0] <= t]
    if closed:
        out["sess.n"] = closed[-1][1]
    return out


events_strategy = st.lists(
    st.tuples(st.integers(0, 12 * MINUTE), st.sampled_from(["a", "b", "c"]),
              st.floats(0, 100, allow_nan=False).map(lambda p: round(p, 2))),
    max_size=120,
).map(lambda evs: sorted(evs, key=lambda e: e[0]))  # the model shard sees event-time order


@settings(max_examples=150, deadline=None)
@given(events_strategy)
def test_each_event_reads_what_was_known_at_its_time(events: list[tuple[int, str, float]]) -> None:
    inputs = FeatureInputs(SETS, INPUTS)
    for i, (t, area, price) in enumerate(events):
        got = inputs.on_event(t, {"area": area, "price": price})
        want = expected(events[:i], t, area)
        assert got.keys() == want.keys(), (t, area, got, want)
        for name, value in want.items():
            assert math.isclose(got[name], value, rel_tol=1e-9, abs_tol=1e-9), (name, got, want)


@settings(max_examples=50, deadline=None)
@given(events_strategy, st.integers(0, 120))
def test_state_pickled_midway_reads_the_same(events: list[tuple[int, str, float]], cut: int) -> None:
    whole, halves = FeatureInputs(SETS, INPUTS), FeatureInputs(SETS, INPUTS)
    got_whole = [whole.on_event(t, {"area": a, "price": p}) for t, a, p in events]
    got_halves = [halves.on_event(t, {"area": a, "price": p}) for t, a, p in events[:cut]]
    resumed = pickle.loads(pickle.dumps(halves))  # as a Bytewax recovery snapshot restores it
    got_halves += [resumed.on_event(t, {"area": a, "price": p}) for t, a, p in events[cut:]]
    assert got_whole == got_halves


RIDES_CONFIG = {
    "source": {"topic": "rides", "lateness": "10s"},
    "schema": {"entity": "area", "event_time": "ts", "time_format": "epoch_ms", "fields": {
        "ride_id": "string", "area": "string", "price": "float", "distance_km": "float",
        "surge": {"type": "float", "nullable": True}, "eta_min": "float",
        "payment": {"type": "category", "values": ["card", "cash", "wallet"]}}},
    "feature_sets": [
        {"name": "area_1m", "window": {"type": "tumbling", "length": "1m"},
         "features": [{"name": "rides", "agg": "count"}, {"name": "p90_eta", "agg": "quantile", "field": "eta_min",
                                                           "q": 0.9}]},
        {"name": "area_10m", "window": {"type": "hopping", "length": "10m", "step": "1m"},
         "features": [{"name": "mean_price", "agg": "mean", "field": "price"}]},
        {"name": "area_last10", "window": {"type": "last_n", "n": 10, "every": "1m"},
         "features": [{"name": "median_price", "agg": "median", "field": "price"}]},
    ],
    "models": [{"name": "cancel", "kind": "hoeffding_tree_classifier", "segment_by": "area",
                "inputs": ["price", "eta_min", "area_1m.rides", "area_1m.p90_eta", "area_10m.mean_price",
                           "area_last10.median_price"],
                "labels": {"topic": "rides.labels", "key": "ride_id", "field": "cancelled", "ttl": "5m"}}],
}


def test_predictions_read_the_windows_the_features_flow_wrote(tmp_path: Path) -> None:
    """A replay of both flows: every prediction's feature inputs are the values of the window the
    features flow wrote for its entity that ended last at or before the event (tumbling and
    hopping: the one ending at the last minute boundary, or an empty window)."""
    events, labels, config = tmp_path / "events.jsonl", tmp_path / "labels.jsonl", tmp_path / "config.toml"
    write_jsonl(StreamSpec(events=6000, seed=11, malformed_fraction=0.01), events, labels)
    config.write_text(to_toml(RIDES_CONFIG))
    out = tmp_path / "out"
    counters = replay(config, events, out, flows=["features", "model"], quiet=True, labels_path=labels)
    rows: dict[str, dict[str, list[tuple[int, dict]]]] = {}
    for fs in RIDES_CONFIG["feature_sets"]:
        per: dict[str, list[tuple[int, dict]]] = defaultdict(list)
        for line in (out / f"features.{fs['name']}.jsonl").read_bytes().splitlines():
            m = orjson.loads(line)
            per[m["entity"]].append((m["window"]["end_ms"], m["values"]))
        rows[fs["name"]] = {e: sorted(v, key=lambda r: r[0]) for e, v in per.items()}
    predictions = [orjson.loads(line) for line in (out / "predictions.cancel.jsonl").read_bytes().splitlines()]
    assert len(predictions) == counters.get("model.predictions") > 5000
    nonzero = 0
    for p in predictions:
        t, entity = p["event_time_ms"], p["entity"]
        boundary = t - t % MINUTE
        want: dict[str, float] = {"area_1m.rides": 0}
        for end, values in rows["area_1m"].get(entity, []):
            if end == boundary:
                want = {"area_1m.rides": values["rides"], "area_1m.p90_eta": values["p90_eta"]}
        for end, values in rows["area_10m"].get(entity, []):
            if end == boundary:
                want["area_10m.mean_price"] = values["mean_price"]
        last = rows["area_last10"].get(entity, [])
        i = bisect.bisect_right([end for end, _ in last], t)
        if i:
            want["area_last10.median_price"] = last[i - 1][1]["median_price"]
        got = {k: v for k, v in p["inputs"].items() if "." in k}
        assert got.keys() == want.keys(), (p, want)
        # Float sums may differ in the last bits: the features flow adds events in arrival
        # order, the model flow in event-time order.
        assert all(math.isclose(got[k], want[k], rel_tol=1e-9) for k in got), (p, want)
        nonzero += got["area_1m.rides"] > 0
    assert nonzero > len(predictions) // 3  # not a comparison of empty windows only
    # The vector: event fields first, then the feature inputs, as configured.
    assert list(predictions[-1]["inputs"])[:2] == ["price", "eta_min"]


def test_interim_updates_of_a_set_are_not_read() -> None:
    """A set with emit = "update" gives the same inputs as its final-only twin."""
    import dataclasses

    events = [(t, "a" if t % 3 else "b", float(t % 17)) for t in range(0, 400_000, 7_001)]
    final = FeatureInputs(SETS, INPUTS)
    updating = FeatureInputs([dataclasses.replace(fs, emit="update", update_every_ms=1_000) for fs in SETS], INPUTS)
    for t, area, price in events:
        assert final.on_event(t, {"area": area, "price": price}) == updating.on_event(t, {"area": area, "price": price})


# ---------------------------------------------------------------- bounded state


def last_n_reads(events: list[tuple[int, str, float]], ttl: int) -> list[dict[str, float]]:
    """What each event reads of `last3` with `state_ttl = ttl`, by brute force: rows are emitted
    at the first event past their boundary, an entity idle for `ttl` at such a boundary is
    forgotten (its older events count no more), and a row is read for `ttl` after its end."""
    history: dict[str, list[tuple[int, float]]] = defaultdict(list)
    pending: dict[str, set[int]] = defaultdict(set)
    rows: dict[str, tuple[int, list[float]]] = {}
    closed, out = -(2**62), []
    for t, area, price in events:
        b = t - t % MINUTE
        if b > closed:
            for entity, boundaries in pending.items():
                for boundary in sorted(x for x in boundaries if x <= b):
                    rows[entity] = (boundary, [p for ts, p in history[entity] if ts < boundary][-3:])
                boundaries.difference_update([x for x in boundaries if x <= b])
            for entity, events_of in history.items():
                if events_of and max(ts for ts, _ in events_of) < b - ttl and not pending[entity]:
                    events_of.clear()
            closed = b
        row = rows.get(area)
        out.append({"last3.median": statistics.median(row[1]), "last3.last": row[1][-1]}
                   if row is not None and row[0] > t - ttl else {})
        history[area].append((t, price))
        pending[area].add((t // MINUTE + 1) * MINUTE)
    return out


sparse_events = st.lists(
    st.tuples(st.integers(0, 60 * MINUTE), st.sampled_from(["a", "b", "c"]),
              st.floats(0, 100, allow_nan=False).map(lambda p: round(p, 2))),
    max_size=80,
).map(lambda evs: sorted(evs, key=lambda e: e[0]))


@settings(max_examples=150, deadline=None)
@given(sparse_events, st.sampled_from([MINUTE, 3 * MINUTE, 10 * MINUTE]))
def test_last_n_rows_are_read_within_the_state_ttl(events: list[tuple[int, str, float]], ttl: int) -> None:
    last3 = dataclasses.replace(SETS[2], state_ttl_ms=ttl)
    inputs = FeatureInputs((last3,), [i for i in INPUTS if i.feature_set == "last3"])
    for (t, a, p), want in zip(events, last_n_reads(events, ttl)):
        got = inputs.on_event(t, {"area": a, "price": p})
        assert got.keys() == want.keys(), (t, a, got, want)
        assert all(math.isclose(got[k], want[k], abs_tol=1e-9) for k in want), (t, a, got, want)


def test_state_is_released_once_no_event_can_read_it() -> None:
    """A thousand entities seen once: their windows, ids and latest rows go once later events
    are past what those could read (the next boundary; last-N: the state TTL)."""
    sets = (SETS[0], SETS[1], dataclasses.replace(SETS[2], state_ttl_ms=5 * MINUTE))
    inputs = FeatureInputs(sets, [i for i in INPUTS if not i.feature_set == "sess"])
    for i in range(1000):
        inputs.on_event(i, {"area": f"e{i}", "price": 1.0})
    tumbling, hopping, last_n = inputs.sets
    inputs.on_event(MINUTE, {"area": "x", "price": 1.0})
    assert len(tumbling.latest) == 1000 and len(last_n.latest) == 1000  # readable at [1 min, 2 min)
    inputs.on_event(2 * MINUTE, {"area": "x", "price": 1.0})
    assert len(tumbling.ids) == 0 and set(tumbling.latest) == {"x"}  # x's new event waits for the next boundary
    inputs.on_event(4 * MINUTE, {"area": "x", "price": 1.0})
    assert len(hopping.ids) == 1  # a 3-minute window reads its panes until then
    inputs.on_event(7 * MINUTE, {"area": "x", "price": 1.0})
    assert len(last_n.ids) == 1 and last_n.windows.log_size <= 3 and set(last_n.latest) == {"x"}


# ---------------------------------------------------------------- the arrival order

LATENESS = 20_000


def arrival(events: list[tuple[int, str, float]], behind: list[int]) -> list[tuple[int, str, float]]:
    """The events in the same order, each up to LATENESS earlier: as the arrival order releases
    them (never more than the lateness behind an earlier event)."""
    return [(max(0, t - d), a, p) for (t, a, p), d in zip(events, behind)]


arrival_events = st.lists(st.integers(0, LATENESS), max_size=120).flatmap(
    lambda behind: events_strategy.map(lambda evs: arrival(evs, behind + [0] * len(evs))))


@settings(max_examples=150, deadline=None)
@given(arrival_events)
def test_arrival_order_reads_the_windows_as_they_closed(events: list[tuple[int, str, float]]) -> None:
    """Tumbling and hopping: an event reads its boundary's window over the events released
    before that window closed (at the first event past its end); a later event behind it
    does not change it."""
    inputs = FeatureInputs(SETS, INPUTS, lateness_ms=LATENESS)
    for i, (t, area, _) in enumerate(events):
        got = inputs.on_event(t, {"area": area, "price": events[i][2]})
        b = t - t % MINUTE
        closing = next(k for k, (ts, _, _) in enumerate(events) if ts - ts % MINUTE >= b)
        before = [(ts, p) for ts, a, p in events[:closing] if a == area]
        minute = [p for ts, p in before if b - MINUTE <= ts < b]
        three = [p for ts, p in before if b - 3 * MINUTE <= ts < b]
        want = {"t1m.n": len(minute), "t1m.total": sum(minute), "h3m.n": len(three)}
        if three:
            want["h3m.top"] = max(three)
        got = {k: v for k, v in got.items() if k in want or k == "h3m.top"}
        assert got.keys() == want.keys(), (i, got, want)
        assert all(math.isclose(got[k], want[k], abs_tol=1e-9) for k in want), (i, got, want)


@settings(max_examples=50, deadline=None)
@given(arrival_events, st.integers(0, 120))
def test_arrival_order_state_pickled_midway_reads_the_same(events: list[tuple[int, str, float]], cut: int) -> None:
    whole, halves = FeatureInputs(SETS, INPUTS, LATENESS), FeatureInputs(SETS, INPUTS, LATENESS)
    got_whole = [whole.on_event(t, {"area": a, "price": p}) for t, a, p in events]
    got_halves = [halves.on_event(t, {"area": a, "price": p}) for t, a, p in events[:cut]]
    resumed = pickle.loads(pickle.dumps(halves))
    got_halves += [resumed.on_event(t, {"area": a, "price": p}) for t, a, p in events[cut:]]
    assert got_whole == got_halves


@settings(max_examples=50, deadline=None)
@given(arrival_events)
def test_a_full_buffer_goes_into_the_windows_early_with_the_same_reads(events: list[tuple[int, str, float]]) -> None:
    from unittest import mock

    from features.models import feature_inputs

    default = FeatureInputs(SETS, INPUTS, LATENESS)
    want = [default.on_event(t, {"area": a, "price": p}) for t, a, p in events]
    with mock.patch.object(feature_inputs, "BUFFERED", 2):
        small = FeatureInputs(SETS, INPUTS, LATENESS)
        assert [small.on_event(t, {"area": a, "price": p}) for t, a, p in events] == want


# ---------------------------------------------------------------- the fields a model shard is sent

FIELDS_SCHEMA = parse_config(RIDES_CONFIG).schema
COLUMNAR_SETS = SETS[:3] + (
    FeatureSet("card1m", "area", "features.card1m", WindowSpec("tumbling", MINUTE, MINUTE),
               (FeatureSpec("card_rides", "count", where=Filter("payment", frozenset({"card"}))),
                FeatureSpec("cities", "distinct", "ride_id"))),)
COLUMNAR_INPUTS = tuple(FeatureInput(f"{fs.name}.{f.name}", fs.name, f.name, True)
                        for fs in COLUMNAR_SETS for f in fs.features)


def test_a_model_shard_is_sent_only_the_fields_its_windows_read() -> None:
    assert fields_read(COLUMNAR_SETS[:1], COLUMNAR_INPUTS[:1], FIELDS_SCHEMA) == ("area", "price")
    # a filter's field and an object aggregation's field are read too; schema order
    assert fields_read(COLUMNAR_SETS, COLUMNAR_INPUTS, FIELDS_SCHEMA) == ("ride_id", "area", "price", "payment")
    # a session set reads the event as a whole
    assert fields_read(SETS, INPUTS, FIELDS_SCHEMA) == FIELDS_SCHEMA.field_names


ride_events = st.lists(
    st.tuples(st.integers(0, 12 * MINUTE), st.sampled_from(["a", "b"]), st.floats(0, 100, allow_nan=False),
              st.sampled_from(["card", "cash"]), st.sampled_from(["r1", "r2", "r3"]), st.floats(0, 30)),
    max_size=80,
).map(lambda evs: sorted(evs, key=lambda e: e[0]))


@settings(max_examples=60, deadline=None)
@given(ride_events)
def test_the_fields_read_give_the_reads_of_whole_events(events: list[tuple]) -> None:
    """Fed only `fields_read`'s fields, the inputs read what they read from whole events."""
    names = fields_read(COLUMNAR_SETS, COLUMNAR_INPUTS, FIELDS_SCHEMA)
    whole = FeatureInputs(COLUMNAR_SETS, COLUMNAR_INPUTS, schema=FIELDS_SCHEMA)
    trimmed = FeatureInputs(COLUMNAR_SETS, COLUMNAR_INPUTS, schema=FIELDS_SCHEMA)
    for t, area, price, payment, ride, eta in events:
        fields = {"ride_id": ride, "area": area, "price": price, "distance_km": 1.0, "surge": None,
                  "eta_min": eta, "payment": payment}
        assert trimmed.on_event(t, {k: fields[k] for k in names}) == whole.on_event(t, fields)
