"""An expectation between two fields of the same event: `dropoff_ts > pickup_ts`.

No summary can answer it (the summaries keep columns apart), so it is checked event by
event through the mergeable `ValueCheck` of `features.expectations.value_checks`: the value fed is the
pair (left, right), or None when either side is null or missing (counted apart, not checked,
as the other value-by-value checks do with nulls).

>>> c = Compare.parse("dropoff_ts > pickup_ts", mostly=0.9).checker()
>>> c.update([Compare.pair(e, "dropoff_ts", "pickup_ts") for e in
...           [{"dropoff_ts": 5, "pickup_ts": 1}, {"dropoff_ts": 1, "pickup_ts": 5}, {"pickup_ts": 2}]])
>>> r = c.result(); r.verdict, r.observed, r.examples, c.nulls
('fail', '50.0% dropoff_ts > pickup_ts', ('(1, 5)',), 1)
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from features.expectations.results import Spec, check_mostly
from features.expectations.value_checks import ValueCheck

OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le,
    "==": operator.eq, "!=": operator.ne,
}
_EXPRESSION = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_.-]*)\s*(>=|<=|==|!=|>|<)\s*([A-Za-z_][A-Za-z0-9_.-]*)\s*$")


@dataclass(frozen=True)
class Compare(Spec):
    """`left op right` on two fields of each event, for a `mostly` share of the events that
    have both. `column` is the expression without spaces (it names the result and the
    drift event). Values of types that do not compare (a string and a number) fail.
    """

    left: str = ""
    op: str = ">"
    right: str = ""
    mostly: float = 1.0

    def __post_init__(self) -> None:
        check_mostly(self.mostly)
        if self.op not in OPERATORS:
            raise ValueError(f"Compare: operator {self.op!r} is not one of {', '.join(OPERATORS)}")

    @classmethod
    def parse(cls, expression: str, mostly: float = 1.0) -> Compare:
        """From "left op right" (two field names; op one of > >= < <= == !=).

        >>> Compare.parse("a>=b").column
        'a>=b'
        """
        match = _EXPRESSION.match(expression)
        if match is None:
            raise ValueError(f"{expression!r} is not 'field op field' with op one of {' '.join(OPERATORS)}")
        left, op, right = match.groups()
        return cls(f"{left}{op}{right}", left, op, right, mostly)

    @staticmethod
    def pair(fields: Mapping[str, Any], left: str, right: str) -> tuple[Any, Any] | None:
        """What an event contributes: (left, right), or None when a side is null or missing."""
        a, b = fields.get(left), fields.get(right)
        return None if a is None or b is None else (a, b)

    def accepts(self, value: object) -> bool:
        """True when the pair satisfies the comparison."""
        try:
            return bool(OPERATORS[self.op](*value))  # type: ignore[misc]
        except TypeError:
            return False

    def describe(self) -> str:
        """The expectation, as results name it."""
        return f"{self.left} {self.op} {self.right}"

    def observed_word(self) -> str:
        """How the observed share is worded ("98.0% dropoff_ts > pickup_ts")."""
        return self.describe()

    def checker(self) -> ValueCheck:
        """An empty evaluator to feed pairs into."""
        return ValueCheck(self)  # type: ignore[arg-type]
