"""Planted changes for the synthetic ride stream (`dataflows.synth.generator`): a covariate shift, a
new category, a concept drift and a unit change, each with the command-line form that
`parse_change` reads.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# The ride fields a change may name: numeric ones (shift, unit) and categories (category).
NUMERIC_FIELDS = ("price", "distance_km", "surge", "eta_min")
CATEGORY_FIELDS = ("payment",)


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
    """From event `start`, the relation between the features and `cancelled` changes in one
    region of the input space (a competitor now picks riders up faster).

    Before: P(cancelled) grows slowly with the wait (`eta_min`): 2% at 4 minutes, 7% at 9,
    21% at 14, 54% at 20; 7.3% of rides overall, so a model predicts "cancelled" only for
    the longest waits. After: riders waiting more than 10 minutes mostly cancel (50% at 10,
    95% at 13) and short waits hardly ever (0.2% at 4 minutes); about 21% of rides overall.
    A model trained before keeps answering "not cancelled" for waits of 10 to 19 minutes
    (about 18% of the rides), so its error rises by several points at once; a fresh one
    learns the new boundary from a few hundred labels. The rides themselves, every field,
    keep their distribution (the events are byte-identical with and without the change):
    only the labels, hence a model's error (or label drift), can reveal it.

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

