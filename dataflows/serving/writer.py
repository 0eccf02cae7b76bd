"""`OnlineStoreWriter`: the latest feature vector per entity in Redis, never an older window.

Each batch of feature messages is written in one round trip: a pipeline of calls to one Lua
script, each call covering up to `CHUNK` vectors. For each vector the script compares the
stored order key `(end_ms, final, as_of_ms)` with the incoming one and writes only when the
incoming one is not smaller (equal: the same message again, rewritten, which refreshes the
TTL). Redis runs a script atomically, so two writers (two workers, or a replay racing the
live flow) cannot interleave between the compare and the write.

A script call names all its keys, so on a Redis Cluster the keys of one call must share a
hash slot: use a single Redis/Valkey node (or its replicas), or a `prefix` with a hash tag.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from features.online_store import OnlineStoreConfig, order_key, vector_key

CHUNK = 500  # vectors per script call: ~100 KB of arguments

# KEYS: one per vector. ARGV[1]: TTL in ms (0: none); then per vector end_ms, final, as_of_ms, msg.
# Returns how many vectors were written (the others were older than the stored ones).
LUA_WRITE_LATEST = """
local ttl = tonumber(ARGV[1])
local written = 0
for i, key in ipairs(KEYS) do
  local j = 2 + (i - 1) * 4
  local e, f, a = tonumber(ARGV[j]), tonumber(ARGV[j + 1]), tonumber(ARGV[j + 2])
  local cur = redis.call('HMGET', key, 'end_ms', 'final', 'as_of_ms')
  local ce = tonumber(cur[1])
  local newer = true
  if ce then
    local cf, ca = tonumber(cur[2]), tonumber(cur[3])
    newer = e > ce or (e == ce and (f > cf or (f == cf and a >= ca)))
  end
  if newer then
    redis.call('HSET', key, 'end_ms', ARGV[j], 'final', ARGV[j + 1], 'as_of_ms', ARGV[j + 2], 'msg', ARGV[j + 3])
    if ttl > 0 then redis.call('PEXPIRE', key, ttl) end
    written = written + 1
  end
end
return written
"""


def redacted(url: str) -> str:
    """A Redis URL without its password, for messages.

    >>> redacted("redis://:s3cret@cache:6379/0"), redacted("redis://cache:6379")
    ('redis://:***@cache:6379/0', 'redis://cache:6379')
    """
    scheme, sep, rest = url.partition("://")
    creds, at, host = rest.rpartition("@")
    if not at:
        return url
    user = creds.split(":", 1)[0]
    return f"{scheme}{sep}{user}:***@{host}"


class OnlineStoreError(RuntimeError):
    """The online store cannot be reached (or refused a write)."""


def connect(url: str, timeout_s: float = 5.0) -> Any:
    """A `redis.Redis` client for `url`, checked with a PING; raises OnlineStoreError naming the
    URL (without its password) and what to do when the server does not answer."""
    import redis

    try:
        client = redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
        client.ping()
    except (redis.RedisError, ValueError) as exc:
        raise OnlineStoreError(f"cannot reach the online store at {redacted(url)}: {str(exc).rstrip('.')}. Check "
                           "[online_store].url and that Redis (or Valkey) runs there.") from None
    return client


class OnlineStoreWriter:
    """Writes feature messages of the configured sets to Redis; see the module docstring."""

    def __init__(self, config: OnlineStoreConfig, topics: Mapping[str, str], client: Any = None) -> None:
        """`topics`: feature topic -> set name (`config.topics(feature_sets)`); messages of other
        topics are ignored."""
        self.config = config
        self.topics = dict(topics)
        self.client = client if client is not None else connect(config.url)
        self.script = self.client.register_script(LUA_WRITE_LATEST)
        self.written = 0
        self.older = 0  # not written: the store already had a newer (or the same window's final) vector

    def write(self, items: Iterable[tuple[str, Any, bytes]]) -> int:
        """Write the feature messages among `(topic, key, value)` items; returns how many
        vectors were written (older ones are skipped)."""
        topics, prefix, interim = self.topics, self.config.prefix, self.config.interim
        latest: dict[str, tuple[tuple[int, int, int], bytes]] = {}
        for topic, _key, value in items:
            name = topics.get(topic)
            if name is None:
                continue
            message = orjson.loads(value)
            order = order_key(message)
            if not order[1] and not interim:
                continue
            key = vector_key(prefix, name, message["entity"])
            seen = latest.get(key)
            if seen is None or order >= seen[0]:  # one vector per key per batch: the newest
                latest[key] = (order, value)
        if not latest:
            return 0
        pipe = self.client.pipeline(transaction=False)
        keys = list(latest)
        for start in range(0, len(keys), CHUNK):
            chunk = keys[start:start + CHUNK]
            args: list[Any] = [self.config.ttl_ms]
            for key in chunk:
                (end, final, as_of), value = latest[key]
                args += (end, final, as_of, value)
            self.script(keys=chunk, args=args, client=pipe)
        written = sum(pipe.execute())
        self.written += written
        self.older += len(keys) - written
        return written

    def close(self) -> None:
        self.client.close()
