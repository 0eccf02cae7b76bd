"""Reading typed values out of a parsed TOML table, with errors that say how to fix them.

Every config error names the dotted key, what was expected, what was found, and the fix:

>>> read_duration_ms({"lateness": "5x"}, "lateness", "source")
Traceback (most recent call last):
...
features.config_values.ConfigError: config key `source.lateness`: expected a duration such as 250ms, 10s, 5m, 1h or 1d (or an integer of milliseconds), found '5x'. Fix: write e.g. lateness = "10s".
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import Any

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min|h|d)\s*$")
_UNIT_MS = {"ms": 1, "s": 1_000, "m": 60_000, "min": 60_000, "h": 3_600_000, "d": 86_400_000}

_MISSING = object()


class ConfigError(ValueError):
    """A configuration problem, reported before anything starts."""

    def __init__(self, key: str, expected: str, found: Any, fix: str) -> None:
        self.key = key
        self.expected = expected
        self.found = found
        self.fix = fix
        shown = "nothing (the key is missing)" if found is _MISSING else repr(found)
        super().__init__(f"config key `{key}`: expected {expected}, found {shown}. Fix: {fix}")


def join_key(prefix: str, key: str) -> str:
    """Dotted path of `key` under `prefix`.

    >>> join_key("schema.fields", "price")
    'schema.fields.price'
    """
    return f"{prefix}.{key}" if prefix else key


def reject_unknown_keys(table: Mapping[str, Any], allowed: Collection[str], prefix: str) -> None:
    """Raise on a key the config does not know, which is usually a typo.

    >>> reject_unknown_keys({"topic": "rides", "topci": 1}, {"topic"}, "source")
    Traceback (most recent call last):
    ...
    features.config_values.ConfigError: config key `source.topci`: expected one of the known keys (topic), found 1. Fix: remove `topci` or correct its spelling.
    """
    for key, value in table.items():
        if key not in allowed:
            raise ConfigError(
                join_key(prefix, key),
                f"one of the known keys ({', '.join(sorted(allowed))})",
                value,
                f"remove `{key}` or correct its spelling.",
            )


def read_table(table: Mapping[str, Any], key: str, prefix: str, required: bool = False) -> dict[str, Any]:
    """A sub-table (`[prefix.key]`), or {} when it is absent and optional.

    >>> read_table({"source": {"topic": "rides"}}, "source", "")
    {'topic': 'rides'}
    """
    value = table.get(key, _MISSING)
    if value is _MISSING:
        if required:
            raise ConfigError(join_key(prefix, key), "a table", _MISSING, f"add a [{join_key(prefix, key)}] section.")
        return {}
    if not isinstance(value, dict):
        raise ConfigError(join_key(prefix, key), "a table", value, f"write it as a [{join_key(prefix, key)}] section.")
    return value


def read_str(table: Mapping[str, Any], key: str, prefix: str, default: Any = _MISSING, example: str = "") -> str:
    """A non-empty string value.

    >>> read_str({"topic": "rides"}, "topic", "source")
    'rides'
    """
    value = table.get(key, default)
    if value is _MISSING or not isinstance(value, str) or not value:
        hint = f'write e.g. {key} = "{example or "name"}".'
        raise ConfigError(join_key(prefix, key), "a non-empty string", value if key in table else _MISSING, hint)
    return value


def read_int(
    table: Mapping[str, Any], key: str, prefix: str, default: Any = _MISSING, minimum: int | None = None
) -> int:
    """An integer, optionally with a lower bound.

    >>> read_int({"partitions": 3}, "partitions", "source", minimum=1)
    3
    """
    value = table.get(key, default)
    floor = "" if minimum is None else f" >= {minimum}"
    if value is _MISSING or isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(join_key(prefix, key), f"an integer{floor}", value if key in table else _MISSING,
                          f"write e.g. {key} = {minimum if minimum is not None else 1}.")
    if minimum is not None and value < minimum:
        raise ConfigError(join_key(prefix, key), f"an integer{floor}", value, f"use a value of at least {minimum}.")
    return value


def read_float(
    table: Mapping[str, Any], key: str, prefix: str, default: Any = _MISSING,
    low: float | None = None, high: float | None = None,
) -> float:
    """A number, optionally within [low, high].

    >>> read_float({"mostly": 0.95}, "mostly", "expect", low=0.0, high=1.0)
    0.95
    """
    value = table.get(key, default)
    bounds = "" if low is None and high is None else f" in [{low}, {high}]"
    if value is _MISSING or isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(join_key(prefix, key), f"a number{bounds}", value if key in table else _MISSING,
                          f"write e.g. {key} = {high if high is not None else 1.0}.")
    if (low is not None and value < low) or (high is not None and value > high):
        raise ConfigError(join_key(prefix, key), f"a number{bounds}", value, f"choose a value{bounds}.")
    return float(value)


def read_bool(table: Mapping[str, Any], key: str, prefix: str, default: Any = _MISSING) -> bool:
    """A boolean.

    >>> read_bool({"nullable": True}, "nullable", "schema.fields.surge")
    True
    """
    value = table.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(join_key(prefix, key), "true or false", value if key in table else _MISSING,
                          f"write {key} = true or {key} = false.")
    return value


def read_choice(
    table: Mapping[str, Any], key: str, prefix: str, choices: Collection[str], default: Any = _MISSING
) -> str:
    """One string out of a fixed set.

    >>> read_choice({"format": "epoch_ms"}, "format", "schema", ("epoch_ms", "iso8601"))
    'epoch_ms'
    """
    value = table.get(key, default)
    if value not in choices:
        listed = ", ".join(f'"{c}"' for c in choices)
        raise ConfigError(join_key(prefix, key), f"one of {listed}", value if key in table else _MISSING,
                          f"set {key} to one of {listed}.")
    return value


def parse_duration_ms(text: str | int) -> int:
    """Milliseconds in a duration written as `250ms`, `10s`, `5m`, `1h`, `1d`, or as an int of ms.

    >>> parse_duration_ms("5m"), parse_duration_ms("1.5s"), parse_duration_ms(250)
    (300000, 1500, 250)
    """
    if isinstance(text, int) and not isinstance(text, bool):
        if text < 0:
            raise ValueError(f"a duration cannot be negative, got {text}")
        return text
    if isinstance(text, str):
        match = _DURATION.match(text)
        if match:
            return int(round(float(match.group(1)) * _UNIT_MS[match.group(2)]))
    raise ValueError(f"not a duration: {text!r}")


def read_duration_ms(table: Mapping[str, Any], key: str, prefix: str, default: Any = _MISSING) -> int:
    """A duration value (see `parse_duration_ms`), in milliseconds.

    >>> read_duration_ms({"lateness": "10s"}, "lateness", "source")
    10000
    """
    value = table.get(key, default)
    try:
        if value is _MISSING:
            raise ValueError("missing")
        return parse_duration_ms(value)
    except ValueError:
        raise ConfigError(
            join_key(prefix, key),
            "a duration such as 250ms, 10s, 5m, 1h or 1d (or an integer of milliseconds)",
            value if key in table else _MISSING,
            f'write e.g. {key} = "10s".',
        ) from None


def read_str_list(table: Mapping[str, Any], key: str, prefix: str, default: Any = _MISSING) -> tuple[str, ...]:
    """A list of strings, returned as a tuple.

    >>> read_str_list({"values": ["card", "cash"]}, "values", "schema.fields.payment")
    ('card', 'cash')
    """
    value = table.get(key, default)
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ConfigError(join_key(prefix, key), "a list of strings", value if key in table else _MISSING,
                          f'write e.g. {key} = ["a", "b"].')
    return tuple(value)


RUNBOOK_MAX_CHARS = 2000  # carried in every drift event: a pointer or a few lines, not a manual
_URL_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def read_runbook(table: Mapping[str, Any], prefix: str, key: str = "runbook") -> str | None:
    """The optional `runbook` of a monitor or model: what to do when it alerts, as text or a
    URL, carried in every drift event it emits (None when absent). A value with a scheme
    (`xyz://`) must be an http(s) URL with a host and no spaces; anything else is text
    (a relative link such as ``docs/runbooks.md#driftlinecriticaldrift`` included).

    >>> read_runbook({"runbook": " https://wiki.example.com/drift#price "}, "monitors[0]")
    'https://wiki.example.com/drift#price'
    >>> read_runbook({}, "monitors[0]") is None
    True
    >>> read_runbook({"runbook": "htps:/wiki"}, "models[0]")
    'htps:/wiki'
    >>> read_runbook({"runbook": "ftp://wiki/x"}, "models[0]")
    Traceback (most recent call last):
    ...
    features.config_values.ConfigError: config key `models[0].runbook`: expected a text, or an http(s) URL with a host and no spaces, found 'ftp://wiki/x'. Fix: write e.g. runbook = "https://wiki.example.com/runbooks/drift", or plain text without '://'.
    """
    if key not in table:
        return None
    full = join_key(prefix, key)
    value = table[key]
    example = f'write e.g. {key} = "docs/runbooks.md#driftlinecriticaldrift" or {key} = "https://wiki.example.com/runbooks/drift"'
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(full, "a non-empty string: what to do when this alerts, as text or a URL", value,
                          f"{example}, or remove the key.")
    text = value.strip()
    if len(text) > RUNBOOK_MAX_CHARS:
        raise ConfigError(full, f"at most {RUNBOOK_MAX_CHARS} characters (it is carried in every drift event)",
                          f"{len(text)} characters", "put the long text on a page and give its URL.")
    scheme = _URL_SCHEME.match(text)
    if scheme:
        from urllib.parse import urlsplit

        parts = urlsplit(text)
        if scheme.group(1).lower() not in ("http", "https") or not parts.netloc or any(c.isspace() for c in text):
            raise ConfigError(full, "a text, or an http(s) URL with a host and no spaces", text,
                              f"write e.g. {key} = \"https://wiki.example.com/runbooks/drift\", or plain text "
                              "without '://'.")
    return text
