"""`OnlineStore`: a service's reads of the latest feature vectors from Redis.

The features flow keeps the latest vector of every entity per feature set in Redis when the
config has an `[online_store]` table (layout: `features.online_store`, docs/serving.md).
Reads are one round trip: `get` for one entity (GET), `get_many` for a batch (MGET).
Nothing runs in the background and no state is held, so any number of stateless request
handlers can share one Redis.

    store = OnlineStore.from_config(load_config("deploy/rides.toml"))
    row = store.get("area_1m", "area-007")
    if row is not None and row.freshness_s < 120:
        price = row.values["mean_price"]

A returned `Features` is the stored `driftline.features/1` message: the entity's latest
window that the flow emitted. An entity without events in the latest windows keeps its
older vector (until the TTL, if any, expires it): check `window_end_ms` or `freshness_s`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from types import MappingProxyType
from typing import Any

import orjson

from dataflows.client.contract import require_schema
from dataflows.client.feature_table import SCHEMA_MAJOR, SCHEMA_NAME, Features
from features.online_store import DEFAULT_PREFIX, DEFAULT_URL, message_bytes, vector_key


class OnlineStore:
    """Reads `Features` out of the online store at `url` with key prefix `prefix`."""

    def __init__(self, url: str = DEFAULT_URL, prefix: str = DEFAULT_PREFIX, client: Any = None,
                 clock: Any = time.time) -> None:
        if client is None:
            from dataflows.serving.writer import connect

            client = connect(url)
        self._client = client
        self._prefix = prefix
        self._clock = clock

    @classmethod
    def from_config(cls, config: Any, url: str | None = None) -> OnlineStore:
        """The store of a loaded config's `[online_store]` table (`url` overrides its URL)."""
        store = config.online_store
        if store is None:
            from features.config_values import ConfigError

            raise ConfigError("online_store", "an [online_store] table", None,
                              "add [online_store] with url = \"redis://HOST:6379/0\" (see docs/serving.md).")
        return cls(url or store.url, store.prefix)

    def get(self, feature_set: str, entity: str) -> Features | None:
        """The entity's latest features in `feature_set`, or None when the store has none."""
        raw = self._client.get(vector_key(self._prefix, feature_set, entity))
        return None if raw is None else self._features(raw, self._clock())

    def get_many(self, feature_set: str, entities: Iterable[str]) -> dict[str, Features]:
        """The latest features of each of `entities` that the store has (absent ones are left
        out), in one round trip (MGET)."""
        entities = list(entities)
        if not entities:
            return {}
        prefix = self._prefix
        values = self._client.mget([vector_key(prefix, feature_set, entity) for entity in entities])
        now = self._clock()
        return {entity: self._features(raw, now) for entity, raw in zip(entities, values) if raw is not None}

    @staticmethod
    def _features(raw: bytes, now: float) -> Features:
        m = orjson.loads(message_bytes(raw))
        require_schema(m, SCHEMA_NAME, SCHEMA_MAJOR)
        window = m["window"]
        return Features(entity=m["entity"], feature_set=m["feature_set"], values=MappingProxyType(m["values"]),
                        window_start_ms=window["start_ms"], window_end_ms=window["end_ms"], kind=m["kind"],
                        event_count=m["event_count"], id=m["id"], freshness_s=now - window["end_ms"] / 1000)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> OnlineStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
