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
