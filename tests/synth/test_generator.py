"""The synthetic ride stream: deterministic, exact counts, every malformed kind rejected with
its reason by the real decoder, planted changes where they were planted, and the writers."""

from __future__ import annotations

import argparse
import time
from collections import Counter
from pathlib import Path

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dataflows import cli
from dataflows.synth.generator import PAYMENTS, Produced, StreamSpec, generate
from dataflows.synth.malformed_events import FAR_FUTURE_MS, REJECTION_KINDS
from dataflows.synth.planted_changes import ConceptDrift, CovariateShift, NewCategory, UnitChange, parse_change
from dataflows.synth.produce import write_jsonl
from dataflows.cli.produce import produce_command
from features.config import load_config
from features.events import DecodeLimits, Event, EventDecoder, Reason, Rejection

from tests import ROOT
CONFIG = load_config(ROOT / "deploy" / "rides.toml")
DECODER = EventDecoder(CONFIG.schema, CONFIG.source.limits)


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


def events_of(messages: list[Produced]) -> list[Produced]:
    return [m for m in messages if m.kind == "event"]


def valid_rides(messages: list[Produced]) -> list[dict]:
    return [orjson.loads(m.value) for m in messages if m.kind == "event" and m.expected_reason is None]


def column(rides: list[dict], name: str) -> np.ndarray:
    return np.array([r[name] for r in rides], dtype=float)


# --- determinism --------------------------------------------------------------------------------

def test_the_same_spec_gives_the_same_bytes_and_another_seed_does_not() -> None:
    changes = tuple(parse_change(t) for t in ("shift:price:start=300:scale=1.3", "concept:start=200",
                                               "category:payment:crypto:share=0.2:start=100"))
    spec = StreamSpec(events=3000, seed=5, malformed_fraction=0.03, changes=changes)
    first, second = list(generate(spec)), list(generate(spec))
    assert first == second
    other = list(generate(StreamSpec(events=3000, seed=6, malformed_fraction=0.03, changes=changes)))
    assert [m.value for m in other] != [m.value for m in first]


def test_files_are_byte_identical_across_runs(tmp_path: Path) -> None:
    spec = StreamSpec(events=20_000, seed=9, malformed_fraction=0.01)  # more than one generator chunk
    stats = [write_jsonl(spec, tmp_path / f"e{i}.jsonl", tmp_path / f"l{i}.jsonl") for i in (1, 2)]
    assert stats[0] == stats[1]
    assert (tmp_path / "e1.jsonl").read_bytes() == (tmp_path / "e2.jsonl").read_bytes()
    assert (tmp_path / "l1.jsonl").read_bytes() == (tmp_path / "l2.jsonl").read_bytes()


# --- counts, decoding, ordering -------------------------------------------------------------------

@settings(max_examples=40)
@given(events=st.integers(0, 400), seed=st.integers(0, 2**32), malformed=st.floats(0.0, 1.0),
       late=st.floats(0.0, 0.5), delay=st.floats(1.0, 20_000.0))
def test_stream_invariants(events: int, seed: int, malformed: float, late: float, delay: float) -> None:
    spec = StreamSpec(events=events, seed=seed, malformed_fraction=malformed, late_fraction=late,
                      very_late_fraction=late / 10, label_delay_ms=delay)
    messages = list(generate(spec))
    produced = events_of(messages)
    assert [m.index for m in produced] == list(range(events))
    bad = [m for m in produced if m.expected_reason is not None]
    assert len(bad) == spec.malformed == min(events, round(events * malformed))
    # Malformed events cycle through every kind in order: counts differ by at most one.
    assert [m.expected_reason for m in bad] == [REJECTION_KINDS[k % len(REJECTION_KINDS)] for k in range(len(bad))]

    now = wall_clock_ms()
    rides: dict[str, tuple[int, int]] = {}  # ride id -> (position in the output, event time)
    for position, message in enumerate(messages):
        if message.kind == "event":
            result = DECODER.decode(message.value, now)
            if message.expected_reason is None:
                assert isinstance(result, Event), (message, result)
                assert message.key == result.entity.encode()
                assert result.fields["ride_id"] not in rides
                rides[result.fields["ride_id"]] = (position, result.time_ms)
            else:
                assert isinstance(result, Rejection) and result.reason == message.expected_reason, (message, result)
        else:
            label = orjson.loads(message.value)
            assert message.key == label["ride_id"].encode()
            ride_position, ride_ts = rides.pop(label["ride_id"])  # exactly one label per ride, after it
            assert ride_position < position
            assert label["ts"] > ride_ts and isinstance(label["cancelled"], bool)
    assert not rides


def test_labels_are_released_as_soon_as_the_stream_reaches_their_time() -> None:
    spec = StreamSpec(events=5000, seed=2, late_fraction=0.0, very_late_fraction=0.0, label_delay_ms=500)
    messages = list(generate(spec))
    last_event = max(i for i, m in enumerate(messages) if m.kind == "event")
    stream_time = previous_time = 0
    for position, message in enumerate(messages):
        record = orjson.loads(message.value)
        if message.kind == "event":
            previous_time, stream_time = stream_time, max(stream_time, record["ts"])
            ride = message.index
        else:  # never before its time (but for the tail, due after the last event), nor later
            assert record["ts"] <= stream_time or position > last_event
            assert record["ts"] > previous_time or message.index == ride
    tail = [orjson.loads(m.value)["ts"] for m in messages[last_event:] if m.kind == "label"]
    assert tail == sorted(tail) and tail[-1] > stream_time
    assert sum(m.kind == "label" for m in messages) == 5000


def test_every_rejection_kind_is_produced_and_rejected_for_its_reason() -> None:
    spec = StreamSpec(events=2000, seed=4, malformed_fraction=0.05)
    bad = [m for m in generate(spec) if m.expected_reason is not None]
    assert set(REJECTION_KINDS) == {str(r) for r in Reason}
    assert Counter(m.expected_reason for m in bad) == {kind: 12 + (i < 4) for i, kind in enumerate(REJECTION_KINDS)}
    for message in bad:
        # Future: beyond the bound both from the wall clock and from the stream's own time.
        for now in (wall_clock_ms(), spec.start_ms):
            result = DECODER.decode(message.value, now)
            assert isinstance(result, Rejection) and result.reason == message.expected_reason
        assert b"\n" not in message.value  # every message fits on one JSONL line
    oversized = [m.value for m in bad if m.expected_reason == "oversized"]
    assert all(DecodeLimits().max_event_bytes < len(v) < DecodeLimits().max_event_bytes + 200 for v in oversized)
    non_finite = b" ".join(m.value for m in bad if m.expected_reason == "non_finite")
    assert b":NaN" in non_finite and b":Infinity" in non_finite and b":-Infinity" in non_finite
    future = [orjson.loads(m.value)["ts"] for m in bad if m.expected_reason == "future_timestamp"]
    assert min(future) >= FAR_FUTURE_MS


def test_malformed_events_spread_over_the_whole_stream() -> None:
    bad = [m.index for m in generate(StreamSpec(events=10_000, seed=8, malformed_fraction=0.01))
           if m.expected_reason is not None]
    assert [i // 100 for i in bad] == list(range(100))  # one in each stratum of 100 events


def test_malformed_fraction_leaves_the_valid_events_alone() -> None:
    clean = events_of(list(generate(StreamSpec(events=3000, seed=3))))
    dirty = events_of(list(generate(StreamSpec(events=3000, seed=3, malformed_fraction=0.2))))
    assert all(a.value == b.value for a, b in zip(clean, dirty) if b.expected_reason is None)


def test_valid_rides_look_like_rides() -> None:
    spec = StreamSpec(events=20_000, seed=1)
    rides = valid_rides(list(generate(spec)))
    assert len({r["ride_id"] for r in rides}) == len(rides) == 20_000
    assert {r["payment"] for r in rides} == set(PAYMENTS)
    areas = Counter(r["area"] for r in rides)
    assert len(areas) == spec.areas and areas["area-00"] > 5 * areas["area-49"]  # skewed popularity
    surges = [r["surge"] for r in rides]
    assert 0.005 < surges.count(None) / len(rides) < 0.015
    assert min(s for s in surges if s is not None) >= 1.0
    assert min(r["distance_km"] for r in rides) > 0 and min(r["price"] for r in rides) > 0
    duration_s = (max(r["ts"] for r in rides) - spec.start_ms) / 1000  # the earliest ones may be late
    assert spec.events / duration_s == pytest.approx(spec.rate_per_s, rel=0.05)


def test_late_events_stay_mostly_within_the_configured_lateness() -> None:
    spec = StreamSpec(events=50_000, seed=12)
    ts = np.array([r["ts"] for r in valid_rides(list(generate(spec)))])
    behind = np.maximum.accumulate(ts) - ts  # how far behind the largest event time seen
    lateness = CONFIG.source.lateness_ms
    assert spec.late_max_ms < lateness < spec.very_late_lag_ms[0]
    expected = spec.late_fraction * (1 - 1000 / spec.late_max_ms) + spec.very_late_fraction
    assert (behind > 1000).mean() == pytest.approx(expected, rel=0.2)
    assert (behind > lateness).mean() == pytest.approx(spec.very_late_fraction, rel=0.5)


# --- planted changes --------------------------------------------------------------------------

EVENTS = 20_000
HALF = EVENTS // 2


def stream(*changes: str, seed: int = 21) -> list[Produced]:
    return list(generate(StreamSpec(events=EVENTS, seed=seed, changes=tuple(parse_change(c) for c in changes))))


BASE = stream()


def test_a_price_shift_scales_prices_from_its_start_only() -> None:
    shifted = stream(f"shift:price:start={HALF}:scale=1.3")
    assert [m.value for m in events_of(shifted)[:HALF]] == [m.value for m in events_of(BASE)[:HALF]]
    before, after = column(valid_rides(BASE), "price"), column(valid_rides(shifted), "price")
    assert np.allclose(after[HALF:], before[HALF:] * 1.3, atol=0.012)  # both rounded to cents
    assert after[HALF:].mean() / after[:HALF].mean() == pytest.approx(1.3, rel=0.05)


def test_a_shift_with_an_end_and_an_offset() -> None:
    shifted = column(valid_rides(stream("shift:eta_min:start=1000:end=2000:scale=1:add=5")), "eta_min")
    base = column(valid_rides(BASE), "eta_min")
    assert np.allclose(shifted[1000:2000], base[1000:2000] + 5, atol=0.11)
    assert np.array_equal(shifted[:1000], base[:1000]) and np.array_equal(shifted[2000:], base[2000:])


def test_a_distance_shift_moves_the_price_too() -> None:
    rides = valid_rides(stream(f"shift:distance_km:start={HALF}:scale=2"))
    price = column(rides, "price")
    assert price[HALF:].mean() > 1.5 * price[:HALF].mean()


def test_a_new_category_appears_only_after_its_start_with_its_share() -> None:
    rides = valid_rides(stream(f"category:payment:crypto:share=0.1:start={HALF}"))
    crypto = np.array([r["payment"] == "crypto" for r in rides])
    assert not crypto[:HALF].any()
    assert crypto[HALF:].mean() == pytest.approx(0.1, abs=0.01)
    result = DECODER.decode(orjson.dumps(rides[int(np.flatnonzero(crypto)[0])]), wall_clock_ms())
    assert isinstance(result, Event) and result.unknown_categories == ("payment",)


def test_a_unit_change_multiplies_the_field_in_its_span_and_nothing_else() -> None:
    changed = valid_rides(stream("unit:distance_km:factor=1000:start=800:end=850"))
    base = valid_rides(BASE)
    distance, base_distance = column(changed, "distance_km"), column(base, "distance_km")
    assert np.allclose(distance[800:850], base_distance[800:850] * 1000, atol=1.0)
    assert np.array_equal(distance[:800], base_distance[:800]) and np.array_equal(distance[850:], base_distance[850:])
    assert np.array_equal(column(changed, "price"), column(base, "price"))


def cancel_rates(messages: list[Produced], rows: slice, low: float, high: float) -> tuple[float, int]:
    """The share of cancelled rides among the rides of `rows` waiting [low, high) minutes, and their number."""
    labels = {orjson.loads(m.value)["ride_id"]: orjson.loads(m.value)["cancelled"]
              for m in messages if m.kind == "label"}
    rides = [r for r in valid_rides(messages)[rows] if low <= r["eta_min"] < high]
    return float(np.mean([labels[r["ride_id"]] for r in rides])), len(rides)


@pytest.mark.parametrize("seed", [7, 21])
def test_concept_drift_makes_long_waits_cancel_far_more_and_short_ones_less(seed: int) -> None:
    """The planted concept drift (#19, item 10) changes P(cancelled | eta_min) by region, with
    fixed seeds: rides waiting 11+ minutes go from a minority to a large majority cancelling,
    short waits cancel less, and the rides themselves stay byte-identical."""
    drifted, base = stream(f"concept:start={HALF}", seed=seed), stream(seed=seed)
    assert [m.value for m in events_of(drifted)] == [m.value for m in events_of(base)]
    before, after = slice(0, HALF), slice(HALF, None)
    long_before, n_long = cancel_rates(drifted, before, 11.0, 1e9)
    long_after, _ = cancel_rates(drifted, after, 11.0, 1e9)
    short_before, n_short = cancel_rates(drifted, before, 0.0, 6.0)
    short_after, _ = cancel_rates(drifted, after, 0.0, 6.0)
    assert n_long > 300 and n_short > 1000  # enough rides per region for the bounds below
    assert long_before < 0.35 and long_after > 0.75  # the region a model trained before gets wrong
    assert short_before > 0.01 and short_after < short_before / 3
    overall_before, _ = cancel_rates(drifted, before, 0.0, 1e9)
    overall_after, _ = cancel_rates(drifted, after, 0.0, 1e9)
    assert 0.05 < overall_before < 0.10 and 0.15 < overall_after < 0.28
    assert cancel_rates(base, after, 11.0, 1e9)[0] < 0.35  # without the drift: unchanged


# --- parsing changes ----------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    ("shift:price:start=600:scale=1.3", CovariateShift("price", 600, 1.3)),
    ("shift:price:start=600:scale=1.3:add=0", CovariateShift("price", 600, 1.3, 0.0)),
    ("shift:surge:start=5:add=0.5:end=9", CovariateShift("surge", 5, 1.0, 0.5, 9)),
    ("category:payment:crypto:share=0.1:start=700", NewCategory("payment", "crypto", 0.1, 700)),
    ("concept:start=500", ConceptDrift(500)),
    ("unit:distance_km:factor=1000:start=800:end=850", UnitChange("distance_km", 1000.0, 800, 850)),
    ("unit:eta_min:factor=60:start=0", UnitChange("eta_min", 60.0, 0)),
])
def test_parse_change_reads_every_form(text: str, expected: object) -> None:
    assert parse_change(text) == expected


finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
starts = st.integers(0, 10**9)
changes = st.one_of(
    st.builds(CovariateShift, st.sampled_from(["price", "distance_km", "surge", "eta_min"]), starts, finite, finite,
              st.none()),
    st.builds(lambda f, s, n, sc, ad: CovariateShift(f, s, sc, ad, s + n),
              st.just("price"), starts, st.integers(1, 10**6), finite, finite),
    st.builds(NewCategory, st.just("payment"), st.from_regex(r"[a-z][a-z0-9_-]{0,12}", fullmatch=True),
              st.floats(0.0, 1.0, exclude_min=True), starts),
    st.builds(ConceptDrift, starts),
    st.builds(UnitChange, st.just("distance_km"), finite.filter(lambda f: f != 0), starts, st.none()),
)


@given(changes)
def test_parse_change_round_trips(change: object) -> None:
    assert parse_change(change.spec()) == change


@pytest.mark.parametrize(("text", "fragment"), [
    ("", "unknown kind"),
    ("drift:price:start=1", "unknown kind"),
    ("shift:price:scale=2", "missing start"),
    ("shift:price:start=1", "give scale= or add="),
    ("shift:ts:start=1:scale=2", "field must be one of"),
    ("shift:price:start=-1:scale=2", "start must be an event index"),
    ("shift:price:start=ten:scale=2", "start must be an integer"),
    ("shift:price:start=1:scale=x", "scale must be a number"),
    ("shift:price:start=1:scale=inf", "scale must be a finite number"),
    ("shift:price:start=5:end=5:scale=2", "end must be an event index > start"),
    ("category:payment:share=0.1:start=1", "expected 2 word(s)"),
    ("category:payment:crypto:share=1.5:start=1", "share must be in (0, 1]"),
    ("category:area:crypto:share=0.5:start=1", "field must be one of payment"),
    ("concept:start=1:start=2", "given twice"),
    ("concept:start=1:at=2", "unknown option 'at'"),
    ("concept:start", "expected key=value"),
    ("unit:distance_km:factor=0:start=1", "factor must not be 0"),
])
def test_parse_change_names_the_spec_and_the_form_on_errors(text: str, fragment: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_change(text)
    message = str(caught.value)
    assert fragment in message and repr(text) in message and "expected" in message


@pytest.mark.parametrize("kwargs", [
    {"events": -1}, {"events": 10, "malformed_fraction": 1.5}, {"events": 10, "seed": -3},
    {"events": 10, "late_fraction": 0.7, "very_late_fraction": 0.7}, {"events": 10, "rate_per_s": 0},
    {"events": 10, "changes": ("concept:start=1",)},
])
def test_stream_spec_rejects_nonsense(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        StreamSpec(**kwargs)


# --- writers and the command line ---------------------------------------------------------------

def test_write_jsonl_writes_one_message_per_line(tmp_path: Path) -> None:
    spec = StreamSpec(events=3000, seed=7, malformed_fraction=0.05)
    stats = write_jsonl(spec, tmp_path / "events.jsonl", tmp_path / "labels.jsonl")
    messages = list(generate(spec))
    assert (tmp_path / "events.jsonl").read_bytes().split(b"\n")[:-1] == [m.value for m in events_of(messages)]
    labels = [m.value for m in messages if m.kind == "label"]
    assert (tmp_path / "labels.jsonl").read_bytes().split(b"\n")[:-1] == labels
    assert stats.events == 3000 and stats.labels == len(labels) == 3000 - 150 and stats.malformed == 150
    assert stats.by_reason == dict(Counter(m.expected_reason for m in messages if m.expected_reason))


def produce_args(**overrides: object) -> argparse.Namespace:
    args = {"bootstrap": None, "topic": "rides", "labels_topic": None, "events": 500, "rate": None, "seed": 0,
            "malformed_fraction": 0.02, "change": [], "partitions": 3, "output": None, "labels_output": None, "config": None}
    return argparse.Namespace(**{**args, **overrides})


def test_the_produce_command_writes_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["produce", "--events", "500", "--seed", "1", "--malformed-fraction", "0.02",
                     "--change", "shift:price:start=100:scale=2", "--output", str(tmp_path / "e.jsonl"),
                     "--labels-output", str(tmp_path / "l.jsonl")])
    assert code == 0
    assert "produced 500 events (10 malformed: not_json 2, not_object 2," in capsys.readouterr().out
    spec = StreamSpec(events=500, seed=1, malformed_fraction=0.02, changes=(parse_change("shift:price:start=100:scale=2"),))
    assert (tmp_path / "e.jsonl").read_bytes() == b"".join(m.value + b"\n" for m in events_of(list(generate(spec))))
    assert len((tmp_path / "l.jsonl").read_bytes().splitlines()) == 490


@pytest.mark.parametrize(("overrides", "fragment"), [
    ({}, "pass --bootstrap HOST:PORT"),
    ({"change": ["shift:price"]}, "bad change 'shift:price'"),
    ({"events": -5}, "events must be an integer >= 0"),
    ({"malformed_fraction": 2.0}, "malformed_fraction must be in [0, 1]"),
    ({"labels_output": Path("x.jsonl")}, "--labels-output needs --output"),
    ({"bootstrap": "127.0.0.1:1", "rate": 0.0}, "--rate must be a positive number"),
])
def test_the_produce_command_explains_bad_arguments(overrides: dict, fragment: str,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert produce_command(produce_args(**overrides)) == 2
    assert fragment in capsys.readouterr().err
