"""Numeric values from events: what counts as a number, a null, or an invalid value.

Shared by the numeric summary's batch and per-value paths, so both classify alike. Numbers
are ints, floats and numpy numbers (anything `numbers.Real`); booleans are not (a JSON
`true` in a numeric field is a type error); None and NaN are nulls; infinities stay floats.

>>> [classify(v) for v in (1, 2.5, None)]
[1.0, 2.5, None]
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable

import numpy as np
import numpy.typing as npt

INVALID = object()  # marks a value that is not a number


def classify(value: object) -> float | None | object:
    """A value as a float, None for a null (None, NaN), or `INVALID` for a non-number.

    Booleans are not numbers here: a JSON `true` in a numeric field is a type error. Integers
    beyond the float range become infinities, like numbers that overflow.

    >>> classify(3), classify(None), classify(float("nan")), classify("3") is INVALID
    (3.0, None, None, True)
    """
    if type(value) is float:
        return None if value != value else value
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        return INVALID
    try:
        x = float(value)
    except OverflowError:  # an int beyond the float range
        return math.inf if value > 0 else -math.inf  # type: ignore[operator]
    return None if math.isnan(x) else x


def coerce(values: npt.ArrayLike | Iterable[object]) -> tuple[np.ndarray, int]:
    """A batch as a float64 array (nulls as NaN) and the number of invalid values left out.

    Numeric numpy arrays convert without a Python loop; other inputs go value by value
    through `classify`, since numpy would parse "3.5" and turn True into 1.0.

    >>> x, invalid = coerce([1, None, "a", True]); x.tolist(), invalid
    ([1.0, nan], 2)
    """
    if isinstance(values, np.ndarray) and values.dtype.kind in "iuf":
        return np.ascontiguousarray(values, dtype=np.float64).ravel(), 0
    if isinstance(values, np.ndarray):
        values = values.ravel().tolist()
    out: list[float] = []
    invalid = 0
    for v in values:  # type: ignore[union-attr]
        x = classify(v)
        if x is INVALID:
            invalid += 1
        else:
            out.append(math.nan if x is None else x)  # type: ignore[arg-type]
    return np.array(out, dtype=np.float64), invalid
