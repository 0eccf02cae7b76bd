"""Expectations: exact where the evidence is exact, bounds that contain the truth where it is
a sketch, verdicts consistent with the truth, per-value checks that merge exactly."""

from __future__ import annotations

import dataclasses
import math
import pickle
from collections import Counter

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from features.summaries.categorical import CategoricalSummary
from features.summaries.categorical import merge as merge_categorical
from features.expectations.column_checks import (
    ExpectationResult, HasType, InSet, Matches, NotNull, NumericType, ValueRange, evaluate,
    evaluate_all, merge_checks,
)
from features.summaries.numeric import NumericSummary
from features.summaries.window import summarize_events


def numeric(xs: object) -> NumericSummary:
    s = NumericSummary()
    s.update(xs)  # type: ignore[arg-type]
    return s


def categorical(xs: object, cap: int = 256) -> CategoricalSummary:
    s = CategoricalSummary(cap=cap)
    s.update(xs)  # type: ignore[arg-type]
    return s


def test_room_temp_example_reads_observed_against_expected() -> None:
    rng = np.random.default_rng(0)
    temps = np.concatenate([rng.uniform(60, 75, 912), rng.uniform(76, 90, 88)])
    r = ValueRange("room_temp", 60, 75, mostly=0.95).evaluate(numeric(temps))
    assert r.verdict == "fail" and r.failed and not r.passed
    assert r.failing_bounds[0] <= 88 <= r.failing_bounds[1]
    assert "in [60, 75]" in r.observed and r.expected == ">= 95%"
    assert r.observed.startswith("91.")
    assert any(e.startswith("max ") for e in r.examples)
    assert r.describe().startswith("room_temp: values in [60, 75]: 91.")
    assert ", expected >= 95% (fail); e.g. max " in r.describe()


@given(st.lists(st.one_of(st.integers(50, 90).map(float), st.none(), st.just(math.inf),
                          st.just("x")), max_size=150),
       st.integers(50, 90), st.integers(0, 30), st.sampled_from([0.5, 0.9, 0.95, 1.0]))
def test_range_is_exact_while_the_sketch_holds_every_value(xs: list[object], lo: int,
                                                           width: int, mostly: float) -> None:
    s = numeric(xs)
    r = ValueRange("t", lo, lo + width, mostly=mostly).evaluate(s)
    numbers = [v for v in xs if isinstance(v, float)]
    failing = sum(not (lo <= v <= lo + width) for v in numbers)  # inf always fails
    assert r.checked == len(numbers)
    assert r.failing == failing and r.failing_bounds == (failing, failing)
    share = 1 - failing / len(numbers) if numbers else 1.0
    assert r.verdict == ("pass" if share >= mostly else "fail")


@pytest.mark.parametrize("seed", range(12))
def test_range_bounds_contain_the_truth_on_large_windows(seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.normal(68, 4, 200_000)
    lo, hi = sorted(rng.uniform(55, 80, 2))
    true_failing = int(np.count_nonzero((x < lo) | (x > hi)))
    share = 1 - true_failing / x.size
    s = numeric(x)
    for mostly in (share - 0.05, share - 0.005, share, share + 0.005, share + 0.05):
        mostly = min(max(mostly, 0.0), 1.0)
        r = ValueRange("t", lo, hi, mostly=mostly).evaluate(s)
        assert r.failing_bounds[0] <= true_failing <= r.failing_bounds[1]
        assert abs(r.failing - true_failing) <= r.failing_bounds[1] - r.failing_bounds[0]
        if r.passed:
            assert share >= mostly
        if r.failed:
            assert share < mostly
    # The sketch's error makes a threshold at the true share undecidable, never wrong.
    assert ValueRange("t", lo, hi, mostly=share).evaluate(s).verdict == "uncertain"
    assert "99% confidence" in ValueRange("t", lo, hi, mostly=share).evaluate(s).observed


def test_one_sided_ranges_and_exact_min_max_shortcuts() -> None:
    x = np.random.default_rng(1).uniform(10, 20, 100_000)
    s = numeric(x)
    everything = ValueRange("t", 0, 30).evaluate(s)  # min and max decide: exact
    assert everything.passed and everything.failing_bounds == (0, 0)
    assert "confidence" not in everything.observed
    nothing = ValueRange("t", 25, None, mostly=0.01).evaluate(s)
    assert nothing.failed and nothing.failing_bounds == (x.size, x.size)
    assert nothing.expectation == "t: values in [25, +inf)"
    upper = ValueRange("t", None, 15, mostly=0.4).evaluate(s)
    true = int(np.count_nonzero(x > 15))
    assert upper.passed and upper.failing_bounds[0] <= true <= upper.failing_bounds[1]
    # One-sided: the single-sided rank error, smaller than the two-sided one.
    assert upper.failing_bounds[1] - upper.failing_bounds[0] <= 2 * s.rank_error * x.size + 2


def test_in_set_is_exact_below_the_cap() -> None:
    s = categorical(["card"] * 90 + ["cash"] * 6 + ["btc"] * 3 + ["gold"] + [None] * 5)
    r = InSet("payment", frozenset({"card", "cash"}), mostly=0.95).evaluate(s)
    assert (r.verdict, r.failing, r.failing_bounds, r.checked) == ("pass", 4, (4, 4), 100)
    assert r.observed == "96.0% in the allowed set"
    assert r.examples == ("'btc' (3)", "'gold' (1)")
    strict = InSet("payment", frozenset({"card", "cash"})).evaluate(s)
    assert strict.failed


@given(st.lists(st.lists(st.sampled_from("abcdefgh"), max_size=40), min_size=1, max_size=4),
       st.integers(1, 4), st.sets(st.sampled_from("abcdefgh")), st.sampled_from([0.5, 0.9]))
def test_in_set_bounds_contain_the_truth_past_the_cap(parts: list[list[str]], cap: int,
                                                      allowed: set[str], mostly: float) -> None:
    merged = categorical(parts[0], cap)
    for part in parts[1:]:
        merged = merge_categorical(merged, categorical(part, cap))
    values = [v for part in parts for v in part]
    true = sum(v not in allowed for v in values)
    r = InSet("c", frozenset(allowed), mostly=mostly).evaluate(merged)
    assert r.checked == len(values)
    assert r.failing_bounds[0] <= true <= r.failing_bounds[1]
    assert r.failing_bounds[0] <= r.failing <= r.failing_bounds[1]
    share = 1 - true / len(values) if values else 1.0
    assert not (r.passed and share < mostly) and not (r.failed and share >= mostly)


def test_not_null_and_numeric_type_are_exact() -> None:
    s = numeric([1.0, None, math.nan, "7", True, 3, math.inf])
    nn = NotNull("x", mostly=0.7).evaluate(s)
    assert (nn.checked, nn.failing, nn.verdict) == (7, 2, "pass")
    assert nn.observed == "71.4% not null (2 nulls of 7)"
    ty = NumericType("x", mostly=0.9).evaluate(s)
    assert (ty.checked, ty.failing, ty.verdict) == (5, 2, "fail")
    empty = NotNull("x").evaluate(NumericSummary())
    assert empty.passed and empty.observed == "no values to check"
    c = NotNull("c", mostly=1.0).evaluate(categorical(["a", None]))
    assert c.failed and c.failing == 1


values = st.lists(st.one_of(st.text(max_size=5), st.integers(-5, 5), st.booleans(), st.none(),
                            st.floats(allow_nan=True)), max_size=60)


@given(values, values)
def test_value_checks_merge_exactly(xs: list[object], ys: list[object]) -> None:
    for spec in (Matches("v", r"^[a-c]+$", mostly=0.5), HasType("v", "string"),
                 HasType("v", "integer"), HasType("v", "number"), HasType("v", "boolean")):
        a, b, whole = spec.checker(), spec.checker(), spec.checker()
        a.update(xs)
        b.update(ys)
        whole.update(xs + ys)
        m = merge_checks(a, b)
        assert (m.checked, m.failed, m.nulls, m.examples) == \
               (whole.checked, whole.failed, whole.nulls, whole.examples)
        assert m.result() == whole.result()
        assert (merge_checks(b, a).checked, merge_checks(b, a).failed) == (m.checked, m.failed)
        assert pickle.loads(pickle.dumps(m)).result() == m.result()


def test_type_checks_know_their_types() -> None:
    cases = {"number": [1, 2.5, np.float32(1), np.int64(3), math.inf],
             "integer": [1, np.int64(2), -7], "string": ["", "x"], "boolean": [True, np.bool_(False)]}
    for name, good in cases.items():
        check = HasType("v", name).checker()  # type: ignore[arg-type]
        check.update(good)
        assert check.failed == 0, name
    bad = HasType("v", "number").checker()
    bad.update(["1", True, [1], None])
    assert (bad.checked, bad.failed, bad.nulls) == (3, 3, 1)
    assert sorted(bad.result().examples) == sorted(["'1'", "True", "[1]"])


def test_regex_fails_non_strings_and_shows_examples() -> None:
    c = Matches("plate", r"^[A-Z]{2}-\d{3}$", mostly=0.5).checker()
    c.update(["AB-123", "CD-456", "xx", 12, None])
    r = c.result()
    assert (r.checked, r.failing, r.verdict) == (4, 2, "pass")
    assert r.examples == ("'xx'", "12") and r.observed.startswith("50.0% match")


def test_evaluate_on_a_window_dispatches_by_column_kind() -> None:
    events = [{"t": 70.0, "p": "card"}, {"t": 90.0, "p": "cash"}, {"t": None, "p": "card"}]
    w = summarize_events(0, 60_000, events, ["t"], ["p"])
    results = evaluate_all([ValueRange("t", 60, 75, mostly=0.5), InSet("p", frozenset({"card"})),
                            NotNull("t", mostly=0.5), NumericType("t")], w.columns)
    assert [r.verdict for r in results] == ["pass", "fail", "pass", "pass"]
    with pytest.raises(ValueError, match="no such column"):
        evaluate(NotNull("zzz"), w.columns)
    with pytest.raises(ValueError, match="CategoricalSummary"):
        evaluate(ValueRange("p", 0, 1), w.columns)
    with pytest.raises(ValueError, match="value by value"):
        evaluate(Matches("p", "x"), w.columns)  # type: ignore[arg-type]


def test_specs_and_results_are_frozen_and_validated() -> None:
    r = NotNull("x").evaluate(numeric([1.0]))
    assert isinstance(r, ExpectationResult)
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.verdict = "fail"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        ValueRange("x", 0, 1).mostly = 0.5  # type: ignore[misc]
    with pytest.raises(ValueError, match="mostly"):
        NotNull("x", mostly=95)
    with pytest.raises(ValueError, match="needs min, max"):
        ValueRange("x")
    with pytest.raises(ValueError, match="min 5 > max 1"):
        ValueRange("x", 5, 1)
    with pytest.raises(ValueError, match="not a regular expression"):
        Matches("x", "(")
    with pytest.raises(ValueError, match="type_name"):
        HasType("x", "date")  # type: ignore[arg-type]
    assert InSet("x", frozenset({1, "a"})).allowed == frozenset({"1", "a"})
    assert Counter(r.examples) == Counter()
