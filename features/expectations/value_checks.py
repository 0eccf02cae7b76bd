"""Expectations checked value by value: a regex on strings, a type; mergeable evaluators.

A spec (`Matches`, `HasType`) is a frozen dataclass; `spec.checker()` gives a `ValueCheck`
to feed values into (`add`, `update`), which counts checked, failed and null values, keeps
a few failing examples (chosen by a hash of their text, so they do not depend on the order
or the split of the values), merges with `merge_checks` and pickles (Bytewax snapshots).
Nulls (None, NaN) are counted apart and not checked; `NotNull` covers them on summaries.

>>> c = HasType("price", "number", mostly=0.9).checker()
>>> c.update([1.5, "2.0", None, 3]); r = c.result()
>>> r.verdict, r.observed, r.examples
('fail', '66.7% number', ("'2.0'",))
"""

from __future__ import annotations

import math
import re
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal, Union

import numpy as np

from features.expectations.results import (
    MAX_EXAMPLES, ExpectationResult, Spec, check_mostly, percent, result_from_bounds,
)
from features.summaries.numeric_values import INVALID, classify

TypeName = Literal["number", "integer", "string", "boolean"]


@dataclass(frozen=True)
class Matches(Spec):
    """String values matching a regular expression (`re.search`) for a `mostly` share.

    >>> c = Matches("plate", r"^[A-Z]{2}-\\d{3}$").checker()
    >>> c.update(["AB-123", "ab-123", None, 42]); r = c.result()
    >>> r.observed, r.examples
    ('33.3% match ^[A-Z]{2}-\\\\d{3}$', ('42', "'ab-123'"))
    """

    pattern: str = ""
    mostly: float = 1.0
    compiled: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_mostly(self.mostly)
        try:
            object.__setattr__(self, "compiled", re.compile(self.pattern))
        except re.error as err:
            raise ValueError(f"Matches on {self.column!r}: pattern {self.pattern!r} is not a "
                             f"regular expression ({err})") from err

    def accepts(self, value: object) -> bool:
        """True for a string the pattern is found in."""
        return isinstance(value, str) and self.compiled.search(value) is not None

    def describe(self) -> str:
        """The expectation, as results name it."""
        return f"values match {self.pattern}"

    def observed_word(self) -> str:
        """How the observed share is worded ("40.0% match ...")."""
        return f"match {self.pattern}"

    def checker(self) -> ValueCheck:
        """An empty evaluator to feed values into."""
        return ValueCheck(self)


def _is_boolean(value: object) -> bool:
    return isinstance(value, (bool, np.bool_))


_TYPE_CHECKS = {
    "number": lambda v: classify(v) is not INVALID,
    "integer": lambda v: isinstance(v, (int, np.integer)) and not _is_boolean(v),
    "string": lambda v: isinstance(v, str),
    "boolean": _is_boolean,
}


@dataclass(frozen=True)
class HasType(Spec):
    """Non-null values of one type: "number" (int, float, numpy number; not bool),
    "integer", "string" or "boolean".

    >>> c = HasType("n", "integer").checker(); c.update([1, 2, 3.5, True])
    >>> c.result().observed
    '50.0% integer'
    """

    type_name: TypeName = "number"
    mostly: float = 1.0

    def __post_init__(self) -> None:
        check_mostly(self.mostly)
        if self.type_name not in _TYPE_CHECKS:
            raise ValueError(f"HasType on {self.column!r}: type_name must be one of "
                             f"{sorted(_TYPE_CHECKS)}, got {self.type_name!r}")

    def accepts(self, value: object) -> bool:
        """True for a value of the type."""
        return bool(_TYPE_CHECKS[self.type_name](value))

    def describe(self) -> str:
        """The expectation, as results name it."""
        return f"values of type {self.type_name}"

    def observed_word(self) -> str:
        """How the observed share is worded ("40.0% integer")."""
        return self.type_name

    def checker(self) -> ValueCheck:
        """An empty evaluator to feed values into."""
        return ValueCheck(self)


ValueSpec = Union[Matches, HasType]


def _is_null(value: object) -> bool:
    return value is None or (isinstance(value, (float, np.floating)) and math.isnan(value))


class ValueCheck:
    """Counts values that pass or fail a per-value expectation; mergeable, picklable.

    Nulls are counted apart and not checked. Keeps `MAX_EXAMPLES` distinct failing values
    (as repr): those with the smallest CRC-32 of their text, in that order, a deterministic
    sample that any split of the values into partitions gives alike; so counts and examples
    merge exactly (associative, commutative): a Kafka run over three partitions shows the
    examples a replay of the same events shows.

    >>> a = HasType("x", "string").checker(); a.update(["a", 1])
    >>> b = HasType("x", "string").checker(); b.add("b")
    >>> m = merge_checks(a, b); m.checked, m.failed, m.examples
    (3, 1, ['1'])
    """

    __slots__ = ("spec", "checked", "failed", "nulls", "examples")

    def __init__(self, spec: ValueSpec) -> None:
        self.spec = spec
        self.checked = 0
        self.failed = 0
        self.nulls = 0
        self.examples: list[str] = []

    def add(self, value: object) -> None:
        """Check one value."""
        if _is_null(value):
            self.nulls += 1
            return
        self.checked += 1
        if not self.spec.accepts(value):
            self.failed += 1
            text = repr(value)[:80]
            examples = self.examples
            if text not in examples and (len(examples) < MAX_EXAMPLES or _rank(text) < _rank(examples[-1])):
                self.examples = sorted([*examples, text], key=_rank)[:MAX_EXAMPLES]

    def update(self, values: Iterable[object]) -> None:
        """Check a batch of values."""
        for value in values:
            self.add(value)

    def result(self) -> ExpectationResult:
        """The expectation's outcome over every value fed so far (exact)."""
        spec, n = self.spec, self.checked
        observed = (f"{percent(1 - self.failed / n, spec.mostly)} {spec.observed_word()}"
                    if n else "no values to check")
        return result_from_bounds(spec, spec.describe(), n, self.failed, self.failed, self.failed,
                       observed, self.examples)

    def __repr__(self) -> str:
        return f"ValueCheck({self.spec!r}, checked={self.checked}, failed={self.failed})"


def merge_checks(a: ValueCheck, b: ValueCheck) -> ValueCheck:
    """A new check over both inputs' values (inputs untouched)."""
    if a.spec != b.spec:
        raise ValueError(f"cannot merge checks of different expectations: {a.spec} and {b.spec}")
    out = ValueCheck(a.spec)
    out.checked, out.failed = a.checked + b.checked, a.failed + b.failed
    out.nulls = a.nulls + b.nulls
    out.examples = sorted(set(a.examples) | set(b.examples), key=_rank)[:MAX_EXAMPLES]
    return out


def _rank(text: str) -> tuple[int, str]:
    return zlib.crc32(text.encode()), text
