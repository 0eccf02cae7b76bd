"""CategoricalSummary: exact counts up to the cap, batch == per value, merge algebra, sketch
bounds, and exact serialisation round trips."""

from __future__ import annotations

import json
import math
import pickle
from collections import Counter

import numpy as np
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from features.summaries.categorical import CategoricalSummary, merge

category = st.one_of(st.sampled_from(["card", "cash", "wallet", "", "é€", "1"]),
                     st.text(max_size=6), st.integers(-3, 3), st.just(1.0), st.booleans(),
                     st.none(), st.just(math.nan))
values = st.lists(category, max_size=120)


def summary_of(xs: object, **kw: int) -> CategoricalSummary:
    s = CategoricalSummary(**kw)
    s.update(xs)  # type: ignore[arg-type]
    return s


def truth(xs: list[object]) -> Counter[str]:
    return Counter(str(v) for v in xs if v is not None and not (isinstance(v, float) and math.isnan(v)))


@given(values)
def test_counts_are_exact_below_the_cap(xs: list[object]) -> None:
    s = summary_of(xs)
    assert s.counts == dict(truth(xs)) and s.other == 0 and not s.overflowed
    assert s.count == sum(truth(xs).values())
    assert s.nulls == len(xs) - s.count
    for item in s.frequent_items():
        assert item.lower <= truth(xs)[item.item] <= item.upper
    assert s.distinct().estimate == pytest.approx(len(truth(xs)), abs=0.5)


@given(values, st.data(), st.integers(0, 8))
def test_batch_and_per_value_give_the_same_summary(xs: list[object], data: st.DataObject,
                                                   cap: int) -> None:
    per_value = CategoricalSummary(cap=cap, freq_lg_k=3)
    for v in xs:
        per_value.add(v)
    batched = CategoricalSummary(cap=cap, freq_lg_k=3)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(xs)), max_size=4)))
    bounds = [0, *cuts, len(xs)]
    for lo, hi in zip(bounds, bounds[1:]):
        batched.update(np.array(xs[lo:hi], dtype=object) if hi - lo > 2 else xs[lo:hi])
    assert (per_value.counts, per_value.other, per_value.nulls) == \
           (batched.counts, batched.other, batched.nulls)
    assert per_value.hll.serialize_compact() == batched.hll.serialize_compact()
    # The frequent-items sketch (6 items at lg_k 3) agrees exactly until its first purge,
    # and within its error after.
    if len(truth(xs)) <= 6:
        assert per_value == batched
    true = truth(xs)
    for s in (per_value, batched):
        assert s.freq.total_weight == per_value.count
        for item in s.frequent_items():
            assert item.lower <= true[item.item] <= item.upper


@given(values, st.data())
def test_merge_order_does_not_matter_and_equals_the_union(xs: list[object],
                                                          data: st.DataObject) -> None:
    cuts = sorted(data.draw(st.lists(st.integers(0, len(xs)), max_size=5)))
    bounds = [0, *cuts, len(xs)]
    parts = [summary_of(xs[lo:hi]) for lo, hi in zip(bounds, bounds[1:])]
    order = data.draw(st.permutations(range(len(parts))))
    left = parts[0]
    for p in parts[1:]:
        left = merge(left, p)
    shuffled = parts[order[0]]
    for i in order[1:]:
        shuffled = merge(parts[i], shuffled)
    union = summary_of(xs)
    for m in (left, shuffled):
        assert (m.counts, m.other, m.nulls) == (union.counts, union.other, union.nulls)
        assert m.frequent_items() == union.frequent_items()
        assert not m.slack
        assert m.distinct().estimate == pytest.approx(union.distinct().estimate, abs=0.5)


@given(values, values, st.integers(0, 4))
def test_past_the_cap_totals_stay_exact(xs: list[object], ys: list[object], cap: int) -> None:
    a, b = summary_of(xs, cap=cap), summary_of(ys, cap=cap)
    for m in (merge(a, b), merge(b, a)):
        assert m.count == sum(truth(xs + ys).values())
        assert m.nulls == a.nulls + b.nulls
        assert len(m.counts) <= cap
        true = truth(xs + ys)
        for name, n in m.counts.items():
            lo, hi = m.count_bounds(name)
            assert n <= lo <= true[name] <= hi <= n + m.slack.get(name, 0)
        for name in true:
            lo, hi = m.count_bounds(name)
            assert lo <= true[name] <= hi
    assert merge(a, b) == merge(b, a)


def test_cap_overflow_keeps_the_first_categories_and_tallies_the_rest() -> None:
    s = summary_of(["a", "b", "c", "a", "d"], cap=2)
    assert s.counts == {"a": 2, "b": 1} and s.other == 2 and s.overflowed
    assert s.proportions() == {"a": 0.4, "b": 0.2}
    m = merge(s, summary_of(["c", "c", "c"], cap=2))
    assert m.counts == {"a": 2, "c": 3} and m.other == 3  # the largest categories stay
    assert m.slack == {"c": 2}  # up to 2 values of c may sit in the first part's `other`
    # ... and the frequent-items sketch, still exact here, tightens the bounds to the truth.
    assert m.count_bounds("c") == (4, 4) and m.count_bounds("b") == (1, 1)
    m.add("e")  # fits under the cap? no: counts are full, so `other` grows
    assert m.other == 4 and "e" not in m.counts


def test_many_categories_stay_within_the_frequent_items_error() -> None:
    rng = np.random.default_rng(5)
    xs = [f"c{v}" for v in rng.zipf(1.2, 50_000)]
    s = summary_of(xs)
    true = Counter(xs)
    assert s.overflowed and s.count == len(xs)
    for name, n in s.counts.items():
        assert n == true[name]
    heavy = s.frequent_items()
    assert heavy and heavy[0].item == true.most_common(1)[0][0]
    for item in heavy:
        assert item.lower <= true[item.item] <= item.upper
        assert item.upper - item.lower <= s.frequency_error + 1e-9
    d = s.distinct()
    assert d.lower <= len(true) <= d.upper


@given(values)
def test_serialisation_round_trips_exactly(xs: list[object]) -> None:
    s = summary_of(xs, cap=3)
    data = s.to_bytes()
    assert CategoricalSummary.from_bytes(data).to_bytes() == data
    for dumps, loads in ((json.dumps, json.loads), (orjson.dumps, orjson.loads)):
        assert CategoricalSummary.from_dict(loads(dumps(s.to_dict()))).to_bytes() == data
    assert pickle.loads(pickle.dumps(s)) == s


def test_round_trip_past_the_frequent_items_capacity() -> None:
    rng = np.random.default_rng(2)
    s = summary_of([str(v) for v in rng.zipf(1.1, 20_000)])
    for _ in range(3):
        again = CategoricalSummary.from_bytes(s.to_bytes())
        assert again.to_bytes() == s.to_bytes()
        s = again


def test_errors_say_what_was_expected() -> None:
    with pytest.raises(ValueError, match="freq_lg_k"):
        CategoricalSummary(freq_lg_k=1)
    with pytest.raises(ValueError, match="same config"):
        merge(CategoricalSummary(cap=2), CategoricalSummary())
    data = summary_of(["a"]).to_bytes()
    with pytest.raises(ValueError, match="starting with"):
        CategoricalSummary.from_bytes(b"DLNS" + data[4:])
    with pytest.raises(ValueError, match="announces"):
        CategoricalSummary.from_bytes(data + b"\x00")
    with pytest.raises(ValueError, match="kind"):
        CategoricalSummary.from_dict({"kind": "numeric", "version": 1})
