"""Sampling from batch columns: the same samples however the stream is cut into batches,
spread over partitions or restarted from pickles; equal to a brute-force bottom-k oracle;
hashes that do not depend on the batch; uniform inclusion over many seeds."""

from __future__ import annotations

import pickle
import random
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from features.event_batch import EventBatch
from features.events import Event
from features.samples.config import SampleSet
from features.samples.identity import batch_identities, identity_hashes, keyed, set_key
from features.samples.messages import sample_messages
from features.samples.priority import priority_keys
from features.samples.windows import PaneSampler, SampleWindows, stratum_ranker
from features.windows.config import Filter, WindowSpec
from tests.samples.test_reservoirs import P_MIN, inclusions, uniform_pvalue

MINUTE = 60_000
SETS = [
    SampleSet("u", WindowSpec("tumbling", MINUTE, MINUTE), 3, id_field="id"),
    SampleSet("h", WindowSpec("hopping", 3 * MINUTE, MINUTE), 4, id_field="id", seed=3),
    SampleSet("w", WindowSpec("tumbling", MINUTE, MINUTE), 3, "weighted", weight_field="price", id_field="id"),
    SampleSet("r", WindowSpec("hopping", 2 * MINUTE, MINUTE), 2, "weighted", half_life_ms=20_000),
    SampleSet("p", WindowSpec("tumbling", MINUTE, MINUTE), 2, "stratified", stratum_field="pay", max_strata=2,
              id_field="id"),
    SampleSet("f", WindowSpec("tumbling", MINUTE, MINUTE), 2, where=Filter("pay", frozenset({"a", "b"}))),
]

# Events with ids (a few repeated: at-least-once duplicates are exact copies), weights
# (some not positive or null) and strata, in any time order over five minutes.
rows = st.tuples(st.integers(0, 30), st.integers(0, 5 * MINUTE - 1),
                 st.one_of(st.none(), st.floats(-1.0, 50.0)), st.sampled_from("abcde"))


def _events(rs: list[tuple[int, int, float | None, str]]) -> list[Event]:
    first: dict[int, tuple[int, float | None, str]] = {}
    for i, t, w, c in rs:
        first.setdefault(i, (t, w, c))  # a repeated id repeats its first event
    return [Event("x", first[i][0], {"id": f"r-{i}", "ts": first[i][0], "price": first[i][1], "pay": first[i][2]})
            for i, *_ in rs]


streams = st.lists(rows, min_size=1, max_size=80).map(_events)


def cut(events: list[Event], sizes: list[int]) -> list[list[Event]]:
    """`events` in consecutive batches of the given sizes (cycled)."""
    out, i, j = [], 0, 0
    while i < len(events):
        n = sizes[j % len(sizes)]
        out.append(events[i:i + n])
        i, j = i + n, j + 1
    return out


def run(spec: SampleSet, events: list[Event], sizes: list[int], partitions: int = 1,
        pickle_at: int | None = None) -> list[dict[str, Any]]:
    """Messages of `spec` for events cut into batches, batch j read by partition j % partitions;
    with `pickle_at`, every state goes through pickle after that many batches (a restart)."""
    samplers = [PaneSampler(spec) for _ in range(partitions)]
    windows = SampleWindows(spec, lateness_ms=0, partitions=partitions)
    closed = []
    for j, batch in enumerate(cut(events, sizes)):
        if j == pickle_at:
            samplers, windows = pickle.loads(pickle.dumps((samplers, windows)))
        sampler = samplers[j % partitions]
        sampler.add(batch)
        for start, pane in sampler.release(min(e.time_ms for e in batch) - 5 * MINUTE):
            windows.absorb(start, pane)
    for sampler in samplers:
        for start, pane in sampler.release_all():
            windows.absorb(start, pane)
    closed += windows.flush()
    return [m for c in closed for m in sample_messages(c, 0)]


def oracle(spec: SampleSet, events: list[Event]) -> list[tuple[int, str | None, int, list[tuple[float, str]]]]:
    """Per window and stratum: events seen and the k smallest (key, hash) of distinct
    identities, computed from all events at once."""
    if spec.where is not None:
        events = [e for e in events if e.fields.get(spec.where.field) in spec.where.values]
    batch = EventBatch.of(events)
    h = keyed(identity_hashes(batch_identities(batch, spec.id_field)), set_key(spec.seed, spec.name))
    keys = priority_keys(spec, h, batch)
    length, step = spec.window.length_ms, spec.window.step_ms
    rank = stratum_ranker(spec.seed, spec.name)
    out = []
    for end in sorted({e.time_ms - e.time_ms % step + j * step for e in events
                       for j in range(1, length // step + 1)}):
        inside = [i for i, e in enumerate(events) if end - length <= e.time_ms < end]
        if not inside:
            continue
        strata: dict[str | None, list[int]] = {}
        for i in inside:
            strata.setdefault(events[i].fields["pay"] if spec.stratum_field else None, []).append(i)
        kept = sorted(strata, key=lambda s: (rank(s), s) if s is not None else (0, ""))[:spec.max_strata]
        overflow = [i for s in strata if s not in kept for i in strata[s]]
        parts = [(s, strata[s]) for s in sorted(kept, key=lambda s: s or "")] + ([(None, overflow)] if overflow else [])
        for name, members in parts:
            best = sorted({(float(keys[i]), int(h[i])) for i in members if np.isfinite(keys[i])})[:spec.k]
            out.append((end, name, len(members), [(key, f"{hh:016x}") for key, hh in best]))
    return out


def observed(messages: list[dict[str, Any]]) -> list[tuple[int, str | None, int, list[tuple[float, str]]]]:
    return [(m["window"]["end_ms"], m["stratum"], m["seen"], [(i["key"], i["hash"]) for i in m["items"]])
            for m in messages]


@settings(max_examples=60, deadline=None)
@given(events=streams, sizes=st.lists(st.integers(1, 40), min_size=1, max_size=5), partitions=st.integers(1, 3),
       pickle_at=st.none() | st.integers(0, 6), order=st.randoms(use_true_random=False))
def test_batches_partitions_and_restarts_give_the_oracle_sample(events: list[Event], sizes: list[int],
                                                                partitions: int, pickle_at: int | None,
                                                                order: random.Random) -> None:
    shuffled = list(events)
    order.shuffle(shuffled)
    for spec in SETS:
        one_at_a_time = run(spec, events, [1])
        assert run(spec, shuffled, sizes, partitions, pickle_at) == one_at_a_time, spec.name
        assert run(spec, events, [len(events)]) == one_at_a_time, spec.name
        assert observed(one_at_a_time) == oracle(spec, events), spec.name


@given(ids=st.lists(st.binary(max_size=40), min_size=1, max_size=20))
def test_an_identity_hashes_alike_in_any_batch(ids: list[bytes]) -> None:
    together = identity_hashes(ids)
    alone = np.concatenate([identity_hashes([i]) for i in ids])
    assert together.tolist() == alone.tolist()
    distinct = {i: h for i, h in zip(ids, together.tolist())}
    assert len(set(distinct.values())) == len(distinct)  # no collision among a few ids


def test_keys_are_uniform_and_inclusion_is_k_over_n_over_many_seeds() -> None:
    """Fixed events, 3,000 seeds: each of n events is sampled with probability k/n, and the
    pooled uniform keys fill ten equal bins evenly."""
    n, k, seeds = 30, 4, 3_000
    batch = EventBatch.of([Event("x", i, {"id": f"ride-{i:06d}"}) for i in range(n)])
    base = identity_hashes(batch_identities(batch, "id"))
    samples, keys = [], []
    for seed in range(seeds):
        spec = SampleSet("s", WindowSpec("tumbling", MINUTE, MINUTE), k, id_field="id", seed=seed)
        u = priority_keys(spec, keyed(base, set_key(seed, "s")), batch)
        samples.append(np.argsort(u)[:k].tolist())
        keys.append(u)
    assert uniform_pvalue(inclusions(samples, n), k) > P_MIN
    counts = np.bincount((np.concatenate(keys) * 10).astype(int), minlength=10)
    expected = n * seeds / 10
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 27.9  # chi-squared, 9 degrees of freedom, p = 0.001
