"""The synthetic ride-hailing stream: rides, late arrivals, malformed events, delayed labels
and planted changes, for the demo, the tests and the benchmarks.

The same `StreamSpec` always gives byte-identical output: every draw comes from numpy
`Generator(PCG64)` streams seeded from the spec (never the wall clock), in fixed-size chunks,
and every message is serialised by orjson from dicts built in one fixed field order.

A ride event (keyed by its area) matches `deploy/rides.toml`; its label (keyed by the ride id)
says whether the ride was cancelled and follows it once the stream's event time has passed
the label's own time (`label_delay_ms` later on average):

>>> out = list(generate(StreamSpec(events=3, seed=1, late_fraction=0.0, label_delay_ms=1)))
>>> [(m.kind, m.index) for m in out]
[('event', 0), ('event', 1), ('label', 0), ('event', 2), ('label', 1), ('label', 2)]
>>> out[0].key, orjson.loads(out[0].value)
(b'area-01', {'ride_id': 'ride-1-0', 'area': 'area-01', 'ts': 1767225600000, 'price': 12.05, 'distance_km': 4.832, 'surge': 1.37, 'eta_min': 7.4, 'payment': 'wallet'})
>>> out[2].key, orjson.loads(out[2].value)
(b'ride-1-0', {'ride_id': 'ride-1-0', 'ts': 1767225600001, 'cancelled': False})

Planted changes (`dataflows.synth.planted_changes`) and malformed events (`dataflows.synth.malformed_events`:
one message in `1 / malformed_fraction`, each with the `Reason` the decoder must give) are
described in their own modules.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np
import orjson

from dataflows.synth.malformed_events import MalformedPlan, malformed_event
from dataflows.synth.planted_changes import Change, ConceptDrift, CovariateShift, NewCategory, UnitChange
from features.events import DecodeLimits

# --- the rides ------------------------------------------------------------------------------

PAYMENTS = ("card", "cash", "wallet")  # the vocabulary declared in deploy/rides.toml
_PAYMENT_CDF = np.cumsum([0.6, 0.25, 0.15])
START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
_CHUNK = 8192  # events drawn per numpy call; fixed, because the draws depend on it
CONCEPT_DRIFT_ETA_MIN = 10.0  # after a concept drift, half the riders waiting this long cancel


# --- the stream -------------------------------------------------------------------------------

@dataclass(frozen=True)
class StreamSpec:
    """Everything that determines a stream; equal specs give byte-identical streams.

    `events` counts every message of the events topic, valid and malformed. Event time runs
    at `rate_per_s` from `start_ms`. A `late_fraction` of events lag up to `late_max_ms`
    behind (within the 10 s lateness of deploy/rides.toml, so they still count) and a
    `very_late_fraction` lag `very_late_lag_ms` behind (they go to the late topic).

    >>> StreamSpec(events=1000, malformed_fraction=0.01).malformed
    10
    """

    events: int
    seed: int = 0
    malformed_fraction: float = 0.0
    changes: tuple[Change, ...] = ()
    start_ms: int = START_MS
    rate_per_s: float = 200.0
    late_fraction: float = 0.01
    late_max_ms: int = 8_000
    very_late_fraction: float = 0.001
    very_late_lag_ms: tuple[int, int] = (20_000, 60_000)
    label_delay_ms: float = 120_000.0
    areas: int = 50
    max_event_bytes: int = DecodeLimits().max_event_bytes  # oversized events are just above this

    def __post_init__(self) -> None:
        object.__setattr__(self, "changes", tuple(self.changes))
        for name in ("events", "seed", "start_ms"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an integer >= 0, found {value!r}")
        for name in ("malformed_fraction", "late_fraction", "very_late_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], found {getattr(self, name)!r}")
        if self.late_fraction + self.very_late_fraction > 1.0:
            raise ValueError("late_fraction + very_late_fraction must be at most 1")
        low, high = self.very_late_lag_ms
        if not (0 <= self.late_max_ms and 0 <= low <= high):
            raise ValueError("lags must be >= 0 and very_late_lag_ms a (low, high) pair with low <= high")
        if not (self.rate_per_s > 0 and self.label_delay_ms >= 1 and self.areas >= 1 and self.max_event_bytes >= 1):
            raise ValueError("rate_per_s must be > 0, label_delay_ms >= 1, areas >= 1 and max_event_bytes >= 1")
        bad = [c for c in self.changes if not isinstance(c, (CovariateShift, NewCategory, ConceptDrift, UnitChange))]
        if bad:
            raise ValueError(f"changes must be planted changes (see parse_change), found {bad[0]!r}")

    @property
    def malformed(self) -> int:
        """How many of the events are malformed: round(events * malformed_fraction)."""
        return min(self.events, round(self.events * self.malformed_fraction))


@dataclass(frozen=True, slots=True)
class Produced:
    """One message, in production order.

    `kind` says the topic: "event" (key: the area) or "label" (key: the ride id).
    `expected_reason` is the `Reason` value the decoder must give a malformed event, else None.
    `index` is the event's position in the events stream; for a label, that of its ride.
    """

    kind: Literal["event", "label"]
    key: bytes | None
    value: bytes
    expected_reason: str | None
    index: int


Row = tuple[str, "bytes | None", bytes, "str | None", int]  # Produced's fields, as a plain tuple


def generate(spec: StreamSpec) -> Iterator[Produced]:
    """Every message of the stream in production order, events and labels interleaved.

    >>> kinds = [m.kind for m in generate(StreamSpec(events=100, seed=3))]
    >>> kinds.count("event"), kinds.count("label")
    (100, 100)
    """
    for batch in generate_batches(spec):
        for row in batch:
            yield Produced(*row)


def generate_batches(spec: StreamSpec) -> Iterator[list[Row]]:
    """The messages of `generate` as lists of plain `Row` tuples: the fast path for writers.

    >>> sum(len(batch) for batch in generate_batches(StreamSpec(events=10)))
    20
    """
    seeds = np.random.SeedSequence(spec.seed).spawn(2 + len(spec.changes))
    draws = np.random.Generator(np.random.PCG64(seeds[0]))
    # Malformed positions and per-change draws have their own streams, so a valid event is
    # the same whatever the malformed fraction, and a change touches nothing before its start.
    plan = MalformedPlan(spec.events, spec.malformed, np.random.Generator(np.random.PCG64(seeds[1])))
    change_rngs = [np.random.Generator(np.random.PCG64(s)) for s in seeds[2:]]
    names = [f"area-{a:0{max(2, len(str(spec.areas - 1)))}d}" for a in range(spec.areas)]
    keys = [name.encode() for name in names]
    weights = 1.0 / np.arange(1, spec.areas + 1) ** 1.1  # Zipf-like: a few busy areas
    area_cdf = np.cumsum(weights / weights.sum())
    pending = _Pending()
    clock = 0.0
    for start in range(0, spec.events, _CHUNK):
        stop = min(start + _CHUNK, spec.events)
        rides, clock = _draw_rides(draws, change_rngs, spec, start, stop, clock, area_cdf)
        yield _serialise(rides, spec, names, keys, plan, pending)
    tail: list[Row] = []
    pending.release(tail, None)
    if tail:
        yield tail


class _Pending:
    """Labels waiting for the stream's event time to reach theirs, released in (time, ride) order.

    The heap holds plain ints `time << 40 | ride index` (an int compares faster than a
    tuple, and the heap holds ~rate x delay labels); the messages wait in a dict by index.
    """

    def __init__(self) -> None:
        self.heap: list[int] = []
        self.messages: dict[int, tuple[bytes, bytes]] = {}

    def release(self, out: list[Row], now: int | None) -> None:
        """Append the labels due at event time `now` (every label when None) to `out`."""
        heap, messages = self.heap, self.messages
        bound = None if now is None else ((now + 1) << _INDEX_BITS)
        while heap and (bound is None or heap[0] < bound):
            index = heapq.heappop(heap) & _INDEX_MASK
            key, value = messages.pop(index)
            out.append(("label", key, value, None, index))


_INDEX_BITS = 40  # ride indices below 2**40 (10^12 events): far beyond any run
_INDEX_MASK = (1 << _INDEX_BITS) - 1


@dataclass(frozen=True, slots=True)
class _Rides:
    """One chunk of rides as Python lists, ready to serialise."""

    start: int
    area: list[int]
    ts: list[int]
    now: list[int]  # the stream's event time at each event: its on-time timestamp
    price: list[float]
    distance_km: list[float]
    surge: list[float | None]
    eta_min: list[float]
    payment: list[str]
    label_ts: list[int]
    cancelled: list[bool]


def _draw_rides(rng: np.random.Generator, change_rngs: list[np.random.Generator], spec: StreamSpec,
                start: int, stop: int, clock: float, area_cdf: np.ndarray) -> tuple[_Rides, float]:
    n = stop - start
    index = np.arange(start, stop)
    gaps = rng.exponential(1000.0 / spec.rate_per_s, n)
    on_time = clock + np.cumsum(gaps) - gaps  # ms since start_ms; the first event is at start_ms
    lateness, lag_u = rng.random(n), rng.random(n)
    area = np.searchsorted(area_cdf, rng.random(n), side="right").clip(0, spec.areas - 1)
    values = {
        "distance_km": 0.3 + rng.lognormal(math.log(4.0), 0.6, n),
        "surge": np.where(rng.random(n) < 0.35, 1.0 + rng.exponential(0.35, n), 1.0),
        "eta_min": (1.0 + rng.gamma(2.0, 2.5, n)) * (1.0 + area / spec.areas),  # remote areas wait longer
    }
    surge_null = rng.random(n) < 0.01
    price_noise = rng.lognormal(0.0, 0.12, n)
    payment = np.searchsorted(_PAYMENT_CDF, rng.random(n), side="right").clip(0, len(PAYMENTS) - 1)
    delay = 1.0 + rng.exponential(spec.label_delay_ms - 1.0, n)  # >= 1 ms: a label follows its ride
    cancel_u = rng.random(n)

    shifts = [c for c in spec.changes if isinstance(c, CovariateShift)]
    for name in ("distance_km", "surge", "eta_min"):
        _shift(values, name, shifts, index)
    values["price"] = (2.5 + 1.1 * values["distance_km"]) * values["surge"] * price_noise
    _shift(values, "price", shifts, index)

    lag = np.where(lateness < spec.late_fraction, lag_u * spec.late_max_ms, 0.0)
    low, high = spec.very_late_lag_ms
    very_late = (lateness >= spec.late_fraction) & (lateness < spec.late_fraction + spec.very_late_fraction)
    lag = np.where(very_late, low + lag_u * (high - low), lag)
    now = spec.start_ms + np.floor(on_time).astype(np.int64)
    ts = np.maximum(now - np.floor(lag).astype(np.int64), 0)
    cancelled = cancel_u < _cancel_probability(values, index, spec.changes)
    label_ts = ts + np.ceil(delay).astype(np.int64)

    for change in spec.changes:
        if isinstance(change, UnitChange):  # a reporting bug: applied after everything derived
            values[change.field] = np.where(_in_span(index, change.start, change.end),
                                            values[change.field] * change.factor, values[change.field])
    payments = np.asarray(PAYMENTS, dtype=object)[payment]
    for change, change_rng in zip(spec.changes, change_rngs):
        if isinstance(change, NewCategory):
            chosen = (change_rng.random(n) < change.share) & (index >= change.start)
            payments[chosen] = change.value
    surge = np.round(values["surge"], 2).tolist()
    for j in np.flatnonzero(surge_null).tolist():
        surge[j] = None
    rides = _Rides(start, area.tolist(), ts.tolist(), now.tolist(), np.round(values["price"], 2).tolist(),
                   np.round(values["distance_km"], 3).tolist(), surge, np.round(values["eta_min"], 1).tolist(),
                   payments.tolist(), label_ts.tolist(), cancelled.tolist())
    return rides, clock + float(gaps.sum())


def _in_span(index: np.ndarray, start: int, end: int | None) -> np.ndarray:
    return (index >= start) if end is None else ((index >= start) & (index < end))



def _shift(values: dict[str, np.ndarray], name: str, shifts: list[CovariateShift], index: np.ndarray) -> None:
    for change in shifts:
        if change.field == name:
            inside = _in_span(index, change.start, change.end)
            values[name] = np.where(inside, values[name] * change.scale + change.add, values[name])


def _cancel_probability(values: dict[str, np.ndarray], index: np.ndarray, changes: tuple[Change, ...]) -> np.ndarray:
    """P(cancelled | the ride), a logistic function of the wait (`eta_min`), whose shape a
    concept drift changes (`ConceptDrift` says how and why).

    >>> eta = np.array([4.0, 9.0, 14.0, 20.0])
    >>> before = _cancel_probability({"eta_min": eta}, np.arange(4), ())
    >>> after = _cancel_probability({"eta_min": eta}, np.arange(4), (ConceptDrift(start=0),))
    >>> np.round(before, 3).tolist(), np.round(after, 3).tolist()
    ([0.021, 0.069, 0.206, 0.537], [0.002, 0.269, 0.982, 1.0])
    """
    starts = [c.start for c in changes if isinstance(c, ConceptDrift)]
    eta = values["eta_min"]
    patient = -2.6 + 0.25 * (eta - 9.0)  # a long wait makes cancelling a little more likely
    impatient = eta - CONCEPT_DRIFT_ETA_MIN  # past it most riders cancel; short waits hardly ever
    logit = np.where(index >= min(starts), impatient, patient) if starts else patient
    return 1.0 / (1.0 + np.exp(-np.clip(logit, -30.0, 30.0)))


def _serialise(rides: _Rides, spec: StreamSpec, names: list[str], keys: list[bytes],
               plan: MalformedPlan, pending: _Pending) -> list[Row]:
    """Events in index order; after each, the labels whose time the stream has reached."""
    out: list[Row] = []
    append, dumps, push, pop = out.append, orjson.dumps, heapq.heappush, heapq.heappop
    # orjson's bytes keep a 4 KiB allocation whatever their length; an exact copy is cheaper
    # than holding thousands of those (pending labels, whole streams in tests).
    exact, view = bytes, memoryview
    heap, messages = pending.heap, pending.messages
    prefix = f"ride-{spec.seed}-"
    bad = iter(plan.below(rides.start + len(rides.ts)))
    next_bad, ordinal = next(bad, (-1, 0))
    rows = zip(rides.area, rides.ts, rides.now, rides.price, rides.distance_km, rides.surge, rides.eta_min,
               rides.payment, rides.label_ts, rides.cancelled)
    for i, (area, ts, now, price, distance, surge, eta, payment, label_ts, cancelled) in enumerate(rows, rides.start):
        ride_id = prefix + str(i)
        event = {"ride_id": ride_id, "area": names[area], "ts": ts, "price": price, "distance_km": distance,
                 "surge": surge, "eta_min": eta, "payment": payment}
        if i == next_bad:
            reason, value = malformed_event(event, ordinal, spec.max_event_bytes)
            append(("event", keys[area], value, reason, i))
            next_bad, ordinal = next(bad, (-1, 0))
        else:
            append(("event", keys[area], exact(view(dumps(event))), None, i))
            label = exact(view(dumps({"ride_id": ride_id, "ts": label_ts, "cancelled": cancelled})))
            push(heap, (label_ts << _INDEX_BITS) | i)
            messages[i] = (ride_id.encode(), label)
        due = (now + 1) << _INDEX_BITS  # inlined `pending.release(out, now)`: the hot loop
        while heap and heap[0] < due:
            index = pop(heap) & _INDEX_MASK
            key, value = messages.pop(index)
            append(("label", key, value, None, index))
    return out

