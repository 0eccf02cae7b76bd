"""Helpers shared by the summaries' JSON forms: base64 sketch bytes and JSON-safe floats.

A summary's JSON form (`to_dict`) must survive any JSON encoder and decoder exactly. Sketch
bytes travel as base64 text; floats travel as JSON numbers, except the non-finite ones (a sum
or a fourth moment can overflow to infinity), which JSON has no token for: orjson writes them
as `null` and the stdlib writes the non-standard `Infinity`. They travel as the strings
"inf", "-inf" and "nan" instead, and `float_from_json` reads both forms back.

>>> float_to_json(1.5), float_to_json(float("inf")), float_from_json("inf", "sum")
(1.5, 'inf', inf)
"""

from __future__ import annotations

import base64
import math

_NON_FINITE = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}


def b64encode(data: bytes) -> str:
    """Sketch bytes as base64 text for JSON.

    >>> b64encode(b"hi")
    'aGk='
    """
    return base64.b64encode(data).decode("ascii")


def b64decode(text: str, field: str) -> bytes:
    """Base64 text back to bytes, naming the field when the text is not base64.

    >>> b64decode("aGk=", "kll")
    b'hi'
    """
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError, AttributeError) as err:
        raise ValueError(f"summary field {field!r}: expected base64 text, got {str(text)[:40]!r}; "
                         "pass the dict produced by to_dict()") from err


def float_to_json(value: float) -> float | str:
    """A float as a JSON number, or as "inf" / "-inf" / "nan" when it is not finite.

    >>> float_to_json(-math.inf), float_to_json(2.0)
    ('-inf', 2.0)
    """
    if math.isfinite(value):
        return value
    return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")


def float_from_json(value: float | int | str, field: str) -> float:
    """The float that `float_to_json` wrote (numbers, or the three non-finite strings).

    >>> float_from_json(3, "mean"), float_from_json("-inf", "sum")
    (3.0, -inf)
    """
    if isinstance(value, str):
        if value in _NON_FINITE:
            return _NON_FINITE[value]
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise ValueError(f"summary field {field!r}: expected a number or one of 'inf', '-inf', "
                     f"'nan', got {value!r}; pass the dict produced by to_dict()")
