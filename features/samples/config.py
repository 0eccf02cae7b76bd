"""Sample sets in the config: which events to sample, over which window, how many, how.

```toml
[[sample_sets]]
name = "rides_by_payment"
window = { type = "tumbling", length = "1m" }    # or { type = "hopping", length = "10m", step = "1m" }
k = 20                                           # per stratum for stratified sets
kind = "stratified"                              # uniform | weighted | stratified
stratum_field = "payment"                        # stratified: one sample per value ...
max_strata = 16                                  # ... for at most this many values per window
fields = ["ride_id", "area", "price"]            # kept in each sampled item (default: all)
id_field = "ride_id"                             # event identity (default: all its fields)
```

Weighted sets name `weight_field` (a numeric field) or `half_life` (recency: an event's
weight halves for every half-life it lies before the window end).

>>> from features.schema import parse_schema
>>> schema = parse_schema({"entity": "area", "event_time": "ts",
...                        "fields": {"area": "string", "price": "float"}})
>>> s = parse_sample_set({"name": "s", "window": {"type": "tumbling", "length": "1m"}, "k": 5},
...                      schema, "sample_sets[0]")
>>> s.topic, s.kind, s.window.length_ms
('samples.s', 'uniform', 60000)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from features.config_values import (
    ConfigError,
    join_key,
    read_choice,
    read_duration_ms,
    read_int,
    read_str,
    read_str_list,
    read_table,
    reject_unknown_keys,
)
from features.windows.config import _NAME, Filter, WindowSpec, parse_filter, parse_window
from features.schema import EventSchema

SAMPLE_KINDS = ("uniform", "weighted", "stratified")
_KEYS = {"name", "window", "k", "kind", "weight_field", "half_life", "stratum_field", "max_strata", "where",
         "fields", "id_field", "topic", "seed", "max_message_bytes"}


@dataclass(frozen=True)
class SampleSet:
    """One `[[sample_sets]]` entry: a bottom-k sample of each window's events.

    `weight_field` or `half_life_ms` is set for weighted sets, `stratum_field` for
    stratified ones; `fields` None keeps every field; `id_field` None identifies an event
    by all its fields.
    """

    name: str
    window: WindowSpec
    k: int
    kind: str = "uniform"
    topic: str = ""
    weight_field: str | None = None
    half_life_ms: int | None = None
    stratum_field: str | None = None
    max_strata: int = 64
    where: Filter | None = None
    fields: tuple[str, ...] | None = None
    id_field: str | None = None
    seed: int = 0
    max_message_bytes: int = 1_000_000

    @property
    def weight_spec(self) -> dict[str, Any] | None:
        """What the weights of a weighted set are, as messages state it.

        >>> SampleSet("s", WindowSpec("tumbling", 1, 1), 1, "weighted", half_life_ms=600).weight_spec
        {'field': None, 'half_life_ms': 600}
        """
        if self.kind != "weighted":
            return None
        return {"field": self.weight_field, "half_life_ms": self.half_life_ms}


def _field(table: Mapping[str, Any], key: str, prefix: str, known: tuple[str, ...], numeric: bool = False,
           schema: EventSchema | None = None) -> str:
    name = read_str(table, key, prefix, example=known[0] if known else "price")
    if name not in known:
        raise ConfigError(join_key(prefix, key), f"a declared field ({', '.join(known)})", name,
                          f"declare `{name}` under [schema.fields] or use a declared field.")
    if numeric and schema is not None and not schema.field(name).is_numeric:
        raise ConfigError(join_key(prefix, key), "a numeric (float or int) field", name, "pick a float or int field.")
    return name


def _only_for(table: Mapping[str, Any], keys: tuple[str, ...], kind: str, prefix: str) -> None:
    for key in keys:
        if key in table:
            raise ConfigError(join_key(prefix, key), f"{key} only with kind = \"{kind}\"", table[key],
                              f'set kind = "{kind}" or remove {key}.')


def parse_sample_set(table: Mapping[str, Any], schema: EventSchema, prefix: str) -> SampleSet:
    """One `[[sample_sets]]` entry; raises ConfigError naming the key on a problem."""
    reject_unknown_keys(table, _KEYS, prefix)
    name = read_str(table, "name", prefix, example="rides_1m")
    if not _NAME.match(name):
        raise ConfigError(join_key(prefix, "name"), "letters, digits, _ . - (starting with a letter)", name,
                          "rename the sample set; the name is part of topic names and message ids.")
    window = parse_window(read_table(table, "window", prefix, required=True), join_key(prefix, "window"))
    if window.type not in ("tumbling", "hopping"):
        raise ConfigError(join_key(prefix, "window.type"), 'a "tumbling" or "hopping" window', window.type,
                          "samples are drawn per event-time window; use tumbling or hopping.")
    kind = read_choice(table, "kind", prefix, SAMPLE_KINDS, default="uniform")
    declared = schema.field_names
    weight_field = half_life = stratum_field = None
    max_strata = 64
    if kind == "weighted":
        if ("weight_field" in table) == ("half_life" in table):
            raise ConfigError(prefix, "exactly one of weight_field or half_life for a weighted set",
                              {k: table[k] for k in ("weight_field", "half_life") if k in table},
                              'weight by a field (weight_field = "price") or by recency (half_life = "5m").')
        if "weight_field" in table:
            weight_field = _field(table, "weight_field", prefix, declared, numeric=True, schema=schema)
        else:
            half_life = read_duration_ms(table, "half_life", prefix)
            if half_life <= 0:
                raise ConfigError(join_key(prefix, "half_life"), "a duration above zero", half_life,
                                  'write e.g. half_life = "5m".')
    else:
        _only_for(table, ("weight_field", "half_life"), "weighted", prefix)
    if kind == "stratified":
        stratum_field = _field(table, "stratum_field", prefix, declared)
        max_strata = read_int(table, "max_strata", prefix, default=64, minimum=1)
    else:
        _only_for(table, ("stratum_field", "max_strata"), "stratified", prefix)
    fields = None
    if "fields" in table:
        fields = read_str_list(table, "fields", prefix)
        keepable = (*declared, schema.event_time)
        for i, f in enumerate(fields):
            if f not in keepable:
                raise ConfigError(f"{join_key(prefix, 'fields')}[{i}]", f"a declared field ({', '.join(keepable)})",
                                  f, "list declared fields only.")
    return SampleSet(
        name=name,
        window=window,
        k=read_int(table, "k", prefix, minimum=1),
        kind=kind,
        topic=read_str(table, "topic", prefix, default=f"samples.{name}"),
        weight_field=weight_field,
        half_life_ms=half_life,
        stratum_field=stratum_field,
        max_strata=max_strata,
        where=parse_filter(table["where"], schema, join_key(prefix, "where")) if "where" in table else None,
        fields=fields,
        id_field=_field(table, "id_field", prefix, declared) if "id_field" in table else None,
        seed=read_int(table, "seed", prefix, default=0, minimum=0),
        max_message_bytes=read_int(table, "max_message_bytes", prefix, default=1_000_000, minimum=1024),
    )


def parse_sample_sets(raw: Any, schema: EventSchema) -> tuple[SampleSet, ...]:
    """The `[[sample_sets]]` array (absent: no sample sets).

    >>> parse_sample_sets(None, None)
    ()
    """
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(t, dict) for t in raw):
        raise ConfigError("sample_sets", "an array of tables ([[sample_sets]])", raw,
                          "write each sample set as a [[sample_sets]] section.")
    sets = tuple(parse_sample_set(t, schema, f"sample_sets[{i}]") for i, t in enumerate(raw))
    names: set[str] = set()
    for i, s in enumerate(sets):
        if s.name in names:
            raise ConfigError(f"sample_sets[{i}].name", "a unique sample set name", s.name,
                              "rename one of the two sample sets.")
        names.add(s.name)
    return sets
