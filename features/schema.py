"""The event schema: which fields an event has, their types, the entity key and the event time.

Written in the `[schema]` table of the config:

>>> schema = parse_schema({
...     "entity": "area", "event_time": "ts", "time_format": "epoch_ms",
...     "fields": {"area": "string", "price": "float",
...                "payment": {"type": "category", "values": ["card", "cash"]}},
... })
>>> schema.field("payment").values
('card', 'cash')
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from features.config_values import (
    ConfigError,
    join_key,
    read_bool,
    read_choice,
    read_int,
    read_str,
    read_str_list,
    read_table,
    reject_unknown_keys,
)

FIELD_TYPES = ("float", "int", "string", "bool", "category")
TIME_FORMATS = ("epoch_ms", "iso8601", "auto")
NUMERIC_TYPES = ("float", "int")


@dataclass(frozen=True)
class FieldSpec:
    """One declared field: its type, whether null is allowed, whether it may be absent.

    For `category` fields, `values` is the declared vocabulary (None: any string). A value
    outside it is not an error: it is counted, because a new category is a drift signal.
    """

    name: str
    type: str
    nullable: bool = False
    required: bool = True
    values: tuple[str, ...] | None = None

    @property
    def is_numeric(self) -> bool:
        """True for float and int fields."""
        return self.type in NUMERIC_TYPES


@dataclass(frozen=True)
class EventSchema:
    """The shape of the events on the input topic."""

    entity: str
    event_time: str
    time_format: str
    fields: tuple[FieldSpec, ...]
    version: int = 1
    version_field: str | None = None
    min_event_time_ms: int = 946_684_800_000
    allow_empty_entity: bool = False

    def field(self, name: str) -> FieldSpec:
        """The declared field called `name` (KeyError if there is none)."""
        for spec in self.fields:
            if spec.name == name:
                return spec
        raise KeyError(f"no field {name!r} in the schema; declared: {', '.join(f.name for f in self.fields)}")

    @property
    def field_names(self) -> tuple[str, ...]:
        """Declared field names in config order."""
        return tuple(f.name for f in self.fields)


_SCHEMA_KEYS = {"entity", "event_time", "time_format", "fields", "version", "version_field", "min_event_time",
                "allow_empty_entity"}
DEFAULT_MIN_EVENT_TIME = "2000-01-01T00:00:00Z"


def read_min_event_time_ms(table: Mapping[str, Any], prefix: str) -> int:
    """`min_event_time`: an ISO-8601 instant or epoch milliseconds; earlier event times are rejected.

    The default, 2000-01-01, catches epoch *seconds* sent where milliseconds are expected
    (today in seconds is a time in January 1970 in milliseconds) and zero.

    >>> read_min_event_time_ms({}, "schema"), read_min_event_time_ms({"min_event_time": 0}, "schema")
    (946684800000, 0)
    """
    from features.events import parse_time_ms  # events imports this module

    raw = table.get("min_event_time", DEFAULT_MIN_EVENT_TIME)
    try:
        if isinstance(raw, bool) or not isinstance(raw, (int, str)):
            raise ValueError(raw)
        return parse_time_ms(raw, "auto")
    except ValueError:
        raise ConfigError(join_key(prefix, "min_event_time"), "an ISO-8601 instant or epoch milliseconds >= 0", raw,
                          f'write e.g. min_event_time = "{DEFAULT_MIN_EVENT_TIME}" (the default), or 0 to '
                          "accept any time.") from None
_FIELD_KEYS = {"type", "nullable", "required", "values"}


def parse_field(name: str, raw: Any, prefix: str) -> FieldSpec:
    """A field from its TOML form: a type name, or a table with `type` and options.

    >>> parse_field("surge", {"type": "float", "nullable": True}, "schema.fields")
    FieldSpec(name='surge', type='float', nullable=True, required=True, values=None)
    """
    key = join_key(prefix, name)
    if isinstance(raw, str):
        raw = {"type": raw}
    if not isinstance(raw, dict):
        raise ConfigError(key, f"a type name ({', '.join(FIELD_TYPES)}) or a table with `type`", raw,
                          f'write e.g. {name} = "float" or {name} = {{ type = "float", nullable = true }}.')
    reject_unknown_keys(raw, _FIELD_KEYS, key)
    field_type = read_choice(raw, "type", key, FIELD_TYPES)
    values = read_str_list(raw, "values", key) if "values" in raw else None
    if values is not None and field_type != "category":
        raise ConfigError(join_key(key, "values"), "a vocabulary only on category fields", list(values),
                          'set type = "category" or remove `values`.')
    return FieldSpec(
        name=name,
        type=field_type,
        nullable=read_bool(raw, "nullable", key, default=False),
        required=read_bool(raw, "required", key, default=True),
        values=values,
    )


def parse_schema(table: Mapping[str, Any], prefix: str = "schema") -> EventSchema:
    """The `[schema]` table as an EventSchema; raises ConfigError naming the key on a problem."""
    reject_unknown_keys(table, _SCHEMA_KEYS, prefix)
    raw_fields = read_table(table, "fields", prefix, required=True)
    if not raw_fields:
        raise ConfigError(join_key(prefix, "fields"), "at least one field", {},
                          'declare the event fields, e.g. price = "float".')
    fields = tuple(parse_field(name, raw, join_key(prefix, "fields")) for name, raw in raw_fields.items())
    names = {f.name for f in fields}
    entity = read_str(table, "entity", prefix, example="area")
    if entity not in names:
        raise ConfigError(join_key(prefix, "entity"), f"one of the declared fields ({', '.join(sorted(names))})",
                          entity, f"declare `{entity}` under [{prefix}.fields] or pick a declared field.")
    entity_spec = next(f for f in fields if f.name == entity)
    if entity_spec.type not in ("string", "int", "category") or entity_spec.nullable:
        raise ConfigError(join_key(prefix, "entity"), "a non-nullable string, int or category field",
                          f"{entity} ({entity_spec.type}{', nullable' if entity_spec.nullable else ''})",
                          "key entities by an identifier such as an area or a user id.")
    event_time = read_str(table, "event_time", prefix, example="ts")
    if event_time in names:
        raise ConfigError(join_key(prefix, "event_time"), "a field that is not also declared under fields",
                          event_time, f"remove `{event_time}` from [{prefix}.fields]; its format is time_format.")
    version_field = table.get("version_field")
    if version_field is not None:
        version_field = read_str(table, "version_field", prefix, example="schema_version")
    return EventSchema(
        entity=entity,
        event_time=event_time,
        time_format=read_choice(table, "time_format", prefix, TIME_FORMATS, default="auto"),
        fields=fields,
        version=read_int(table, "version", prefix, default=1, minimum=1),
        version_field=version_field,
        min_event_time_ms=read_min_event_time_ms(table, prefix),
        allow_empty_entity=read_bool(table, "allow_empty_entity", prefix, default=False),
    )
