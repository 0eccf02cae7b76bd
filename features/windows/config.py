"""Feature sets in the config: which aggregations, over which window, written to which topic.

```toml
[[feature_sets]]
name = "area_1m"
window = { type = "tumbling", length = "1m" }
features = [
  { name = "rides", agg = "count" },
  { name = "mean_price", agg = "mean", field = "price" },
  { name = "p90_price", agg = "quantile", field = "price", q = 0.9 },
  { name = "cash_share", agg = "share", field = "payment", value = "cash" },
  { name = "card_rides", agg = "count", where = { field = "payment", eq = "card" } },
]
```

>>> from features.schema import parse_schema
>>> schema = parse_schema({"entity": "area", "event_time": "ts",
...                        "fields": {"area": "string", "price": "float"}})
>>> fs = parse_feature_set({"name": "a", "window": {"type": "hopping", "length": "10m", "step": "1m"},
...                         "features": [{"name": "n", "agg": "count"}]}, schema, "feature_sets[0]")
>>> fs.topic, fs.window.length_ms // fs.window.step_ms
('features.a', 10)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from features.config_values import (
    ConfigError,
    join_key,
    read_choice,
    read_duration_ms,
    read_float,
    read_int,
    read_str,
    read_table,
    reject_unknown_keys,
)
from features.schema import EventSchema

WINDOW_TYPES = ("tumbling", "hopping", "session", "last_n")
AGGREGATIONS = ("count", "sum", "mean", "min", "max", "std", "first", "last", "distinct",
                "quantile", "median", "rate", "share")
NUMERIC_AGGS = frozenset({"sum", "mean", "min", "max", "std", "quantile", "median"})
FIELD_AGGS = NUMERIC_AGGS | {"first", "last", "distinct", "share"}
EMIT_MODES = ("final", "update", "changes")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class WindowSpec:
    """A window: tumbling (length), hopping (length, step), session (gap), last_n (n, every)."""

    type: str
    length_ms: int = 0
    step_ms: int = 0
    gap_ms: int = 0
    n: int = 0


@dataclass(frozen=True)
class Filter:
    """Keep only events whose `field` equals one of `values`."""

    field: str
    values: frozenset[Any]

    def matches(self, fields: Mapping[str, Any]) -> bool:
        """True when the event's field holds one of the values.

        >>> Filter("payment", frozenset({"cash"})).matches({"payment": "cash"})
        True
        """
        return fields.get(self.field) in self.values


@dataclass(frozen=True)
class FeatureSpec:
    """One output value: an aggregation of a field (or of events) with an optional filter."""

    name: str
    agg: str
    field: str | None = None
    q: float | None = None
    value: Any = None
    where: Filter | None = None


@dataclass(frozen=True)
class StaticFeatures:
    """Per-entity batch values loaded from a CSV or JSONL file at start."""

    path: Path
    key: str


@dataclass(frozen=True)
class FeatureSet:
    """Features computed per entity over one window definition."""

    name: str
    entity: str
    topic: str
    window: WindowSpec
    features: tuple[FeatureSpec, ...]
    emit: str = "final"
    update_every_ms: int = 0
    static: StaticFeatures | None = None
    state_ttl_ms: int = 86_400_000  # last_n: forget an entity after this much event time without events


def parse_window(table: Mapping[str, Any], prefix: str) -> WindowSpec:
    """A window table.

    >>> parse_window({"type": "session", "gap": "5m"}, "w").gap_ms
    300000
    """
    kind = read_choice(table, "type", prefix, WINDOW_TYPES)
    if kind == "tumbling":
        reject_unknown_keys(table, {"type", "length"}, prefix)
        length = read_duration_ms(table, "length", prefix)
        _positive(length, join_key(prefix, "length"))
        return WindowSpec(kind, length_ms=length, step_ms=length)
    if kind == "hopping":
        reject_unknown_keys(table, {"type", "length", "step"}, prefix)
        length = read_duration_ms(table, "length", prefix)
        step = read_duration_ms(table, "step", prefix)
        _positive(step, join_key(prefix, "step"))
        if length <= 0 or length % step:
            raise ConfigError(join_key(prefix, "length"), f"a positive multiple of step ({step} ms)", length,
                              "hopping windows are built from panes of one step; make length = k x step.")
        return WindowSpec(kind, length_ms=length, step_ms=step)
    if kind == "session":
        reject_unknown_keys(table, {"type", "gap"}, prefix)
        gap = read_duration_ms(table, "gap", prefix)
        _positive(gap, join_key(prefix, "gap"))
        return WindowSpec(kind, gap_ms=gap)
    reject_unknown_keys(table, {"type", "n", "every"}, prefix)
    every = read_duration_ms(table, "every", prefix, default="1m")
    _positive(every, join_key(prefix, "every"))
    return WindowSpec(kind, n=read_int(table, "n", prefix, minimum=1), step_ms=every)


def _positive(ms: int, key: str) -> None:
    if ms <= 0:
        raise ConfigError(key, "a duration above zero", ms, 'write e.g. "1m".')


def parse_filter(table: Any, schema: EventSchema, prefix: str) -> Filter:
    """A `where` table: `{ field = "payment", eq = "cash" }` or `{ field = ..., in = [...] }`.

    >>> from features.schema import parse_schema
    >>> schema = parse_schema({"entity": "a", "event_time": "ts", "fields": {"a": "string", "p": "string"}})
    >>> sorted(parse_filter({"field": "p", "in": ["x", "y"]}, schema, "where").values)
    ['x', 'y']
    """
    if not isinstance(table, dict):
        raise ConfigError(prefix, 'a table such as { field = "payment", eq = "cash" }', table,
                          'write where = { field = "payment", eq = "cash" } or use in = [...].')
    reject_unknown_keys(table, {"field", "eq", "in"}, prefix)
    field = _declared_field(table, schema, prefix)
    if ("eq" in table) == ("in" in table):
        raise ConfigError(prefix, "exactly one of `eq` or `in`", table, "give eq = value or in = [values].")
    if "eq" in table:
        values = frozenset([table["eq"]])
    else:
        if not isinstance(table["in"], list) or not table["in"]:
            raise ConfigError(join_key(prefix, "in"), "a non-empty list", table["in"], 'write in = ["a", "b"].')
        values = frozenset(table["in"])
    return Filter(field, values)


def _declared_field(table: Mapping[str, Any], schema: EventSchema, prefix: str) -> str:
    field = read_str(table, "field", prefix, example="price")
    if field not in schema.field_names:
        raise ConfigError(join_key(prefix, "field"), f"a declared field ({', '.join(schema.field_names)})",
                          field, f"declare `{field}` under [schema.fields] or use a declared field.")
    return field


def parse_feature(table: Any, schema: EventSchema, prefix: str) -> FeatureSpec:
    """One entry of a feature set's `features` list."""
    if not isinstance(table, dict):
        raise ConfigError(prefix, "a table with name and agg", table, 'write { name = "rides", agg = "count" }.')
    reject_unknown_keys(table, {"name", "agg", "field", "q", "value", "where"}, prefix)
    name = read_str(table, "name", prefix, example="mean_price")
    if not _NAME.match(name):
        raise ConfigError(join_key(prefix, "name"), "letters, digits, _ . - (starting with a letter)", name,
                          "rename the feature.")
    agg = read_choice(table, "agg", prefix, AGGREGATIONS)
    field = None
    if agg in FIELD_AGGS or "field" in table:
        field = _declared_field(table, schema, prefix)
        if agg in NUMERIC_AGGS and not schema.field(field).is_numeric:
            raise ConfigError(join_key(prefix, "field"), f"a numeric field for agg = {agg!r}",
                              f"{field} ({schema.field(field).type})", "pick a float or int field.")
    q = None
    if agg == "quantile":
        q = read_float(table, "q", prefix, low=0.0, high=1.0)
    elif agg == "median":
        q = 0.5
    elif "q" in table:
        raise ConfigError(join_key(prefix, "q"), "q only with agg = \"quantile\"", table["q"], "remove q.")
    value = None
    if agg == "share":
        if "value" not in table:
            raise ConfigError(join_key(prefix, "value"), "the category whose share to compute", None,
                              'write value = "cash".')
        value = table["value"]
    where = parse_filter(table["where"], schema, join_key(prefix, "where")) if "where" in table else None
    return FeatureSpec(name=name, agg=agg, field=field, q=q, value=value, where=where)


def parse_feature_set(table: Mapping[str, Any], schema: EventSchema, prefix: str,
                      base_dir: Path | None = None) -> FeatureSet:
    """One `[[feature_sets]]` entry."""
    reject_unknown_keys(table, {"name", "entity", "topic", "window", "features", "emit", "update_every",
                                "static", "state_ttl"}, prefix)
    name = read_str(table, "name", prefix, example="area_1m")
    if not _NAME.match(name):
        raise ConfigError(join_key(prefix, "name"), "letters, digits, _ . - (starting with a letter)", name,
                          "rename the feature set; the name is part of topic names and message ids.")
    entity = read_str(table, "entity", prefix, default=schema.entity)
    if entity not in schema.field_names or schema.field(entity).type not in ("string", "int", "category") \
            or schema.field(entity).nullable:
        raise ConfigError(join_key(prefix, "entity"), "a declared non-nullable string, int or category field",
                          entity, f"use a declared identifier field such as {schema.entity!r}.")
    raw_features = table.get("features")
    if not isinstance(raw_features, list) or not raw_features:
        raise ConfigError(join_key(prefix, "features"), "a non-empty list of features", raw_features,
                          'write features = [{ name = "rides", agg = "count" }].')
    features = tuple(parse_feature(f, schema, f"{prefix}.features[{i}]") for i, f in enumerate(raw_features))
    seen: set[str] = set()
    for i, feature in enumerate(features):
        if feature.name in seen:
            raise ConfigError(f"{prefix}.features[{i}].name", "a name unique in the feature set", feature.name,
                              "rename one of the two features.")
        seen.add(feature.name)
    emit = read_choice(table, "emit", prefix, EMIT_MODES, default="final")
    window_type = read_table(table, "window", prefix, required=True).get("type")
    if emit == "changes" and window_type not in ("hopping", "last_n"):
        raise ConfigError(join_key(prefix, "emit"), '"changes" only on hopping and last_n windows', emit,
                          'use emit = "final": every other window has values of its own, so each one is a change.')
    update_every = 0
    if emit == "update":
        update_every = read_duration_ms(table, "update_every", prefix, default="10s")
    elif "update_every" in table:
        raise ConfigError(join_key(prefix, "update_every"), 'update_every only with emit = "update"',
                          table["update_every"], 'set emit = "update" or remove update_every.')
    static = None
    if "static" in table:
        static_table = read_table(table, "static", prefix)
        reject_unknown_keys(static_table, {"path", "key"}, join_key(prefix, "static"))
        path = Path(read_str(static_table, "path", join_key(prefix, "static"), example="areas.csv"))
        if base_dir is not None and not path.is_absolute():
            path = base_dir / path
        static = StaticFeatures(path=path, key=read_str(static_table, "key", join_key(prefix, "static"),
                                                        default=entity))
    window = parse_window(read_table(table, "window", prefix, required=True), join_key(prefix, "window"))
    state_ttl = read_duration_ms(table, "state_ttl", prefix, default="1d")
    if "state_ttl" in table and window.type != "last_n":
        raise ConfigError(join_key(prefix, "state_ttl"), "state_ttl only on last_n windows", table["state_ttl"],
                          "remove state_ttl: other windows release an entity's state once its windows close.")
    if state_ttl < window.step_ms:
        raise ConfigError(join_key(prefix, "state_ttl"), f"at least the window's every ({window.step_ms} ms)",
                          state_ttl, "raise state_ttl; a shorter TTL would forget entities between two rows.")
    return FeatureSet(
        name=name,
        entity=entity,
        topic=read_str(table, "topic", prefix, default=f"features.{name}"),
        window=window,
        features=features,
        emit=emit,
        update_every_ms=update_every,
        static=static,
        state_ttl_ms=state_ttl,
    )


def parse_feature_sets(raw: Any, schema: EventSchema, base_dir: Path | None = None) -> tuple[FeatureSet, ...]:
    """The `[[feature_sets]]` array (absent: no feature sets)."""
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(t, dict) for t in raw):
        raise ConfigError("feature_sets", "an array of tables ([[feature_sets]])", raw,
                          "write each feature set as a [[feature_sets]] section.")
    sets = tuple(parse_feature_set(t, schema, f"feature_sets[{i}]", base_dir) for i, t in enumerate(raw))
    names: set[str] = set()
    for i, fs in enumerate(sets):
        if fs.name in names:
            raise ConfigError(f"feature_sets[{i}].name", "a unique feature set name", fs.name,
                              "rename one of the two feature sets.")
        names.add(fs.name)
    return sets
