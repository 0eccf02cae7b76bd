"""Event decoding: every rejection kind, valid edge cases, and vocabulary counting."""

from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from features.events import DecodeLimits, Event, EventDecoder, Reason, Rejection, parse_time_ms
from features.schema import parse_schema

NOW = 1_767_225_600_000  # 2026-01-01T00:00:00Z

SCHEMA = parse_schema({
    "entity": "area",
    "event_time": "ts",
    "time_format": "auto",
    "fields": {
        "area": "string",
        "price": "float",
        "seats": "int",
        "shared": {"type": "bool", "required": False},
        "surge": {"type": "float", "nullable": True},
        "payment": {"type": "category", "values": ["card", "cash"]},
    },
})
DECODER = EventDecoder(SCHEMA, DecodeLimits(max_event_bytes=1024, max_future_ms=60_000))
VALID = {"area": "a1", "ts": NOW, "price": 10.5, "seats": 2, "surge": 1.2, "payment": "card"}


def decode(obj: object) -> Event | Rejection:
    raw = obj if isinstance(obj, bytes) else orjson.dumps(obj)
    return DECODER.decode(raw, NOW)


def with_(**changes: object) -> dict:
    event = dict(VALID)
    for key, value in changes.items():
        if value is ...:
            del event[key]
        else:
            event[key] = value
    return event


def test_valid_event() -> None:
    event = decode(VALID)
    assert isinstance(event, Event)
    assert event.entity == "a1" and event.time_ms == NOW and event.fields["price"] == 10.5
    assert event.unknown_categories == ()


@pytest.mark.parametrize(
    ("raw", "reason", "detail"),
    [
        (b"\xff\xfe{", Reason.NOT_JSON, "not valid JSON"),
        (b'{"area": "a1", "ts"', Reason.NOT_JSON, "not valid JSON"),
        (None, Reason.NOT_JSON, "tombstone"),
        ([1, 2, 3], Reason.NOT_OBJECT, "found list"),
        ("text", Reason.NOT_OBJECT, "found str"),
        (with_(price=...), Reason.MISSING_FIELD, "'price'"),
        (with_(ts=...), Reason.MISSING_FIELD, "event-time field 'ts'"),
        (with_(price="cheap"), Reason.WRONG_TYPE, "expected a number"),
        (with_(price=True), Reason.WRONG_TYPE, "expected a number"),
        (with_(seats=2.5), Reason.WRONG_TYPE, "expected an integer"),
        (with_(area=17), Reason.WRONG_TYPE, "expected a string"),
        (with_(shared="yes"), Reason.WRONG_TYPE, "true or false"),
        (with_(price=None), Reason.WRONG_TYPE, "null but not nullable"),
        (b'{"area": "a1", "ts": 1767225600000, "price": NaN}', Reason.NON_FINITE, "'price'"),
        (b'{"area": "a1", "ts": 1767225600000, "price": Infinity}', Reason.NON_FINITE, "'price'"),
        (b'{"area": "a1", "ts": 1767225600000, "price": 1e999}', Reason.NON_FINITE, "'price'"),
        (with_(ts="yesterday"), Reason.BAD_TIMESTAMP, "ISO-8601"),
        (with_(ts=-5), Reason.BAD_TIMESTAMP, ">= 0"),
        (with_(ts=True), Reason.BAD_TIMESTAMP, "boolean"),
        (with_(ts=4_102_444_800_000), Reason.FUTURE_TIMESTAMP, "ahead of the clock"),
        (with_(note="x" * 2000), Reason.OVERSIZED, "max_event_bytes = 1024"),
    ],
)
def test_every_rejection_kind(raw: object, reason: Reason, detail: str) -> None:
    result = DECODER.decode(raw, NOW) if raw is None else decode(raw)
    assert isinstance(result, Rejection), result
    assert result.reason == reason
    assert detail in result.detail


def test_optional_and_nullable_fields() -> None:
    assert isinstance(decode(with_(surge=None)), Event)
    assert isinstance(decode(with_(shared=True)), Event)
    assert isinstance(decode(with_(price=11)), Event)  # an int is a valid float field


def test_unknown_category_is_counted_not_rejected() -> None:
    event = decode(with_(payment="crypto"))
    assert isinstance(event, Event)
    assert event.unknown_categories == ("payment",)


def test_iso_timestamps_are_normalised_to_utc() -> None:
    event = decode(with_(ts="2026-01-01T01:00:00+01:00"))
    assert isinstance(event, Event) and event.time_ms == NOW
    assert decode(with_(ts="2026-01-01T00:00:00Z")).time_ms == NOW
    assert decode(with_(ts="2026-01-01T00:00:00")).time_ms == NOW  # naive means UTC


def test_slightly_future_events_are_accepted() -> None:
    assert isinstance(decode(with_(ts=NOW + 59_000)), Event)


@given(st.integers(min_value=0, max_value=4_000_000_000_000))
def test_epoch_ms_and_iso_agree(ms: int) -> None:
    from features.messages import iso_utc

    assert parse_time_ms(iso_utc(ms), "iso8601") == ms


@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_raise(raw: bytes) -> None:
    assert isinstance(DECODER.decode(raw, NOW), (Event, Rejection))


@given(st.dictionaries(st.sampled_from(["area", "ts", "price", "seats", "surge", "payment", "x"]),
                       st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=5))))
def test_arbitrary_objects_never_raise(obj: dict) -> None:
    raw = json.dumps(obj).encode()  # stdlib json also writes NaN, Infinity and huge integers
    assert isinstance(DECODER.decode(raw, NOW), (Event, Rejection))


@given(st.dictionaries(st.sampled_from(["area", "ts", "price", "seats", "shared", "surge", "payment", "x"]),
                       st.one_of(st.none(), st.booleans(), st.integers(-5, 2 * NOW), st.floats(),
                                 st.sampled_from(["card", "cash", "crypto", "2026-01-01T00:00:00Z"]), st.just(...))))
def test_fast_path_decides_like_the_generic_validator(changes: dict) -> None:
    """The generated fast path only accepts; whatever it accepts, the generic loop accepts the same way."""
    for time_format in ("epoch_ms", "auto"):
        schema = parse_schema({"entity": "area", "event_time": "ts", "time_format": time_format,
                               "fields": {"area": "string", "price": "float", "seats": "int",
                                          "shared": {"type": "bool", "required": False},
                                          "surge": {"type": "float", "nullable": True},
                                          "payment": {"type": "category", "values": ["card", "cash"]}}})
        decoder = EventDecoder(schema, DecodeLimits(max_event_bytes=1024, max_future_ms=60_000))
        obj = {**VALID, "x": 1, "shared": True}
        obj.update(changes)
        obj = {k: v for k, v in obj.items() if v is not ...}
        assert decoder._accept(dict(obj), NOW, 1, 2) == decoder._validate(dict(obj), NOW, 1, 2)


@pytest.mark.parametrize("raw", [b"[" * 5000 + b"]" * 5000, b'{"a":' * 3000 + b"1" + b"}" * 3000])
def test_hostile_nesting_is_rejected_not_raised(raw: bytes) -> None:
    result = DECODER.decode(raw, NOW) if len(raw) <= 1024 else EventDecoder(SCHEMA, DecodeLimits()).decode(raw, NOW)
    assert isinstance(result, Rejection) and result.reason == Reason.NOT_JSON


@pytest.mark.parametrize("ts", [NOW // 1000, NOW // 1000 - 300, 0, 1, "1970-01-21T12:18:00Z"])
def test_timestamps_before_min_event_time_are_bad(ts: object) -> None:
    """Epoch seconds where milliseconds are expected (or zero) are dead-lettered, not windowed in 1970."""
    result = decode(with_(ts=ts))
    assert isinstance(result, Rejection), result
    assert result.reason == Reason.BAD_TIMESTAMP
    assert "min_event_time" in result.detail
    if ts in (NOW // 1000, NOW // 1000 - 300):
        assert "looks like epoch seconds" in result.detail


def test_min_event_time_is_configurable() -> None:
    schema = parse_schema({"entity": "area", "event_time": "ts", "min_event_time": "1970-01-01T00:00:00Z",
                           "fields": {"area": "string"}})
    assert schema.min_event_time_ms == 0
    assert isinstance(EventDecoder(schema, DecodeLimits()).decode(b'{"area": "a", "ts": 5}', NOW), Event)
    assert parse_schema({"entity": "area", "event_time": "ts", "min_event_time": 86_400_000,
                         "fields": {"area": "string"}}).min_event_time_ms == 86_400_000
    assert SCHEMA.min_event_time_ms == 946_684_800_000  # 2000-01-01T00:00:00Z by default
    from features.config_values import ConfigError

    with pytest.raises(ConfigError, match="schema.min_event_time"):
        parse_schema({"entity": "area", "event_time": "ts", "min_event_time": "soon", "fields": {"area": "string"}})


def test_a_utf8_bom_before_json_is_accepted() -> None:
    event = DECODER.decode(b"\xef\xbb\xbf" + orjson.dumps(VALID), NOW)
    assert isinstance(event, Event) and event.fields == VALID


_CORRUPTIONS = {
    # what is wrong with the bytes -> the reason a rejection must give (None: accepted)
    "bom": None,
    "utf16": Reason.NOT_JSON,
    "lone_surrogate": Reason.NOT_JSON,
    "truncated": Reason.NOT_JSON,
    "trailing_bom": Reason.NOT_JSON,
    "nan": Reason.NON_FINITE,
    "overflow": Reason.NON_FINITE,
    "array": Reason.NOT_OBJECT,
}


def _corrupt(kind: str, event: dict, cut: int) -> bytes:
    good = json.dumps(event)
    if kind == "bom":
        return b"\xef\xbb\xbf" + good.encode()
    if kind == "utf16":
        return good.encode("utf-16")
    if kind == "lone_surrogate":
        return good.replace('"area": ', '"area": "\\ud800", "area2": ', 1).encode()
    if kind == "truncated":
        return good.encode()[: min(cut, len(good) - 1)]
    if kind == "trailing_bom":
        return good.encode() + b"\xef\xbb\xbf"
    if kind == "nan":
        return good.replace('"price": ', '"price": NaN, "p": ', 1).encode()
    if kind == "overflow":
        return good.replace('"price": ', '"price": 1e999, "p": ', 1).encode()
    return f"[{good}]".encode()


@given(st.sampled_from(sorted(_CORRUPTIONS)), st.text(max_size=8), st.floats(-1e6, 1e6), st.integers(0, 200))
def test_a_rejection_names_what_is_wrong_with_the_bytes(kind: str, area: str, price: float, cut: int) -> None:
    """Every rejection's reason is the one for the corruption made: never a wrong reason."""
    raw = _corrupt(kind, with_(area=area or "a", price=price), cut)
    result = DECODER.decode(raw, NOW)
    expected = _CORRUPTIONS[kind]
    if expected is None:
        assert isinstance(result, Event), result
    else:
        assert isinstance(result, Rejection) and result.reason == expected, (raw, result)


def test_an_empty_entity_is_rejected_unless_allowed() -> None:
    result = decode(with_(area=""))
    assert isinstance(result, Rejection) and result.reason == Reason.WRONG_TYPE
    assert "'area' is the empty string" in result.detail and "allow_empty_entity" in result.detail
    schema = parse_schema({"entity": "area", "event_time": "ts", "allow_empty_entity": True,
                           "fields": {"area": "string"}})
    event = EventDecoder(schema, DecodeLimits()).decode(b'{"area": "", "ts": 1767225600000}', NOW)
    assert isinstance(event, Event) and event.entity == ""
