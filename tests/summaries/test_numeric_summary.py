"""NumericSummary: exact parts against numpy, batch == per value, merge algebra, KLL bounds,
the HLL batch feeder's bit-identity, and exact serialisation round trips."""

from __future__ import annotations

import json
import math
import pickle

import numpy as np
import orjson
import pytest
from datasketches import hll_sketch
from hypothesis import given
from hypothesis import strategies as st

from features.summaries.hll import HLL_TYPE, HllBatchFeeder, coupons
from features.summaries.numeric import NumericSummary, merge

finite = st.floats(-1e6, 1e6, allow_nan=False).map(lambda v: round(v, 2))
values = st.lists(st.one_of(finite, finite, finite, st.none(), st.just(math.nan),
                            st.just(math.inf), st.just("x")), max_size=300)
KLL_K = 16  # small, so that a few hundred values already exercise KLL compaction


def summary_of(xs: object, **kw: int) -> NumericSummary:
    s = NumericSummary(**kw)
    s.update(xs)  # type: ignore[arg-type]
    return s


def finite_part(xs: list[object]) -> np.ndarray:
    return np.array([v for v in xs if isinstance(v, float) and math.isfinite(v)])


def assert_rank_within(s: NumericSummary, data: np.ndarray, ranks: list[float]) -> None:
    """Each returned quantile's true rank interval lies within the sketch's stated error."""
    xs = np.sort(data)
    n = xs.size
    for r, v, lo_v, hi_v in zip(*(getattr(s.quantiles(ranks), f) for f in
                                  ("ranks", "values", "lower", "upper"))):
        lo = np.searchsorted(xs, v, "left") / n
        hi = np.searchsorted(xs, v, "right") / n
        assert lo - s.rank_error <= r <= hi + s.rank_error, (r, v, lo, hi, s.rank_error)
        exact = xs[min(n - 1, max(0, math.ceil(r * n) - 1))]  # inclusive rule
        assert lo_v <= exact <= hi_v


def assert_same_exact_parts(a: NumericSummary, b: NumericSummary, data: np.ndarray) -> None:
    assert (a.count, a.nulls, a.infinite, a.invalid, a.min, a.max) == \
           (b.count, b.nulls, b.infinite, b.invalid, b.min, b.max)
    scale = float(np.abs(data).max()) if data.size else 1.0
    assert a.total == pytest.approx(b.total, rel=1e-9, abs=1e-9 * scale * max(1, data.size))
    assert a.mean == pytest.approx(b.mean, rel=1e-9, abs=1e-9 * scale, nan_ok=True)
    assert a.moments.m2 == pytest.approx(b.moments.m2, rel=1e-7,
                                         abs=1e-9 * scale**2 * max(1, data.size))


# ---- exact parts and per value vs batch -------------------------------------------


@given(values)
def test_exact_parts_match_numpy(xs: list[object]) -> None:
    s = summary_of(xs)
    x = finite_part(xs)
    assert s.count == x.size
    assert s.nulls == sum(v is None or (isinstance(v, float) and math.isnan(v)) for v in xs)
    assert s.infinite == sum(isinstance(v, float) and math.isinf(v) for v in xs)
    assert s.invalid == xs.count("x")
    if x.size:
        assert (s.min, s.max) == (x.min(), x.max())
        assert s.mean == pytest.approx(x.mean(), abs=1e-9 * np.abs(x).max())
        assert s.variance == pytest.approx(x.var(), rel=1e-9, abs=1e-6)
    else:
        assert s.min is None and math.isnan(s.mean)


@given(values, st.data())
def test_batch_and_per_value_give_the_same_summary(xs: list[object], data: st.DataObject) -> None:
    per_value = NumericSummary(kll_k=KLL_K, hll_lg_k=4)
    for v in xs:
        per_value.add(v)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(xs)), max_size=4)))
    batched = NumericSummary(kll_k=KLL_K, hll_lg_k=4)
    bounds = [0, *cuts, len(xs)]
    for lo, hi in zip(bounds, bounds[1:]):
        batched.update(xs[lo:hi])
    assert_same_exact_parts(per_value, batched, finite_part(xs))
    # The HLL feeder skips only provable no-op updates: the sketches are bit-identical.
    assert per_value.hll.serialize_compact() == batched.hll.serialize_compact()
    if not per_value.kll.is_estimation_mode():
        assert per_value.kll.serialize() == batched.kll.serialize()
    else:
        x = finite_part(xs)
        assert_rank_within(per_value, x, [0.1, 0.5, 0.9])
        assert_rank_within(batched, x, [0.1, 0.5, 0.9])


@pytest.mark.parametrize("lg_k", [4, 8, 12])
@pytest.mark.parametrize("kind", ["continuous", "rounded", "few", "mixed"])
def test_hll_feeder_is_bit_identical_to_per_value_updates(lg_k: int, kind: str) -> None:
    rng = np.random.default_rng(lg_k)
    n = 60_000
    x = {"continuous": rng.normal(size=n), "rounded": np.round(rng.normal(size=n), 2),
         "few": rng.integers(0, 200, n).astype(float),
         "mixed": np.concatenate([rng.integers(0, 50, n // 2).astype(float),
                                  rng.exponential(size=n // 2), [0.0, -0.0]])}[kind]
    fed, feeder = hll_sketch(lg_k, HLL_TYPE), HllBatchFeeder(lg_k)
    reference = hll_sketch(lg_k, HLL_TYPE)
    for part in np.array_split(x, 5):
        feeder.feed(fed, part)
        for v in part.tolist():
            reference.update(v)
        assert fed.serialize_compact() == reference.serialize_compact()


def test_coupons_are_the_ones_datasketches_stores() -> None:
    """A one-value sketch serialises its coupon at bytes 8..12 (LIST mode)."""
    x = np.array([0.0, -0.0, 1.0, -1.5, 1e-300, 1e300, 123456.789, 2.0**52])
    for v, c in zip(x.tolist(), coupons(x).tolist()):
        h = hll_sketch(12, HLL_TYPE)
        h.update(v)
        assert int.from_bytes(h.serialize_compact()[8:12], "little") == c


def test_batch_inputs_of_every_shape() -> None:
    ref = summary_of([1.0, 2.0, 3.0])
    for xs in (np.array([1, 2, 3]), np.array([[1.0], [2.0], [3.0]]), (1, 2, 3),
               np.array([1, 2, 3], dtype=np.float32), iter([1.0, 2.0, 3.0])):
        assert summary_of(xs) == ref
    s = summary_of(np.array(["1", True, None, 2.0], dtype=object))
    assert (s.count, s.invalid, s.nulls) == (1, 2, 1)
    s.update(np.array([True, False]))  # booleans are not numbers
    assert s.invalid == 4
    huge = NumericSummary()
    huge.add(10**400)
    huge.update([-(10**400)])
    assert huge.infinite == 2


# ---- merge -------------------------------------------------------------------------


@given(values, st.data())
def test_merge_order_does_not_matter_and_equals_the_union(xs: list[object],
                                                          data: st.DataObject) -> None:
    cuts = sorted(data.draw(st.lists(st.integers(0, len(xs)), max_size=5)))
    bounds = [0, *cuts, len(xs)]
    parts = [summary_of(xs[lo:hi], kll_k=KLL_K) for lo, hi in zip(bounds, bounds[1:])]
    order = data.draw(st.permutations(range(len(parts))))
    left = parts[0]
    for p in parts[1:]:
        left = merge(left, p)
    shuffled = parts[order[0]]
    for i in order[1:]:
        shuffled = merge(parts[i], shuffled)
    union = summary_of(xs, kll_k=KLL_K)
    x = finite_part(xs)
    for m in (left, shuffled):
        assert_same_exact_parts(m, union, x)
        if x.size:
            assert_rank_within(m, x, [0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0])
        # Few distinct values keep the HLL in its exact-ish list/set modes.
        distinct = len(set(x.tolist()))
        assert m.distinct().estimate == pytest.approx(distinct, abs=max(1.0, 0.01 * distinct))


@given(values, values)
def test_merge_is_commutative_on_exact_parts(xs: list[object], ys: list[object]) -> None:
    a, b = summary_of(xs), summary_of(ys)
    ab, ba = merge(a, b), merge(b, a)
    assert (ab.count, ab.nulls, ab.infinite, ab.invalid, ab.min, ab.max, ab.moments) == \
           (ba.count, ba.nulls, ba.infinite, ba.invalid, ba.min, ba.max, ba.moments)
    assert ab.hll.get_estimate() == ba.hll.get_estimate()
    assert summary_of(xs) == a  # inputs untouched


def test_merged_quantiles_within_the_kll_bound_of_numpy_at_default_size() -> None:
    rng = np.random.default_rng(3)
    minutes = [rng.lognormal(3.0, 0.6 + 0.01 * i, 5_000) for i in range(60)]
    hour = NumericSummary()
    for m in minutes:
        hour = merge(hour, summary_of(m))
    x = np.concatenate(minutes)
    assert hour.rank_error == pytest.approx(0.0133, abs=1e-3)
    assert_rank_within(hour, x, list(np.linspace(0.0, 1.0, 41)))
    cdf = hour.cdf([10.0, 20.0, 40.0])
    for p, lo, hi in zip(cdf.points, cdf.lower, cdf.upper):
        assert lo <= np.mean(x <= p) <= hi
    hist = hour.histogram([10.0, 20.0, 40.0])
    exact = np.histogram(x, [-np.inf, 10.0, 20.0, 40.0, np.inf])[0] / x.size
    assert np.all(np.abs(np.array(hist.fractions) - exact) <= hist.rank_error)
    assert sum(hist.counts) == pytest.approx(x.size, abs=4)
    d = hour.distinct()
    assert d.lower <= np.unique(x).size <= d.upper


def test_exact_answers_while_the_sketch_holds_every_value() -> None:
    s = summary_of([4.0, 1.0, 3.0, 2.0])
    q = s.quantiles([0.0, 0.5, 1.0])
    assert q.values == q.lower == q.upper == (1.0, 2.0, 4.0) and q.rank_error == 0.0
    assert s.cdf([2.5]).fractions == (0.5,)
    h = s.histogram([2.0, 3.0])
    assert h.fractions == (0.25, 0.25, 0.5) and h.counts == (1, 1, 2) and h.rank_error == 0.0
    empty = NumericSummary()
    assert math.isnan(empty.quantiles([0.5]).values[0]) and math.isnan(empty.cdf([1.0]).fractions[0])
    assert empty.histogram([1.0]).counts == (0, 0)


def test_errors_say_what_was_expected() -> None:
    with pytest.raises(ValueError, match="kll_k"):
        NumericSummary(kll_k=4)
    with pytest.raises(ValueError, match="ranks"):
        NumericSummary().quantiles([1.5])
    with pytest.raises(ValueError, match="increasing"):
        NumericSummary().histogram([2.0, 1.0])
    with pytest.raises(ValueError, match="same config"):
        merge(NumericSummary(kll_k=100), NumericSummary())


# ---- serialisation -----------------------------------------------------------------


extreme = st.lists(st.one_of(finite, st.floats(allow_nan=True, allow_infinity=True), st.none()),
                   max_size=200)


@given(extreme)
def test_serialisation_round_trips_exactly(xs: list[object]) -> None:
    s = summary_of(xs)
    again = NumericSummary.from_bytes(s.to_bytes())
    assert again.to_bytes() == s.to_bytes()  # every field, bit for bit (NaN included)
    for dumps, loads in ((json.dumps, json.loads), (orjson.dumps, orjson.loads)):
        text = dumps(s.to_dict())
        assert NumericSummary.from_dict(loads(text)).to_bytes() == s.to_bytes()
    assert pickle.loads(pickle.dumps(s)) == s


def test_size_at_default_sketch_sizes_is_under_8_kb() -> None:
    s = summary_of(np.random.default_rng(0).normal(size=1_000_000))
    assert len(s.to_bytes()) < 8 * 1024


def test_corrupt_bytes_and_dicts_are_refused_with_a_reason() -> None:
    data = summary_of([1.0, 2.0]).to_bytes()
    with pytest.raises(ValueError, match="starting with"):
        NumericSummary.from_bytes(b"XXXX" + data[4:])
    with pytest.raises(ValueError, match="version 9"):
        NumericSummary.from_bytes(data[:4] + b"\x09" + data[5:])
    with pytest.raises(ValueError, match="announces"):
        NumericSummary.from_bytes(data[:-1])
    d = summary_of([1.0]).to_dict()
    with pytest.raises(ValueError, match="kind"):
        NumericSummary.from_dict({**d, "kind": "categorical"})
    with pytest.raises(ValueError, match="base64"):
        NumericSummary.from_dict({**d, "kll": "not base64!"})
