"""Label decoding (its fast path and the checks behind it) and the prediction messages' event times."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from features.events import Reason
from features.messages import iso_utc
from features.models.config import LabelSpec
from features.models.labels import Label, LabelDecoder
from features.models.messages import event_time_iso

DECODER = LabelDecoder(LabelSpec("rides.labels", "ride_id", "cancelled"), max_bytes=200)


@pytest.mark.parametrize("raw, expected", [
    (b'{"ride_id": "r1", "ts": 5, "cancelled": true}', Label("r1", 5, True, 1, 2)),
    (b'{"ride_id": "r1", "ts": 0, "cancelled": "yes", "x": null}', Label("r1", 0, "yes", 1, 2)),
    (b'{"ride_id": "r1", "ts": 5, "cancelled": 3}', Label("r1", 5, 3, 1, 2)),
    (b'{"ride_id": 7, "ts": 5, "cancelled": false}', Label("7", 5, False, 1, 2)),
    (b'{"ride_id": "r1", "ts": 5, "cancelled": 0.5}', Label("r1", 5, 0.5, 1, 2)),
    (b'{"ride_id": "r1", "ts": 5.0, "cancelled": true}', Label("r1", 5, True, 1, 2)),
    (b'{"ride_id": "r1", "ts": "1970-01-01T00:00:01Z", "cancelled": true}', Label("r1", 1000, True, 1, 2)),
    (b'{"ride_id": "r1", "ts": -1, "cancelled": true}', Reason.BAD_TIMESTAMP),
    (b'{"ride_id": "r1", "ts": true, "cancelled": true}', Reason.BAD_TIMESTAMP),
    (b'{"ride_id": true, "ts": 5, "cancelled": true}', Reason.WRONG_TYPE),
    (b'{"ride_id": "r1", "ts": 5, "cancelled": null}', Reason.WRONG_TYPE),
    (b'{"ride_id": "r1", "ts": 5, "cancelled": [1]}', Reason.WRONG_TYPE),
    (b'{"ride_id": "r1", "cancelled": true}', Reason.MISSING_FIELD),
    (b'{"ts": 5, "cancelled": true}', Reason.MISSING_FIELD),
    (b'[1]', Reason.NOT_OBJECT),
    (b'null', Reason.NOT_JSON),
    (b'{"ride_id": "r1", "ts": 5, "cancelled": NaN}', Reason.NOT_JSON),
    (b'{"ride_id": "r1", "ts": 5, "cancelled": true, "x": 1e999}', Reason.NOT_JSON),  # orjson: out of range
    (b'{"ride_id": "r1", "ts": 5, "cancelled": 18446744073709551615}', Label("r1", 5, 2**64 - 1, 1, 2)),
    (b'{"ride_id": "' + b"r" * 200 + b'", "ts": 5, "cancelled": true}', Reason.OVERSIZED),
])
def test_label_decoding(raw: bytes, expected: Label | Reason) -> None:
    result = DECODER.decode(raw, 1, 2)
    if isinstance(expected, Label):
        assert result == expected and type(result.key) is str and type(result.time_ms) is int
    else:
        assert result.reason == expected


@given(st.integers(0, 2**45))
def test_event_time_iso_is_iso_utc(ms: int) -> None:
    assert event_time_iso(ms) == iso_utc(ms)


def _label_json() -> st.SearchStrategy[bytes]:
    """Label-like messages: the three fields or not, of any JSON type, extra and repeated
    fields, integers at orjson's and msgspec's bounds, and a few broken ones."""
    scalars = st.one_of(st.none(), st.booleans(), st.text(max_size=4),
                        st.integers(-(2**64), 2**65) | st.sampled_from([2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63),
                                                                        -(2**63) - 1, 0, -1]),
                        st.floats(allow_nan=False, allow_infinity=False))
    values = st.one_of(scalars, st.lists(scalars, max_size=2), st.dictionaries(st.text(max_size=2), scalars, max_size=2))
    names = st.sampled_from(["ride_id", "ts", "cancelled", "other"])
    pairs = st.lists(st.tuples(names, values), max_size=6)

    def render(items: list[tuple[str, object]]) -> bytes:
        import json
        return ("{" + ", ".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in items) + "}").encode()

    common = st.tuples(st.text(max_size=6), st.integers(0, 2**64), st.one_of(st.booleans(), st.integers(), st.text())) \
        .map(lambda t: [("ride_id", t[0]), ("ts", t[1]), ("cancelled", t[2])])
    return st.one_of(pairs.map(render), common.map(render),
                     st.tuples(common.map(render), st.binary(max_size=3)).map(lambda t: t[0] + t[1]))


@given(_label_json())
def test_the_fast_path_decodes_as_the_general_one(raw: bytes) -> None:
    """msgspec's typed decoder of the common label gives what orjson and the checks give."""
    decoder = LabelDecoder(LabelSpec("rides.labels", "ride_id", "cancelled"))
    fast, general = decoder.decode(raw, 1, 2), decoder._decode(raw, 1, 2)
    assert fast == general and type(fast) is type(general)
    if isinstance(fast, Label):
        assert type(fast.value) is type(general.value) and type(fast.time_ms) is int


def test_the_fast_path_takes_the_common_label() -> None:
    decoder = LabelDecoder(LabelSpec("rides.labels", "ride_id", "cancelled"))
    assert decoder._fast is not None
    assert decoder._fast.decode(b'{"ride_id": "r1", "ts": 5, "cancelled": true}').key == "r1"
