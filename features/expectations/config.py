"""Expectations in the config: the `expectations` list of a `[[monitors]]` entry.

Each entry names one column (or, for `compare`, two fields) and exactly one kind:

```toml
expectations = [
  { column = "distance_km", range = { min = 0, max = 100 }, mostly = 0.99 },
  { column = "payment", in = ["card", "cash", "wallet"] },
  { column = "ride_id", regex = "^ride-" },
  { column = "surge", not_null = true, mostly = 0.95 },
  { column = "price", type = "number" },
  { compare = "dropoff_ts > pickup_ts", mostly = 0.99 },
]
```

`mostly` (default 1.0) is the share of checked values that must comply. `range`, `in` and
`not_null` (and `type = "number"` on a numeric column of the monitor) are answered from the
base window's summaries, so their column must be one the monitor summarises; `regex`,
`type` otherwise, and `compare` are checked event by event on any declared field (and the
event-time field, for `compare`).

>>> from features.schema import parse_schema
>>> schema = parse_schema({"entity": "area", "event_time": "ts",
...     "fields": {"area": "string", "price": "float", "ride_id": "string"}})
>>> es = parse_expectations([{"column": "price", "range": {"min": 0}, "mostly": 0.99},
...                          {"column": "ride_id", "regex": "^ride-"}], "m", ("price",), (), schema)
>>> [(e.test, e.per_event, e.spec.mostly) for e in es]
[('range', False, 0.99), ('regex', True, 1.0)]
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Union, get_args

from features.drift.alert_policy import EXPECTATION_TESTS as KINDS
from features.config_values import ConfigError, join_key, read_float, read_str, read_str_list, reject_unknown_keys
from features.expectations.column_checks import HasType, InSet, Matches, NotNull, NumericType, ValueRange
from features.expectations.pair_checks import Compare
from features.schema import EventSchema
from features.expectations.value_checks import TypeName

TYPE_NAMES = get_args(TypeName)
_KEYS = {"column", "mostly", *KINDS}
AnySpec = Union[ValueRange, InSet, NotNull, NumericType, Matches, HasType, Compare]


@dataclass(frozen=True)
class Expectation:
    """One configured expectation: its kind (`test` of its drift events), the spec, and
    whether it is checked event by event (`per_event`) or on the window's summaries."""

    test: str
    spec: AnySpec
    per_event: bool

    @property
    def column(self) -> str:
        """The column the expectation is about (for `compare`: the expression)."""
        return self.spec.column

    def value(self, fields: Mapping[str, Any]) -> object:
        """What an event contributes to a per-event check.

        >>> Expectation("regex", Matches("id", "^r"), True).value({"id": "r1"})
        'r1'
        """
        spec = self.spec
        if isinstance(spec, Compare):
            return Compare.pair(fields, spec.left, spec.right)
        return fields.get(spec.column)


def _declared(name: str, key: str, schema: EventSchema, extra: tuple[str, ...] = ()) -> None:
    if name not in schema.field_names and name not in extra:
        raise ConfigError(key, f"a field declared in [schema.fields] ({', '.join(schema.field_names)})",
                          name, f"declare {name!r} in [schema.fields] or correct the name.")


def _monitored(name: str, key: str, kinds: tuple[str, ...], allowed: tuple[str, ...], test: str) -> None:
    if name not in allowed:
        raise ConfigError(key, f"a {' or '.join(kinds)} column of this monitor (checked on its summaries)",
                          name, f"add {name!r} to the monitor's {' or '.join(kinds)} list, or drop the `{test}` expectation.")


def parse_expectation(table: Any, prefix: str, numeric: tuple[str, ...], categorical: tuple[str, ...],
                      schema: EventSchema) -> Expectation:
    """One entry of `expectations` (module docstring)."""
    if not isinstance(table, dict):
        raise ConfigError(prefix, "a table such as { column = \"price\", range = { min = 0 } }", table,
                          "write each expectation as an inline table.")
    reject_unknown_keys(table, _KEYS, prefix)
    kinds = [k for k in KINDS if k in table]
    if len(kinds) != 1:
        raise ConfigError(prefix, f"exactly one of {', '.join(KINDS)}", kinds or None,
                          "split the entry: one expectation per table.")
    test = kinds[0]
    key = join_key(prefix, test)
    try:
        mostly = read_float(table, "mostly", prefix, default=1.0, low=0.0, high=1.0)
    except ConfigError as err:
        raise ConfigError(join_key(prefix, "mostly"), "a fraction in [0, 1]", table.get("mostly"),
                          "0.95 means 95% of the values must comply.") from err
    if test == "compare":
        if "column" in table:
            raise ConfigError(join_key(prefix, "column"), "no column on a compare (it names its two fields)",
                              table["column"], 'remove `column`; write compare = "dropoff_ts > pickup_ts".')
        try:
            spec = Compare.parse(read_str(table, "compare", prefix, example="dropoff_ts > pickup_ts"), mostly)
        except ValueError as err:
            raise ConfigError(key, "'field op field' with op one of > >= < <= == !=", table["compare"],
                              'write e.g. compare = "dropoff_ts > pickup_ts".') from err
        for side in (spec.left, spec.right):
            _declared(side, key, schema, (schema.event_time,))
        return Expectation(test, spec, True)
    column = read_str(table, "column", prefix, example="price")
    col_key = join_key(prefix, "column")
    if test == "range":
        _monitored(column, col_key, ("numeric",), numeric, test)
        bounds = table["range"]
        if not isinstance(bounds, dict) or not bounds:
            raise ConfigError(key, "a table with min, max or both", bounds, "write range = { min = 0, max = 100 }.")
        reject_unknown_keys(bounds, {"min", "max"}, key)
        low = read_float(bounds, "min", key) if "min" in bounds else None
        high = read_float(bounds, "max", key) if "max" in bounds else None
        if low is not None and high is not None and low > high:
            raise ConfigError(key, "min <= max", bounds, "swap min and max.")
        return Expectation(test, ValueRange(column, low, high, mostly), False)
    if test == "in":
        _monitored(column, col_key, ("categorical",), categorical, test)
        return Expectation(test, InSet(column, frozenset(read_str_list(table, "in", prefix)), mostly), False)
    if test == "not_null":
        _monitored(column, col_key, ("numeric", "categorical"), numeric + categorical, test)
        if table["not_null"] is not True:
            raise ConfigError(key, "true", table["not_null"], "write not_null = true, or remove the expectation.")
        return Expectation(test, NotNull(column, mostly), False)
    _declared(column, col_key, schema)
    if test == "regex":
        try:
            return Expectation(test, Matches(column, read_str(table, "regex", prefix), mostly), True)
        except ValueError as err:
            raise ConfigError(key, "a Python regular expression", table["regex"], f"correct it: {err}.") from err
    type_name = read_str(table, "type", prefix)
    if type_name not in TYPE_NAMES:
        raise ConfigError(key, f"one of {', '.join(TYPE_NAMES)}", type_name, 'write e.g. type = "number".')
    if type_name == "number" and column in numeric:
        return Expectation(test, NumericType(column, mostly), False)
    return Expectation(test, HasType(column, type_name, mostly), True)  # type: ignore[arg-type]


def parse_expectations(raw: Any, prefix: str, numeric: tuple[str, ...], categorical: tuple[str, ...],
                       schema: EventSchema) -> tuple[Expectation, ...]:
    """A monitor's `expectations` list (absent: none); one expectation per column and kind.

    >>> parse_expectations(None, "m", (), (), None)
    ()
    """
    if raw is None:
        return ()
    key = join_key(prefix, "expectations")
    if not isinstance(raw, list):
        raise ConfigError(key, "a list of inline tables", raw, 'write expectations = [ { column = "price", '
                          'range = { min = 0 } } ].')
    out = tuple(parse_expectation(t, f"{key}[{i}]", numeric, categorical, schema) for i, t in enumerate(raw))
    seen: set[tuple[str, str]] = set()
    for i, e in enumerate(out):
        if (e.column, e.test) in seen:
            raise ConfigError(f"{key}[{i}]", f"one {e.test} expectation per column", e.column,
                              "merge the two entries into one.")
        seen.add((e.column, e.test))
    return out
