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

Planted changes (`parse_change`) and malformed events (`REJECTION_KINDS`, one message
in `1 / malformed_fraction`, each with the `Reason` the decoder must give) are described
where they are defined.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import orjson

from features.events import DecodeLimits, Reason

# --- the rides ------------------------------------------------------------------------------

PAYMENTS = ("card", "cash", "wallet")  # the vocabulary declared in deploy/rides.toml
_PAYMENT_CDF = np.cumsum([0.6, 0.25, 0.15])
NUMERIC_FIELDS = ("price", "distance_km", "surge", "eta_min")
CATEGORY_FIELDS = ("payment",)
# Every field of a valid event, in the order it is serialised.
EVENT_FIELDS = ("ride_id", "area", "ts", "price", "distance_km", "surge", "eta_min", "payment")
START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
_CHUNK = 8192  # events drawn per numpy call; fixed, because the draws depend on it


# --- planted changes --------------------------------------------------------------------------

def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}, found {value!r}")


def _check_span(start: int, end: int | None) -> None:
    if isinstance(start, bool) or not isinstance(start, int) or start < 0:
        raise ValueError(f"start must be an event index >= 0, found {start!r}")
    if end is not None and (isinstance(end, bool) or not isinstance(end, int) or end <= start):
        raise ValueError(f"end must be an event index > start = {start}, found {end!r}")


def _finite(name: str, value: float) -> float:
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{name} must be a finite number, found {value!r}")
    return number


def _in_span(index: np.ndarray, start: int, end: int | None) -> np.ndarray:
    return (index >= start) if end is None else ((index >= start) & (index < end))


@dataclass(frozen=True)
class CovariateShift:
    """From event `start` (to `end`, exclusive, when given) `field` becomes `value * scale + add`.

    Quantities derived from the field follow (a longer distance or a higher surge raises the
    price) and labels see the shifted values, so P(cancelled | features) does not change:
    a pure covariate shift.

    >>> CovariateShift("price", start=600, scale=1.3).spec()
    'shift:price:start=600:scale=1.3:add=0.0'
    """

    field: str
    start: int
    scale: float = 1.0
    add: float = 0.0
    end: int | None = None

    def __post_init__(self) -> None:
        _check_choice("field", self.field, NUMERIC_FIELDS)
        _check_span(self.start, self.end)
        object.__setattr__(self, "scale", _finite("scale", self.scale))
        object.__setattr__(self, "add", _finite("add", self.add))

    def spec(self) -> str:
        """The text `parse_change` reads back into this change."""
        end = "" if self.end is None else f":end={self.end}"
        return f"shift:{self.field}:start={self.start}:scale={self.scale!r}:add={self.add!r}{end}"


@dataclass(frozen=True)
class NewCategory:
    """From event `start`, a `share` of the events carry `value` in the category `field`.

    The value is outside the declared vocabulary: the decoder counts it as an unknown category.

    >>> NewCategory("payment", "crypto", share=0.1, start=700).spec()
    'category:payment:crypto:share=0.1:start=700'
    """

    field: str
    value: str
    share: float
    start: int

    def __post_init__(self) -> None:
        _check_choice("field", self.field, CATEGORY_FIELDS)
        if not self.value or ":" in self.value or "=" in self.value:
            raise ValueError(f"the category value must be a non-empty word without ':' or '=', found {self.value!r}")
        share = _finite("share", self.share)
        if not 0.0 < share <= 1.0:
            raise ValueError(f"share must be in (0, 1], found {self.share!r}")
        object.__setattr__(self, "share", share)
        _check_span(self.start, None)

    def spec(self) -> str:
        """The text `parse_change` reads back into this change."""
        return f"category:{self.field}:{self.value}:share={self.share!r}:start={self.start}"


@dataclass(frozen=True)
class ConceptDrift:
    """From event `start`, the relation between the features and `cancelled` changes.

    Before: riders cancel when the wait (`eta_min`) is long. After: when the ride is
    expensive (`price`, `surge`); the wait no longer matters. The features themselves keep
    their distribution, so only a model's error (or label drift) can reveal it.

    >>> ConceptDrift(start=500).spec()
    'concept:start=500'
    """

    start: int

    def __post_init__(self) -> None:
        _check_span(self.start, None)

    def spec(self) -> str:
        """The text `parse_change` reads back into this change."""
        return f"concept:start={self.start}"


@dataclass(frozen=True)
class UnitChange:
    """Events in [`start`, `end`) report `field` multiplied by `factor` (a unit bug, e.g. metres
    for kilometres); nothing derived from the field changes.

    >>> UnitChange("distance_km", factor=1000, start=800, end=850).spec()
    'unit:distance_km:factor=1000.0:start=800:end=850'
    """

    field: str
    factor: float
    start: int
    end: int | None = None

    def __post_init__(self) -> None:
        _check_choice("field", self.field, NUMERIC_FIELDS)
        if _finite("factor", self.factor) == 0.0:
            raise ValueError("factor must not be 0")
        object.__setattr__(self, "factor", float(self.factor))
        _check_span(self.start, self.end)

    def spec(self) -> str:
        """The text `parse_change` reads back into this change."""
        end = "" if self.end is None else f":end={self.end}"
        return f"unit:{self.field}:factor={self.factor!r}:start={self.start}{end}"


Change = CovariateShift | NewCategory | ConceptDrift | UnitChange

CHANGE_FORMS = {
    "shift": "shift:FIELD:start=N:scale=X[:add=Y][:end=M]",
    "category": "category:FIELD:VALUE:share=X:start=N",
    "concept": "concept:start=N",
    "unit": "unit:FIELD:factor=X:start=N[:end=M]",
}
# Per kind: positional words, required options, optional options.
_SHAPES: dict[str, tuple[int, tuple[str, ...], tuple[str, ...]]] = {
    "shift": (1, ("start",), ("scale", "add", "end")),
    "category": (2, ("share", "start"), ()),
    "concept": (0, ("start",), ()),
    "unit": (1, ("factor", "start"), ("end",)),
}


def _options(parts: list[str], kind: str) -> tuple[list[str], dict[str, str]]:
    positional, required, optional = _SHAPES[kind]
    words, pairs = parts[:positional], parts[positional:]
    if len(words) < positional or any("=" in w for w in words):
        raise ValueError(f"expected {positional} word(s) after {kind!r} before the key=value options")
    options: dict[str, str] = {}
    for pair in pairs:
        key, eq, value = pair.partition("=")
        if not eq or not value:
            raise ValueError(f"expected key=value, found {pair!r}")
        if key not in required + optional:
            raise ValueError(f"unknown option {key!r} (known: {', '.join(required + optional)})")
        if key in options:
            raise ValueError(f"option {key!r} given twice")
        options[key] = value
    missing = [k for k in required if k not in options]
    if missing:
        raise ValueError(f"missing {', '.join(missing)}")
    return words, options


def _int(options: dict[str, str], key: str) -> int | None:
    if key not in options:
        return None
    try:
        return int(options[key])
    except ValueError:
        raise ValueError(f"{key} must be an integer, found {options[key]!r}") from None


def _float(options: dict[str, str], key: str, default: float) -> float:
    if key not in options:
        return default
    try:
        return float(options[key])
    except ValueError:
        raise ValueError(f"{key} must be a number, found {options[key]!r}") from None


def parse_change(text: str) -> Change:
    """A planted change from its command-line form; positions are event indices in the stream.

    Raises ValueError naming the spec and the expected form.

    >>> parse_change("unit:distance_km:factor=1000:start=800:end=850")
    UnitChange(field='distance_km', factor=1000.0, start=800, end=850)
    >>> parse_change("category:payment:crypto:share=0.1:start=700")
    NewCategory(field='payment', value='crypto', share=0.1, start=700)
    >>> parse_change("shift:price:scale=2")
    Traceback (most recent call last):
    ...
    ValueError: bad change 'shift:price:scale=2': missing start; expected shift:FIELD:start=N:scale=X[:add=Y][:end=M]
    """
    kind, *parts = text.strip().split(":")
    if kind not in CHANGE_FORMS:
        raise ValueError(f"bad change {text!r}: unknown kind {kind!r}; expected one of "
                         + ", ".join(CHANGE_FORMS.values()))
    try:
        words, options = _options(parts, kind)
        start = _int(options, "start")
        if kind == "shift":
            if "scale" not in options and "add" not in options:
                raise ValueError("give scale= or add= (or both)")
            return CovariateShift(words[0], start, _float(options, "scale", 1.0), _float(options, "add", 0.0),
                                  _int(options, "end"))
        if kind == "category":
            return NewCategory(words[0], words[1], _float(options, "share", 0.0), start)
        if kind == "concept":
            return ConceptDrift(start)
        return UnitChange(words[0], _float(options, "factor", 1.0), start, _int(options, "end"))
    except ValueError as exc:
        raise ValueError(f"bad change {text!r}: {exc}; expected {CHANGE_FORMS[kind]}") from None


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
    plan = _MalformedPlan(spec.events, spec.malformed, np.random.Generator(np.random.PCG64(seeds[1])))
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


def _shift(values: dict[str, np.ndarray], name: str, shifts: list[CovariateShift], index: np.ndarray) -> None:
    for change in shifts:
        if change.field == name:
            inside = _in_span(index, change.start, change.end)
            values[name] = np.where(inside, values[name] * change.scale + change.add, values[name])


def _cancel_probability(values: dict[str, np.ndarray], index: np.ndarray, changes: tuple[Change, ...]) -> np.ndarray:
    """P(cancelled): driven by the wait before a concept drift, by the price after it."""
    starts = [c.start for c in changes if isinstance(c, ConceptDrift)]
    by_wait = -2.6 + 0.25 * (values["eta_min"] - 9.0)
    by_price = -2.6 + 0.12 * (values["price"] - 12.0) + 0.8 * (values["surge"] - 1.0)
    logit = np.where(index >= min(starts), by_price, by_wait) if starts else by_wait
    return 1.0 / (1.0 + np.exp(-np.clip(logit, -30.0, 30.0)))


def _serialise(rides: _Rides, spec: StreamSpec, names: list[str], keys: list[bytes],
               plan: _MalformedPlan, pending: _Pending) -> list[Row]:
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


class _MalformedPlan:
    """Which event indices are malformed: exactly `count` of `events`, one at a random place
    in each of `count` equal strata, so they spread over the whole stream.

    Drawn lazily in blocks, so memory does not grow with the stream.
    """

    def __init__(self, events: int, count: int, rng: np.random.Generator) -> None:
        self._events, self._count, self._rng = events, count, rng
        self._next_k = 0
        self._queue: list[tuple[int, int]] = []  # (position, ordinal), ascending

    def below(self, end: int) -> list[tuple[int, int]]:
        """The (position, ordinal) pairs with position < end not handed out yet."""
        taken: list[tuple[int, int]] = []
        while True:
            if not self._queue:
                self._refill()
                if not self._queue:
                    return taken
            cut = next((j for j, (position, _) in enumerate(self._queue) if position >= end), len(self._queue))
            taken += self._queue[:cut]
            del self._queue[:cut]
            if self._queue:
                return taken

    def _refill(self) -> None:
        k = np.arange(self._next_k, min(self._next_k + _CHUNK, self._count), dtype=np.int64)
        if len(k) == 0:
            return
        self._next_k += len(k)
        low = k * self._events // self._count  # integer strata, each at least one event wide
        high = (k + 1) * self._events // self._count
        positions = low + np.floor(self._rng.random(len(k)) * (high - low)).astype(np.int64)
        self._queue = list(zip(positions.tolist(), k.tolist()))


# --- malformed events -------------------------------------------------------------------------

FAR_FUTURE_MS = 4_102_444_800_000  # 2100-01-01: far beyond max_future of the wall clock and of the stream
_NON_FINITE = (("price", b"NaN"), ("eta_min", b"Infinity"), ("distance_km", b"-Infinity"), ("surge", b"1e999"))
_WRONG_TYPES: tuple[tuple[str, Any], ...] = (
    ("price", "cheap"), ("distance_km", True), ("area", 7), ("payment", 1), ("eta_min", None),
    ("ride_id", 12345), ("surge", "high"),
)
_BAD_TIMES: tuple[Any, ...] = ("not-a-time", -1000, True, {"ms": 1})


def _not_json(event: dict[str, Any], variant: int, limit: int) -> bytes:
    text = orjson.dumps(event)
    return (text[: len(text) // 2], b"\xff\xfe" + text[2:20], b"ride " + event["ride_id"].encode(),
            b"{'area': '" + event["area"].encode() + b"'}")[variant % 4]


def _not_object(event: dict[str, Any], variant: int, limit: int) -> bytes:
    return (orjson.dumps(list(event.values())), orjson.dumps(event["ride_id"]), b"42", b"null")[variant % 4]


def _missing_field(event: dict[str, Any], variant: int, limit: int) -> bytes:
    gone = EVENT_FIELDS[variant % len(EVENT_FIELDS)]
    return orjson.dumps({k: v for k, v in event.items() if k != gone})


def _wrong_type(event: dict[str, Any], variant: int, limit: int) -> bytes:
    name, value = _WRONG_TYPES[variant % len(_WRONG_TYPES)]
    return orjson.dumps({**event, name: value})


def _non_finite(event: dict[str, Any], variant: int, limit: int) -> bytes:
    # orjson cannot write NaN or Infinity: put a marker there, then the literal bytes.
    name, literal = _NON_FINITE[variant % len(_NON_FINITE)]
    return orjson.dumps({**event, name: "@NF@"}).replace(b'"@NF@"', literal)


def _bad_timestamp(event: dict[str, Any], variant: int, limit: int) -> bytes:
    return orjson.dumps({**event, "ts": _BAD_TIMES[variant % len(_BAD_TIMES)]})


def _future_timestamp(event: dict[str, Any], variant: int, limit: int) -> bytes:
    return orjson.dumps({**event, "ts": FAR_FUTURE_MS + (variant % 1000) * 86_400_000})


def _oversized(event: dict[str, Any], variant: int, limit: int) -> bytes:
    # Otherwise a valid event: only its size is wrong.
    size = len(orjson.dumps(event)) + len(b',"note":""')
    return orjson.dumps({**event, "note": "x" * max(0, limit + 1 + variant % 97 - size)})


_BUILDERS = {
    Reason.NOT_JSON: _not_json,
    Reason.NOT_OBJECT: _not_object,
    Reason.MISSING_FIELD: _missing_field,
    Reason.WRONG_TYPE: _wrong_type,
    Reason.NON_FINITE: _non_finite,
    Reason.BAD_TIMESTAMP: _bad_timestamp,
    Reason.FUTURE_TIMESTAMP: _future_timestamp,
    Reason.OVERSIZED: _oversized,
}
assert set(_BUILDERS) == set(Reason), "every rejection reason needs a malformed-event builder"
REJECTION_KINDS: tuple[str, ...] = tuple(str(reason) for reason in Reason)


def malformed_event(event: dict[str, Any], ordinal: int, max_event_bytes: int = 65_536) -> tuple[str, bytes]:
    """The `ordinal`-th malformed event, built from a valid `event`: (expected reason, bytes).

    Ordinals cycle through every `Reason`, and through a few variants of each.

    >>> event = {"ride_id": "r1", "area": "area-01", "ts": START_MS, "price": 9.5, "distance_km": 2.0,
    ...          "surge": 1.0, "eta_min": 4.0, "payment": "card"}
    >>> malformed_event(event, 4)
    ('non_finite', b'{"ride_id":"r1","area":"area-01","ts":1767225600000,"price":NaN,"distance_km":2.0,"surge":1.0,"eta_min":4.0,"payment":"card"}')
    """
    kind = REJECTION_KINDS[ordinal % len(REJECTION_KINDS)]
    return kind, _BUILDERS[Reason(kind)](event, ordinal // len(REJECTION_KINDS), max_event_bytes)
