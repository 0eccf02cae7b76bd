"""The batch decoder accepts and rejects exactly what the single-message decoder does, with the same reasons."""

from __future__ import annotations

import pickle
import random

import numpy as np
import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from features.event_batch import BatchDecoder, EventBatch
from features.events import DecodeLimits, Event, EventDecoder
from features.schema import parse_schema
from tests.flows.test_hostile_input import hostile_message

SCHEMA = parse_schema({
    "entity": "area", "event_time": "ts", "time_format": "epoch_ms",
    "fields": {"area": "string", "price": "float", "n": {"type": "int", "nullable": True},
               "surge": {"type": "float", "nullable": True, "required": False}, "ok": {"type": "bool", "required": False},
               "payment": {"type": "category", "values": ["card", "cash"]}},
})
NOW = 1_767_225_600_000
LIMITS = DecodeLimits(max_event_bytes=4_096, max_future_ms=86_400_000)

values = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=False, allow_infinity=False),
                   st.text(max_size=5), st.sampled_from(["card", "cash", "wallet"]), st.lists(st.integers(), max_size=2))
times = st.one_of(st.integers(NOW - 10**6, NOW + 10**6), st.integers(-2**65, 2**65), st.sampled_from(
    [NOW + 86_400_001, -1, 0, "2026-01-01T00:00:00Z", NOW + 0.5, None]), values)


@st.composite
def messages(draw) -> bytes | None:
    kind = draw(st.integers(0, 9))
    obj = {"area": draw(st.sampled_from(["a", "b", "", 7])), "ts": draw(times), "price": draw(values),
           "n": draw(values), "payment": draw(values)}
    if kind >= 8:  # valid, or nearly: the fast path's own cases
        obj = {"area": draw(st.sampled_from(["a", "b"])), "ts": draw(st.integers(NOW - 10**6, NOW + 10**6)),
               "price": draw(st.one_of(st.floats(-1e9, 1e9), st.integers(-10**6, 10**6))),
               # Integers beyond 64 bits: orjson reads them as floats, so the fast path refuses them too.
               "n": draw(st.one_of(st.none(), st.integers(-10**6, 10**6), st.integers(-2**70, 2**70))),
               "payment": draw(st.sampled_from(["card", "cash", "wallet"]))}
    for optional in ("surge", "ok"):
        if draw(st.booleans()):
            obj[optional] = draw(values)
    for name in draw(st.sets(st.sampled_from(sorted(obj)), max_size=2)) if kind == 1 else ():
        del obj[name]
    if kind == 2:
        return None
    if kind == 3:
        return draw(st.binary(max_size=40))
    if kind == 4:
        return hostile_message(random.Random(draw(st.integers(0, 10**6))), draw(st.integers(0, 10**6)))
    try:
        raw = orjson.dumps(obj)
    except TypeError:
        return b"{}"
    if kind == 5:
        raw = raw.replace(b'"price":', b'"price":NaN,"x":', 1)
    if kind == 6:
        raw = b"\xef\xbb\xbf" + raw
    if kind == 7:
        raw = raw[: draw(st.integers(0, len(raw)))]
    return raw


def _single(decoder: EventDecoder, raws: list[bytes | None]) -> list[Event | tuple[str, str]]:
    out = []
    for i, raw in enumerate(raws):
        result = decoder.decode(raw, NOW, i % 3, i)
        out.append(result if type(result) is Event else (result.reason.value, result.detail))
    return out


def _batched(raws: list[bytes | None]) -> list[Event | tuple[str, str]]:
    decoder = BatchDecoder(EventDecoder(SCHEMA, LIMITS))
    batch, rejected = decoder.decode(raws, NOW, [i % 3 for i in range(len(raws))], list(range(len(raws))))
    out: list[Event | tuple[str, str] | None] = [None] * len(raws)
    for i, rejection in rejected:
        out[i] = (rejection.reason.value, rejection.detail)
    events = iter(batch.events())
    return [next(events) if o is None else o for o in out]


@settings(max_examples=300, deadline=None)
@given(st.lists(messages(), max_size=30))
def test_batch_decoding_equals_single_decoding(raws):
    assert _batched(raws) == _single(EventDecoder(SCHEMA, LIMITS), raws)


def test_columns_follow_the_events():
    raws = [orjson.dumps({"area": "a", "ts": NOW, "price": 1, "n": None, "payment": "wallet"}), b"bad",
            orjson.dumps({"area": "b", "ts": NOW + 1, "price": 2.5, "n": 3, "payment": "card", "surge": None})]
    batch, rejected = BatchDecoder(EventDecoder(SCHEMA, LIMITS)).decode(raws, NOW, [0, 0, 0], [0, 1, 2])
    assert [i for i, _ in rejected] == [1]
    assert batch.entities == ["a", "b"] and batch.offsets.tolist() == [0, 2]
    assert batch.values("price") == [1, 2.5] and batch.values("n") == [None, 3] and batch.values("surge") == [None, None]
    assert np.array_equal(batch.numbers("n"), [np.nan, 3.0], equal_nan=True)
    assert batch.unknown_categories(0) == ("payment",) and batch.unknown_categories(1) == ()
    taken = batch.take(np.array([1]))
    assert taken.entities == ["b"] and taken.records == [orjson.loads(raws[2])]
    assert EventBatch.of(batch.events()).events() == batch.events()
    for copy in (pickle.loads(pickle.dumps(batch)), pickle.loads(pickle.dumps(taken))):
        assert copy.events() == (batch if copy.entities == batch.entities else taken).events()
        assert copy.values("surge") == (batch if copy.entities == batch.entities else taken).values("surge")


def _typed(value: object) -> tuple[type, object]:
    return type(value), value


@settings(max_examples=300, deadline=None)
@given(st.lists(messages(), max_size=30))
def test_exact_numbers_columns_hold_what_single_decoding_reads(raws):
    """With `exact_numbers`, each column holds the value of the single decoder's event fields
    (orjson's), with its type: a JSON integer in a float field stays an integer, and one beyond
    what orjson reads as an integer is its float, as orjson makes it."""
    decoder = BatchDecoder(EventDecoder(SCHEMA, LIMITS), exact_numbers=True)
    batch, rejected = decoder.decode(raws, NOW, [0] * len(raws), list(range(len(raws))))
    events = [e for e in _single(EventDecoder(SCHEMA, LIMITS), raws) if type(e) is Event]
    assert len(batch) == len(events) and len(rejected) == len(raws) - len(events)
    for field in SCHEMA.field_names:
        assert [_typed(v) for v in batch.values(field)] == [_typed(e.fields.get(field)) for e in events]


def test_integers_beyond_64_bits_are_decided_as_single_decoding_does():
    # orjson reads integers in [-2**63, 2**64) as integers and others as floats, which an int field refuses.
    base = orjson.dumps({"area": "a", "ts": NOW, "price": 1.5, "n": 0, "payment": "card"})
    raws = [base.replace(b'"n":0', b'"n":' + str(n).encode()) for n in
            (2**63 - 1, 2**63, 2**64 - 1, 2**64, 10**30, -2**63, -2**63 - 1, -10**30)]
    assert _batched(raws) == _single(EventDecoder(SCHEMA, LIMITS), raws)
