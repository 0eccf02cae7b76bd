"""Sample sets: config, priority sampling (inclusion probabilities by chi-squared over many
seeded windows, as in tests/samples/test_reservoirs.py), order independence, merge algebra, size cap."""

from __future__ import annotations

import math
import random
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from features.config import parse_config
from features.config_values import ConfigError
from features.events import Event
from features.windows.config import WindowSpec
from features.samples.config import SampleSet
from features.samples.messages import merge_samples, message_key, sample_messages
from features.samples.windows import PaneSampler, SampleWindows, stratum_ranker
from tests.samples.test_reservoirs import P_MIN, chi2_pvalue, inclusions, successive_design, uniform_pvalue

MINUTE = 60_000


def spec(kind: str = "uniform", k: int = 3, length: int = MINUTE, step: int | None = None, **extra: Any) -> SampleSet:
    window = WindowSpec("hopping" if step else "tumbling", length, step or length)
    return SampleSet("s", window, k, kind, topic="samples.s", **extra)


def run(sample_set: SampleSet, events: list[Event], partitions: int = 1, order_seed: int | None = None,
        emitted_at_ms: int = 0, batch: int = 25) -> list[dict[str, Any]]:
    """Sample `events` as the flow does: spread over partitions (in a shuffled order), each
    partition's events sampled in batches of up to `batch`, panes released as each
    partition's watermark passes, windows closed by the stream watermark."""
    events = list(events)
    if order_seed is not None:
        random.Random(order_seed).shuffle(events)
    samplers = [PaneSampler(sample_set) for _ in range(partitions)]
    windows = SampleWindows(sample_set, lateness_ms=0, partitions=partitions)
    high = [-(2**62)] * partitions
    closed = []
    for lo in range(0, len(events), batch * partitions):
        chunk = list(enumerate(events[lo:lo + batch * partitions], lo))
        for p in range(partitions):
            part = [e for i, e in chunk if i % partitions == p]
            if not part:
                continue
            samplers[p].add(part)
            high[p] = max(high[p], *(e.time_ms for e in part))
            for start, pane in samplers[p].release(high[p] - 10 * MINUTE):
                windows.absorb(start, pane)
            closed += windows.advance({p: high[p] - 10 * MINUTE})
    for sampler in samplers:
        for start, pane in sampler.release_all():
            windows.absorb(start, pane)
    closed += windows.flush()
    return [m for c in closed for m in sample_messages(c, emitted_at_ms)]


def ev(i: int, t: int, **fields: Any) -> Event:
    return Event("a", t, {"i": i, "ts": t, **fields})


def indices(message: dict[str, Any]) -> list[int]:
    return [item["fields"]["i"] for item in message["items"]]


# ------------------------------------------------------------------ config

SCHEMA = {"entity": "area", "event_time": "ts",
          "fields": {"area": "string", "price": "float", "ride_id": "string", "payment": "string"}}


def parse(*sets: dict[str, Any]) -> Any:
    return parse_config({"source": {"topic": "rides"}, "schema": SCHEMA, "sample_sets": list(sets)})


def test_config_parses_every_kind() -> None:
    config = parse(
        {"name": "u", "window": {"type": "tumbling", "length": "1m"}, "k": 5, "id_field": "ride_id",
         "fields": ["ride_id", "ts"], "where": {"field": "payment", "eq": "cash"}},
        {"name": "w", "window": {"type": "hopping", "length": "10m", "step": "1m"}, "k": 5, "kind": "weighted",
         "weight_field": "price", "seed": 3},
        {"name": "r", "window": {"type": "tumbling", "length": "1h"}, "k": 5, "kind": "weighted", "half_life": "5m"},
        {"name": "p", "window": {"type": "tumbling", "length": "1m"}, "k": 2, "kind": "stratified",
         "stratum_field": "payment", "max_strata": 4, "topic": "x.p", "max_message_bytes": 4096},
    )
    u, w, r, p = config.sample_sets
    assert (u.topic, u.fields, u.id_field, u.where.values) == ("samples.u", ("ride_id", "ts"), "ride_id",
                                                                frozenset({"cash"}))
    assert (w.window.step_ms, w.weight_spec, w.seed) == (MINUTE, {"field": "price", "half_life_ms": None}, 3)
    assert r.half_life_ms == 5 * MINUTE
    assert (p.stratum_field, p.max_strata, p.topic, p.max_message_bytes) == ("payment", 4, "x.p", 4096)
    assert config.dead_letter_flow == "features"


@pytest.mark.parametrize("entry,key", [
    ({"kind": "weighted"}, "sample_sets[0]"),
    ({"kind": "weighted", "weight_field": "price", "half_life": "1m"}, "sample_sets[0]"),
    ({"kind": "weighted", "weight_field": "payment"}, "sample_sets[0].weight_field"),
    ({"kind": "stratified"}, "sample_sets[0].stratum_field"),
    ({"stratum_field": "payment"}, "sample_sets[0].stratum_field"),
    ({"window": {"type": "session", "gap": "1m"}}, "sample_sets[0].window.type"),
    ({"k": 0}, "sample_sets[0].k"),
    ({"fields": ["nope"]}, "sample_sets[0].fields[0]"),
    ({"id_field": "nope"}, "sample_sets[0].id_field"),
    ({"sample": 3}, "sample_sets[0].sample"),
])
def test_bad_sample_sets_name_the_key(entry: dict[str, Any], key: str) -> None:
    base = {"name": "s", "window": {"type": "tumbling", "length": "1m"}, "k": 5}
    with pytest.raises(ConfigError) as caught:
        parse({**base, **entry})
    assert caught.value.key == key


def test_duplicate_names_are_refused() -> None:
    entry = {"name": "s", "window": {"type": "tumbling", "length": "1m"}, "k": 5}
    with pytest.raises(ConfigError, match="unique"):
        parse(entry, entry)


# ------------------------------------------------------------------ inclusion probabilities


def test_uniform_inclusion_is_k_over_n_over_many_windows() -> None:
    n, k, windows = 40, 4, 3_000
    s = spec(k=k)
    events = [ev(w * n + i, w * MINUTE + i) for w in range(windows) for i in range(n)]
    messages = run(s, events)
    assert len(messages) == windows and all(m["seen"] == n and len(m["items"]) == k for m in messages)
    samples = [[x % n for x in indices(m)] for m in messages]
    assert uniform_pvalue(inclusions(samples, n), k) > P_MIN


WEIGHTS = [1.0, 2.0, 3.0, 4.0, 5.0, 10.0]


def test_weighted_inclusion_matches_successive_sampling() -> None:
    k, windows = 3, 12_000
    s = spec("weighted", k=k, weight_field="price")
    events = [ev(w * 6 + i, w * MINUTE + i, price=WEIGHTS[i]) for w in range(windows) for i in range(6)]
    samples = [[x % 6 for x in indices(m)] for m in run(s, events)]
    counted = inclusions(samples, 6)
    assert chi2_pvalue(counted, *successive_design(WEIGHTS, k)) > P_MIN
    assert list(counted[0]) == sorted(counted[0])


def test_recency_weights_halve_per_half_life() -> None:
    k, windows, half_life = 2, 12_000, 10_000
    s = spec("weighted", k=k, half_life_ms=half_life)
    offsets = [0, 10_000, 20_000, 30_000, 40_000, 50_000]  # weights 2^-6 ... 2^-1 of the window end
    weights = [2.0 ** ((t - MINUTE) / half_life) for t in offsets]
    events = [ev(w * 6 + i, w * MINUTE + t) for w in range(windows) for i, t in enumerate(offsets)]
    messages = run(s, events)
    samples = [[x % 6 for x in indices(m)] for m in messages]
    assert chi2_pvalue(inclusions(samples, 6), *successive_design(weights, k)) > P_MIN
    item = messages[0]["items"][0]
    assert item["weight"] == pytest.approx(2.0 ** ((item["time_ms"] - MINUTE) / half_life))


def test_events_without_a_positive_weight_are_counted_never_sampled() -> None:
    s = spec("weighted", k=5, weight_field="price")
    events = [ev(i, i, price=p) for i, p in enumerate([0.0, -1.0, None, 2.0])]
    (m,) = run(s, events)
    assert m["seen"] == 4 and indices(m) == [3]


def test_every_stratum_is_represented_and_sampled_uniformly() -> None:
    k, windows = 3, 3_000
    s = spec("stratified", k=k, stratum_field="payment", max_strata=8)
    sizes = {"card": 30, "cash": 8, "rare": 1}
    events = []
    for w in range(windows):
        i = 0
        for stratum, size in sizes.items():
            for _ in range(size):
                events.append(ev(w * 100 + i, w * MINUTE + i, payment=stratum))
                i += 1
    messages = run(s, events)
    by_stratum: dict[str, list[list[int]]] = {}
    for m in messages:
        assert m["window_seen"] == sum(sizes.values()) and not m["overflow"]
        assert m["seen"] == sizes[m["stratum"]] and len(m["items"]) == min(k, m["seen"])
        by_stratum.setdefault(m["stratum"], []).append([x % 100 for x in indices(m)])
    assert {s: len(v) for s, v in by_stratum.items()} == {s: windows for s in sizes}
    cash = [[x - 30 for x in sample] for sample in by_stratum["cash"]]
    assert uniform_pvalue(inclusions(cash, 8), k) > P_MIN


def test_strata_beyond_the_bound_share_a_counted_overflow_whatever_the_order() -> None:
    s = spec("stratified", k=2, stratum_field="payment", max_strata=3)
    events = [ev(i, i, payment=f"p{i % 10}") for i in range(1_000)]
    rank = stratum_ranker(0, "s")
    kept = sorted(sorted((f"p{j}" for j in range(10)), key=lambda n: (rank(n), n))[:3])
    for order_seed in (None, 1, 2):
        messages = run(s, events, partitions=3, order_seed=order_seed)
        assert sorted(m["stratum"] for m in messages if not m["overflow"]) == kept
        (overflow,) = [m for m in messages if m["overflow"]]
        assert overflow["seen"] == 700 and overflow["stratum"] is None and len(overflow["items"]) == 2
        assert all(f"p{x % 10}" not in kept for x in indices(overflow))
        assert message_key(overflow) == "s/overflow"


# ------------------------------------------------------------------ determinism


@pytest.mark.parametrize("kind,extra", [("uniform", {}), ("weighted", {"weight_field": "price"}),
                                        ("weighted", {"half_life_ms": 20_000}),
                                        ("stratified", {"stratum_field": "payment", "max_strata": 2})])
def test_the_sample_does_not_depend_on_order_partitions_or_hopping_panes(kind: str, extra: dict[str, Any]) -> None:
    rng = random.Random(5)
    events = [ev(i, rng.randrange(5 * MINUTE), price=rng.uniform(1, 9), payment=rng.choice("abcd"))
              for i in range(2_000)]
    for window in ({}, {"length": 3 * MINUTE, "step": MINUTE}):
        s = spec(kind, k=4, **window, **extra)
        one = run(s, sorted(events, key=lambda e: e.time_ms))
        assert one == run(s, events, partitions=3, order_seed=9) == run(s, events, partitions=2, order_seed=4)
        assert one == run(s, events, batch=1) == run(s, events, partitions=2, batch=400)
        assert len({m["id"] for m in one}) == len(one)


def test_a_seed_reproduces_a_sample_and_another_seed_draws_another() -> None:
    events = [ev(i, i) for i in range(500)]
    assert run(spec(seed=1), events) == run(spec(seed=1), events)
    assert indices(run(spec(seed=1), events)[0]) != indices(run(spec(seed=2), events)[0])


def test_duplicate_events_are_sampled_once() -> None:
    events = [ev(i, i) for i in range(3)]
    (m,) = run(spec(k=5), events + events)
    assert m["seen"] == 6 and sorted(indices(m)) == [0, 1, 2]


def test_id_field_and_kept_fields() -> None:
    s = spec(k=10, id_field="i", fields=("i",))
    (m,) = run(s, [ev(i, i, junk="x" * i) for i in range(5)])
    assert all(set(item["fields"]) == {"i"} for item in m["items"]) and len(m["items"]) == 5


def test_filter_keeps_matching_events_only() -> None:
    from features.windows.config import Filter

    s = spec(k=50, where=Filter("payment", frozenset({"cash"})))
    (m,) = run(s, [ev(i, i, payment="cash" if i % 3 else "card") for i in range(30)])
    assert m["seen"] == 20 and all(x % 3 for x in indices(m))


# ------------------------------------------------------------------ merging


def window_messages(kind: str, extra: dict[str, Any], events: list[Event], length: int) -> list[dict[str, Any]]:
    return run(spec(kind, k=3, length=length, **extra), events)


KINDS = [("uniform", {}), ("weighted", {"weight_field": "price"}), ("weighted", {"half_life_ms": 30_000}),
         ("stratified", {"stratum_field": "payment", "max_strata": 2})]

events_strategy = st.lists(
    st.tuples(st.integers(0, 4 * MINUTE - 1), st.floats(0.5, 20.0), st.sampled_from("abcd")),
    min_size=1, max_size=60,
).map(lambda rows: [ev(i, t, price=p, payment=c) for i, (t, p, c) in enumerate(rows)])


def by_window(messages: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    groups: dict[int, list[dict[str, Any]]] = {}
    for m in messages:
        groups.setdefault(m["window"]["start_ms"], []).append(m)
    return [groups[s] for s in sorted(groups)]


def comparable(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What a merge and a direct sample of the whole share (not the id or the window count)."""
    return [{k: v for k, v in m.items() if k not in ("id", "merged_windows")} for m in messages]


@pytest.mark.parametrize("kind,extra", KINDS)
@given(events=events_strategy)
def test_merge_of_the_windows_equals_the_sample_of_the_whole(kind: str, extra: dict[str, Any],
                                                             events: list[Event]) -> None:
    parts = window_messages(kind, extra, events, MINUTE)
    whole = window_messages(kind, extra, events, 4 * MINUTE)
    merged = merge_samples(parts, 0, 4 * MINUTE)
    assert comparable(merged) == comparable(whole)
    assert merged[0]["window"] == whole[0]["window"]
    assert merged[0]["merged_windows"] == len({m["window"]["start_ms"] for m in parts})


@pytest.mark.parametrize("kind,extra", KINDS)
@given(events=events_strategy, order=st.randoms(use_true_random=False))
def test_merge_is_associative_and_commutative(kind: str, extra: dict[str, Any], events: list[Event],
                                              order: random.Random) -> None:
    windows = by_window(window_messages(kind, extra, events, MINUTE))
    flat = [m for w in windows for m in w]
    everything = merge_samples(flat)
    shuffled = list(flat)
    order.shuffle(shuffled)
    assert merge_samples(shuffled) == everything
    if len(windows) >= 2:
        cut = order.randrange(1, len(windows))
        left = merge_samples([m for w in windows[:cut] for m in w])
        right = merge_samples([m for w in windows[cut:] for m in w])
        assert merge_samples(left + right) == everything
        assert merge_samples(right + left + left) == everything  # duplicates count once


def test_merged_minute_samples_are_uniform_over_the_hour() -> None:
    n, k, hours = 12, 3, 3_000  # 4 windows of 12 events per "hour"
    s = spec(k=k)
    events = [ev(h * 4 * n + i, h * 4 * MINUTE + (i // n) * MINUTE + i % n) for h in range(hours) for i in range(4 * n)]
    windows = by_window(run(s, events))
    samples = []
    for h in range(hours):
        (merged,) = merge_samples([m for w in windows[4 * h:4 * h + 4] for m in w])
        assert merged["seen"] == 4 * n
        samples.append([x % (4 * n) for x in indices(merged)])
    assert uniform_pvalue(inclusions(samples, 4 * n), k) > P_MIN


def test_merged_weighted_samples_match_successive_sampling() -> None:
    k, runs = 3, 8_000
    s = spec("weighted", k=k, weight_field="price")
    events = [ev(r * 6 + i, r * 2 * MINUTE + (i % 2) * MINUTE + i, price=WEIGHTS[i]) for r in range(runs)
              for i in range(6)]
    windows = by_window(run(s, events))
    samples = [[x % 6 for x in indices(merge_samples(windows[2 * r] + windows[2 * r + 1])[0])] for r in range(runs)]
    assert chi2_pvalue(inclusions(samples, 6), *successive_design(WEIGHTS, k)) > P_MIN


def test_merge_refuses_overlaps_other_sets_and_incomplete_windows() -> None:
    events = [ev(i, i * 1_000, payment="ab"[i % 2]) for i in range(300)]
    hopping = run(spec(length=3 * MINUTE, step=MINUTE), events)
    with pytest.raises(ValueError, match="overlap"):
        merge_samples(hopping[:2])
    a = run(spec(k=3), events)
    b = run(spec(k=4), events)
    with pytest.raises(ValueError, match="different k"):
        merge_samples([a[0], b[1]])
    strat = run(spec("stratified", k=2, stratum_field="payment"), events)
    with pytest.raises(ValueError, match="incomplete"):
        merge_samples(strat[:1])
    with pytest.raises(ValueError, match="no sample"):
        merge_samples([])


# ------------------------------------------------------------------ size cap


def test_a_sample_over_the_size_cap_is_cut_in_key_order_and_flagged() -> None:
    events = [ev(i, i, blob="x" * 200) for i in range(400)]
    full = run(spec(k=100), events)[0]
    capped = run(spec(k=100, max_message_bytes=4_096), events)[0]
    assert not full["truncated"] and len(full["items"]) == 100
    assert capped["truncated"] and 0 < len(capped["items"]) < 100
    assert len(orjson.dumps(capped)) <= 4_096
    assert capped["items"] == full["items"][:len(capped["items"])]
    assert [i["key"] for i in full["items"]] == sorted(i["key"] for i in full["items"])
    # A merge trusts a cut sample only up to its largest key, and stays flagged.
    later = run(spec(k=100), [ev(1_000 + i, MINUTE + i, blob="y") for i in range(400)])[0]
    merged = merge_samples([capped, later])[0]
    exact = merge_samples([full, later])[0]
    cutoff = capped["items"][-1]["key"]
    assert merged["truncated"] and merged["seen"] == 800
    assert merged["items"] == [i for i in exact["items"] if i["key"] <= cutoff]
    assert not math.isnan(cutoff)


def test_sample_counts_reach_the_metrics_and_the_demo_summary() -> None:
    from dataflows.counters import FlowCounters
    from dataflows.flows.metrics import FlowCollector
    from dataflows.flows.samples import samples_summary

    counters = FlowCounters()
    assert samples_summary(counters) == ""
    counters.add({"samples_out": 3, "samples_out.by_area": 3, "sample_items": 12})
    exported = {(s.name, tuple(s.labels.values())): s.value for m in FlowCollector(counters).collect()
                for s in m.samples}
    assert exported[("driftline_samples_out_total", ("by_area",))] == 3
    assert "sample messages out   3 (12 sampled events)" in samples_summary(counters)
