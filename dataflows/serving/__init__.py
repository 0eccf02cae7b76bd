"""Serving features from Redis: the online store's writer and a local Redis server.

- `OnlineStoreWriter`: writes `driftline.features/1` messages to Redis, per batch, never
  going back to an older window (`dataflows.serving.writer`);
- `OnlineStoreSink`: a Bytewax sink that passes every message to the flow's sink (Kafka, or
  files) and writes the feature messages of the stored sets to Redis (`dataflows.serving.sink`);
- `local_redis`: a `redis-server` process on a free loopback port, for tests, benchmarks and
  trying the store out (`dataflows.serving.local_redis`).

Services read the store with `dataflows.client.OnlineStore`. The layout is in
`features.online_store` and docs/serving.md.
"""

from dataflows.serving.local_redis import RunningRedis, find_redis_server, local_redis
from dataflows.serving.sink import OnlineStoreSink
from dataflows.serving.writer import OnlineStoreError, OnlineStoreWriter, connect

__all__ = ["OnlineStoreError", "OnlineStoreSink", "OnlineStoreWriter", "RunningRedis", "connect", "find_redis_server",
           "local_redis"]
