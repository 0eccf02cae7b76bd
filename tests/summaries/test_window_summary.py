"""WindowSummary: minute windows merged into an hour equal the hour summarised at once,
gaps are tracked, overlaps refused, and serialisation round-trips exactly."""

from __future__ import annotations

import json
import math
import pickle

import numpy as np
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from features.summaries.categorical import CategoricalSummary
from features.summaries.numeric import NumericSummary
from features.summaries.window import (
    SummaryConfig, WindowAccumulator, WindowSummary, merge, merge_all, summarize_columns,
    summarize_events,
)
from tests import ROOT

MINUTE = 60_000
NUMERIC, CATEGORICAL = ["temp"], ["room"]
CONFIG = SummaryConfig(kll_k=16, cap=4)

event = st.fixed_dictionaries(
    {"minute": st.integers(0, 9)},
    optional={"temp": st.one_of(st.floats(50, 90).map(lambda v: round(v, 1)), st.none()),
              "room": st.one_of(st.sampled_from(["a", "b", "c"]), st.none())})
events = st.lists(event, max_size=80)


def minute_windows(evs: list[dict]) -> list[WindowSummary]:
    return [summarize_events(m * MINUTE, (m + 1) * MINUTE,
                             [e for e in evs if e["minute"] == m], NUMERIC, CATEGORICAL, CONFIG)
            for m in range(10)]


def assert_equivalent(a: WindowSummary, b: WindowSummary) -> None:
    assert (a.start_ms, a.end_ms, a.event_count, a.spans) == \
           (b.start_ms, b.end_ms, b.event_count, b.spans)
    x, y = a.columns["temp"], b.columns["temp"]
    assert isinstance(x, NumericSummary) and isinstance(y, NumericSummary)
    assert (x.count, x.nulls, x.min, x.max) == (y.count, y.nulls, y.min, y.max)
    assert x.mean == pytest.approx(y.mean, rel=1e-12, nan_ok=True)
    assert x.variance == pytest.approx(y.variance, rel=1e-9, abs=1e-9, nan_ok=True)
    if x.count:
        # Both within their rank error of the truth: each one's quantile has about the
        # right rank in the other (ties make a rank an interval).
        tol = 2 * (x.rank_error + y.rank_error)
        for one, other in ((x, y), (y, x)):
            for r, v in zip((0.1, 0.5, 0.9), one.quantiles([0.1, 0.5, 0.9]).values):
                lo = other.kll.get_rank(v, inclusive=False)
                hi = other.kll.get_rank(v, inclusive=True)
                assert lo - tol <= r <= hi + tol
    c, d = a.columns["room"], b.columns["room"]
    assert isinstance(c, CategoricalSummary) and isinstance(d, CategoricalSummary)
    assert (c.counts, c.other, c.nulls) == (d.counts, d.other, d.nulls)


@given(events, st.data())
def test_minutes_merged_in_any_order_equal_the_hour(evs: list[dict], data: st.DataObject) -> None:
    minutes = minute_windows(evs)
    hour = summarize_events(0, 10 * MINUTE, evs, NUMERIC, CATEGORICAL, CONFIG)
    order = data.draw(st.permutations(minutes))
    folded = order[0]
    for w in order[1:]:
        folded = merge(folded, w)
    # A different grouping: pairs first, then the pairs.
    pairs = [merge(minutes[i], minutes[i + 1]) for i in range(0, 10, 2)]
    grouped = merge(merge(pairs[4], pairs[0]), merge(merge(pairs[2], pairs[1]), pairs[3]))
    for m in (folded, grouped, merge_all(order)):
        assert not m.has_gaps and m.covered_ms == 10 * MINUTE
        assert_equivalent(m, hour)
    assert merge_all(order) == merge_all(minutes)  # merge_all is order-independent, bit for bit


@given(st.lists(st.integers(0, 30), min_size=1, max_size=12, unique=True))
def test_gaps_are_tracked_as_covered_spans(minutes: list[int]) -> None:
    parts = [WindowSummary(m * MINUTE, (m + 1) * MINUTE, m, {}) for m in minutes]
    merged = merge_all(parts)
    assert merged.start_ms == min(minutes) * MINUTE
    assert merged.end_ms == (max(minutes) + 1) * MINUTE
    assert merged.covered_ms == len(minutes) * MINUTE
    assert merged.has_gaps == (len(minutes) < max(minutes) - min(minutes) + 1)
    assert merged.event_count == sum(minutes)
    runs = sum(1 for m in minutes if m - 1 not in minutes)  # maximal runs of adjacent minutes
    assert len(merged.spans) == runs


def test_overlapping_or_mismatched_windows_refuse_to_merge() -> None:
    a = summarize_events(0, 2 * MINUTE, [], NUMERIC, CATEGORICAL)
    b = summarize_events(MINUTE, 3 * MINUTE, [], NUMERIC, CATEGORICAL)
    with pytest.raises(ValueError, match="overlapping"):
        merge(a, b)
    with pytest.raises(ValueError, match="overlapping"):
        merge(a, a)
    c = summarize_events(5 * MINUTE, 6 * MINUTE, [], ["room"], ["temp"])
    with pytest.raises(ValueError, match="different columns"):
        merge(a, c)
    with pytest.raises(ValueError, match="start_ms < end_ms"):
        WindowSummary(5, 5, 0, {})
    with pytest.raises(ValueError, match="spans"):
        WindowSummary(0, 10, 0, {}, ((0, 5), (5, 10)))  # adjacent spans must be coalesced
    with pytest.raises(ValueError, match="both numeric and categorical"):
        WindowAccumulator(0, 10, ["x"], ["x"])
    with pytest.raises(ValueError, match="at least one"):
        merge_all([])


@given(events, st.data())
def test_batches_and_single_events_give_the_same_window(evs: list[dict], data: st.DataObject) -> None:
    one_by_one = WindowAccumulator(0, MINUTE, NUMERIC, CATEGORICAL, CONFIG)
    for e in evs:
        one_by_one.add_event(e)
    batched = WindowAccumulator(0, MINUTE, NUMERIC, CATEGORICAL, CONFIG)
    cut = data.draw(st.integers(0, len(evs)))
    batched.add_events(evs[:cut])
    rest = evs[cut:]
    batched.add_columns({"temp": np.array([math.nan if e.get("temp") is None else e["temp"]
                                           for e in rest]),
                         "room": [e.get("room") for e in rest]}, event_count=len(rest))
    a, b = one_by_one.summary(), batched.summary()
    assert_equivalent(a, b)
    assert a.columns["room"] == b.columns["room"]
    assert a.columns["temp"].hll.serialize_compact() == b.columns["temp"].hll.serialize_compact()


def test_accumulator_snapshots_and_missing_columns() -> None:
    acc = WindowAccumulator(0, MINUTE, ["x", "y"], ["c"])
    acc.add_columns({"x": np.arange(5.0)})
    first = acc.summary()
    acc.add_event({"x": 10.0, "c": "k"})
    assert first.event_count == 5 and first.columns["x"].count == 5  # a snapshot, unchanged
    second = acc.summary()
    assert second.event_count == 6 and second.columns["y"].nulls == 6
    assert second.columns["c"].nulls == 5 and second.columns["c"].counts == {"k": 1}
    assert pickle.loads(pickle.dumps(acc)).summary() == second
    with pytest.raises(ValueError, match="equal lengths"):
        acc.add_columns({"x": [1.0], "c": ["a", "b"]})
    w = summarize_columns(0, MINUTE, {}, ["x"], [], event_count=3)
    assert w.columns["x"].nulls == 3


@given(events)
def test_serialisation_round_trips_exactly(evs: list[dict]) -> None:
    minutes = minute_windows(evs)
    w = merge(merge(minutes[0], minutes[3]), minutes[7])  # gaps, so several spans
    data = w.to_bytes()
    assert WindowSummary.from_bytes(data).to_bytes() == data
    assert WindowSummary.from_bytes(data) == w
    for dumps, loads in ((json.dumps, json.loads), (orjson.dumps, orjson.loads)):
        d = loads(dumps(w.to_dict()))
        assert d["has_gaps"] is True and d["covered_ms"] == 3 * MINUTE
        assert WindowSummary.from_dict(d).to_bytes() == data
    assert pickle.loads(pickle.dumps(w)) == w


def test_corrupt_input_is_refused_with_a_reason() -> None:
    data = summarize_events(0, MINUTE, [{"temp": 1.0}], NUMERIC, CATEGORICAL).to_bytes()
    with pytest.raises(ValueError, match="starting with"):
        WindowSummary.from_bytes(b"XXXX" + data[4:])
    with pytest.raises(ValueError):
        WindowSummary.from_bytes(data[:-3])
    with pytest.raises(ValueError, match="after the last column"):
        WindowSummary.from_bytes(data + b"\x00")
    d = WindowSummary(0, 10, 0, {"x": NumericSummary()}).to_dict()
    d["columns"]["x"]["kind"] = "mystery"
    with pytest.raises(ValueError, match="mystery"):
        WindowSummary.from_dict(d)


def test_the_summaries_doc_examples_run() -> None:
    """docs/summaries.md is the public API's documentation: its examples must stay true."""
    import doctest

    doc = ROOT / "docs" / "summaries.md"
    failures, attempted = doctest.testfile(str(doc), module_relative=False)
    assert attempted > 30 and failures == 0
