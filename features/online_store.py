"""The online store: the `[online_store]` config table and the Redis layout of the latest vectors.

The features flow can keep, besides its `features.<set>` topics, the latest feature vector of
every entity per feature set in Redis (or Valkey), for services that read one entity in a
millisecond. This module is the pure part, shared by the writer (the flow's sink,
`dataflows.serving`) and the reader (`dataflows.client.OnlineStore`): the config, the key of
a vector, and its order key. It imports no Redis client.

Layout: one string per (feature set, entity), at key `<prefix><set>:<entity>`, whose value is

- the order key in `ORDER_WIDTH` (32) ASCII bytes: the window end (15 digits, ms), `1` for a
  final or `0` for an interim update, an update's event time (15 digits, 0 for a final),
  and `|`;
- then the `driftline.features/1` message, the exact JSON bytes written to `features.<set>`.

A message replaces the stored one only when its order key is not smaller (compared in a Lua
script, atomically): a later window wins, for the same window a final wins over interim
updates and a later update over an earlier one. It is the rule of `FeatureTable`, so the
store never goes back to an older window under replays, restarts or duplicate delivery.

>>> order_key({"id": "a1m/area-7/120000/u119500", "kind": "update", "window": {"end_ms": 120000}})
(120000, 0, 119500)
>>> order_key({"id": "a1m/area-7/120000", "kind": "final", "window": {"end_ms": 120000}})
(120000, 1, 0)
>>> vector_key("driftline:", "a1m", "area-7")
'driftline:a1m:area-7'
>>> stored_value((120000, 1, 0), b'{"id": "a1m/area-7/120000"}')
b'0000000001200001000000000000000|{"id": "a1m/area-7/120000"}'
>>> message_bytes(_), stored_order(_)
(b'{"id": "a1m/area-7/120000"}', (120000, 1, 0))
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from features.config_values import (
    ConfigError,
    read_bool,
    read_duration_ms,
    read_str,
    read_str_list,
    reject_unknown_keys,
)
from features.windows.config import FeatureSet

ORDER_WIDTH = 32  # 15 + 1 + 15 digits and "|": fixed width, so byte order is the order key's order
DEFAULT_URL = "redis://127.0.0.1:6379/0"
DEFAULT_PREFIX = "driftline:"
_KEYS = {"url", "prefix", "ttl", "sets", "interim"}
_SCHEMES = ("redis://", "rediss://", "unix://")


@dataclass(frozen=True)
class OnlineStoreConfig:
    """Where the latest vectors go, for how long, and of which feature sets.

    `ttl_ms` 0 keeps vectors until overwritten; otherwise a vector not rewritten within the
    TTL expires (a quiet entity drops out). `interim` also stores the interim updates of sets
    with `emit = "update"` (until their window's final arrives)."""

    url: str = DEFAULT_URL
    prefix: str = DEFAULT_PREFIX
    ttl_ms: int = 0
    sets: tuple[str, ...] = ()
    interim: bool = True

    def topics(self, feature_sets: Sequence[FeatureSet]) -> dict[str, str]:
        """Feature topic -> feature set name, for the sets this store keeps."""
        return {fs.topic: fs.name for fs in feature_sets if fs.name in self.sets}


def parse_online_store(table: Mapping[str, Any] | None, feature_sets: Sequence[FeatureSet],
                       prefix: str = "online_store") -> OnlineStoreConfig | None:
    """The `[online_store]` table; None when the config has none.

    >>> from features.windows.config import FeatureSpec, WindowSpec
    >>> fs = FeatureSet("a1m", "area", "features.a1m", WindowSpec("tumbling", 60_000, 60_000), (FeatureSpec("n", "count"),))
    >>> parse_online_store({"ttl": "1d"}, [fs])
    OnlineStoreConfig(url='redis://127.0.0.1:6379/0', prefix='driftline:', ttl_ms=86400000, sets=('a1m',), interim=True)
    >>> parse_online_store({"sets": ["a10m"]}, [fs])
    Traceback (most recent call last):
    ...
    features.config_values.ConfigError: config key `online_store.sets`: expected names of [[feature_sets]] (a1m), found 'a10m'. Fix: list only configured feature sets, or leave `sets` out to store them all.
    """
    if table is None:
        return None
    if not isinstance(table, dict):
        raise ConfigError(prefix, "a table", table, f"write it as an [{prefix}] section.")
    reject_unknown_keys(table, _KEYS, prefix)
    names = [fs.name for fs in feature_sets]
    if not names:
        raise ConfigError(prefix, "a config with [[feature_sets]] to store", None,
                          f"add a [[feature_sets]] entry, or remove [{prefix}].")
    url = read_str(table, "url", prefix, default=DEFAULT_URL, example=DEFAULT_URL)
    if not url.startswith(_SCHEMES):
        raise ConfigError(f"{prefix}.url", "a Redis URL (redis://, rediss:// or unix://)", url,
                          f'write e.g. url = "{DEFAULT_URL}" (redis://:PASSWORD@HOST:PORT/DB with a password).')
    key_prefix = table.get("prefix", DEFAULT_PREFIX)
    if not isinstance(key_prefix, str):
        raise ConfigError(f"{prefix}.prefix", "a string", key_prefix, f'write e.g. prefix = "{DEFAULT_PREFIX}".')
    sets = read_str_list(table, "sets", prefix, default=names)
    for name in sets:
        if name not in names:
            raise ConfigError(f"{prefix}.sets", f"names of [[feature_sets]] ({', '.join(names)})", name,
                              "list only configured feature sets, or leave `sets` out to store them all.")
    if not sets:
        raise ConfigError(f"{prefix}.sets", "at least one feature set", [],
                          f"leave `sets` out to store them all, or remove [{prefix}].")
    return OnlineStoreConfig(
        url=url,
        prefix=key_prefix,
        ttl_ms=read_duration_ms(table, "ttl", prefix, default=0),
        sets=tuple(dict.fromkeys(sets)),
        interim=read_bool(table, "interim", prefix, default=True),
    )


def vector_key(prefix: str, feature_set: str, entity: str) -> str:
    """The Redis key of one entity's vector of one feature set."""
    return f"{prefix}{feature_set}:{entity}"


def order_key(message: Mapping[str, Any]) -> tuple[int, int, int]:
    """(window end ms, 1 if final else 0, an update's event time ms or 0): a larger key is newer."""
    if message["kind"] == "final":
        return int(message["window"]["end_ms"]), 1, 0
    return int(message["window"]["end_ms"]), 0, int(message["id"].rsplit("/", 1)[1][1:])


def stored_value(order: tuple[int, int, int], message: bytes) -> bytes:
    """The stored value of a message: its fixed-width order key, `|`, the message bytes."""
    return b"%015d%d%015d|%b" % (order[0], order[1], order[2], message)


def stored_order(value: bytes) -> tuple[int, int, int]:
    """The order key of a stored value."""
    return int(value[:15]), int(value[15:16]), int(value[16:31])


def message_bytes(value: bytes) -> bytes:
    """The message JSON of a stored value."""
    return value[ORDER_WIDTH:]
