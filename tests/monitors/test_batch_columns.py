"""The drift flow's partition step summarises batch columns: the same partials, bit for bit,
as the per-event path it replaced (kept below as the oracle), with batches cut anywhere,
late events, several partitions in a batch and a pickled restart mid-run.

Windows here hold fewer events than the KLL sketch's k, so its contents are exact and
comparable; past k a KLL sketch draws random bits (DataSketches' own generator, not
seedable), so no two runs, per event or batched, serialise alike, and only its rank error
is guaranteed (tests/summaries)."""

from __future__ import annotations

import math
import pickle

import numpy as np
import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from features.event_batch import BatchDecoder
from features.events import DecodeLimits, Event, EventDecoder
from features.monitors.base_windows import PartitionWindows, _seed
from features.monitors.config import Monitor, MultivariateSpec, ReferenceSpec
from features.monitors.reference import Row, sample_rows
from features.samples.reservoirs import UniformReservoir
from features.schema import parse_schema
from features.summaries.window import WindowAccumulator, WindowSummary
from features.windows.engine import PartitionClocks

MIN = 60_000
MONITORS = (
    Monitor("m", ("price", "n"), ("pay", "ok"), MIN, (MIN,), ReferenceSpec("first_windows"),
            multivariate=MultivariateSpec(sample=5)),
    Monitor("h", ("price",), (), 2 * MIN, (2 * MIN,), ReferenceSpec("first_windows")),
)
SCHEMA = parse_schema({"entity": "area", "event_time": "ts", "fields": {
    "area": "string", "price": {"type": "float", "nullable": True}, "n": {"type": "int", "required": False},
    "pay": {"type": "category", "values": ["card", "cash"], "nullable": True}, "ok": "bool"}})
DECODER = BatchDecoder(EventDecoder(SCHEMA, DecodeLimits()))


def oracle(monitors: tuple[Monitor, ...], lateness: int, batches: list[list[Event]]) -> tuple[dict, list]:
    """The per-event path: lateness event by event, each batch's events grouped by
    (partition, window) in arrival order, columns read from the events' fields."""
    clocks = PartitionClocks(lateness)
    open_: dict = {}
    late = []
    for events in batches:
        kept = []
        for e in events:
            behind = clocks.behind(e)
            (kept.append(e) if behind is None else late.append((e.offset, behind)))
        for m in monitors:
            groups: dict[tuple[int, int], list[Event]] = {}
            for e in kept:
                groups.setdefault((e.partition, e.time_ms - e.time_ms % m.window_ms), []).append(e)
            for (p, start), group in groups.items():
                key = (m.name, p, start)
                if key not in open_:
                    sample = UniformReservoir[Row](m.multivariate.sample, _seed(*key)) if m.multivariate else None
                    open_[key] = (WindowAccumulator(start, start + m.window_ms, m.numeric, m.categorical), sample)
                acc, sample = open_[key]
                fields = [e.fields for e in group]
                columns: dict = {c: np.array([math.nan if f.get(c) is None else f.get(c) for f in fields], float)
                                 for c in m.numeric}
                columns.update({c: [f.get(c) for f in fields] for c in m.categorical})
                acc.add_columns(columns, event_count=len(fields))
                if sample is not None:
                    sample.extend(sample_rows(fields, m.numeric))
    return open_, late


def described(partials: list) -> dict:
    return {(p.monitor, p.partition, p.summary.start_ms): (p.summary.to_bytes(), p.sample and
                                                          (p.sample.seen, p.sample.sample())) for p in partials}


rows = st.tuples(st.integers(0, 2), st.integers(0, 4 * MIN), st.one_of(st.none(), st.floats(-1e6, 1e6)),
                 st.one_of(st.none(), st.integers(-5, 5)), st.sampled_from(["card", "cash", "other", None]),
                 st.booleans())


@settings(max_examples=80, deadline=None)
@given(rows=st.lists(rows, min_size=1, max_size=120), cuts=st.lists(st.integers(1, 30), min_size=1, max_size=4),
       lateness=st.sampled_from([0, 5_000, MIN]), restart=st.none() | st.integers(0, 5))
def test_batch_columns_give_the_per_event_partials(rows: list, cuts: list[int], lateness: int,
                                                   restart: int | None) -> None:
    values, parts = [], []
    for p, t, price, n, pay, ok in rows:
        fields = {"area": "a", "ts": 1_767_225_600_000 + t, "price": price, "pay": pay, "ok": ok}
        if n is not None:
            fields["n"] = n
        values.append(orjson.dumps(fields))
        parts.append(p)
    batch, rejected = DECODER.decode(values, 1_767_225_600_000 + 10 * MIN, parts, list(range(len(values))))
    assert not rejected
    batches, i, j = [], 0, 0
    while i < len(batch):
        batches.append(batch.take(np.arange(i, min(i + cuts[j % len(cuts)], len(batch)))))
        i, j = i + cuts[j % len(cuts)], j + 1

    windows = PartitionWindows(MONITORS, lateness)
    late, partials = [], []
    for j, b in enumerate(batches):
        if j == restart:
            windows = pickle.loads(pickle.dumps(windows))
        closed, positions, watermarks = windows.add_batch(b)
        partials += closed
        late += [(int(b.offsets[i]), w) for i, w in zip(positions.tolist(), watermarks.tolist())]
    partials += windows.flush()

    expected, expected_late = oracle(MONITORS, lateness, [b.events() for b in batches])
    assert late == expected_late
    assert described(partials) == {
        key: (WindowSummary(acc.start_ms, acc.end_ms, acc.event_count, acc.columns).to_bytes(),
              sample and (sample.seen, sample.sample())) for key, (acc, sample) in expected.items()}


def test_a_batch_of_one_partition_reads_no_json() -> None:
    """The summaries come from the decoded columns: the events' JSON is not parsed again."""
    values = [b'{"area": "a", "ts": 1767225600000, "price": 2.5, "pay": "card", "ok": true}'] * 3
    batch, _ = DECODER.decode(values, 1_767_225_700_000, [0, 0, 0], [0, 1, 2])
    windows = PartitionWindows(MONITORS[1:], 0)
    windows.add_batch(batch)
    assert "records" not in batch._cache
    (acc, _, _), = windows.open.values()
    assert acc.summary().columns["price"].count == 3
