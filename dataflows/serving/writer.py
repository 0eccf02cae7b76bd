"""`OnlineStoreWriter`: the latest feature vector per entity in Redis, never an older window.

Each batch of feature messages is written in one round trip: a pipeline of calls to one Lua
script (EVALSHA, packed here in RESP), each call covering up to `CHUNK` vectors. For each
vector the script compares the stored order key (the value's first bytes) with the incoming
one and writes only when the incoming one is not smaller (equal: the same message again,
rewritten, which refreshes the TTL). Redis runs a script atomically, so two writers (two workers, or a replay racing the
live flow) cannot interleave between the compare and the write.

A script call names all its keys, so on a Redis Cluster the keys of one call must share a
hash slot: use a single Redis/Valkey node (or its replicas), or a `prefix` with a hash tag.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from features.online_store import ORDER_WIDTH, OnlineStoreConfig, order_key, stored_value, vector_key

CHUNK = 500  # vectors per script call: ~100 KB of arguments

# KEYS: one per vector. ARGV[1]: TTL in ms (0: none); then per vector its stored value: the
# fixed-width order key (ORDER_WIDTH bytes, so strings compare as the keys do) and the message.
# Returns how many vectors were written (the others were older than the stored ones).
LUA_WRITE_LATEST = """
local ttl = tonumber(ARGV[1])
local width = %d
local written = 0
for i, key in ipairs(KEYS) do
  local value = ARGV[i + 1]
  local cur = redis.call('GETRANGE', key, 0, width - 1)
  if cur == '' or string.sub(value, 1, width) >= cur then
    if ttl > 0 then
      redis.call('SET', key, value, 'PX', ttl)
    else
      redis.call('SET', key, value)
    end
    written = written + 1
  end
end
return written
""" % ORDER_WIDTH


def _bulk(value: bytes) -> bytes:
    """One RESP bulk string (the writer packs its script calls itself: redis-py's generic
    packing costs more than the server's work for a batch)."""
    return b"$%d\r\n%b\r\n" % (len(value), value)


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
        self.sha = self.client.script_load(LUA_WRITE_LATEST).encode()
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
        keys = list(latest)
        commands = []
        ttl = b"%d" % self.config.ttl_ms
        for start in range(0, len(keys), CHUNK):
            chunk = keys[start:start + CHUNK]
            parts = [b"*%d\r\n$7\r\nEVALSHA\r\n$40\r\n%s\r\n" % (4 + 2 * len(chunk), self.sha)]
            parts.append(_bulk(b"%d" % len(chunk)))
            parts.extend(_bulk(key.encode()) for key in chunk)
            parts.append(_bulk(ttl))
            parts.extend(_bulk(stored_value(*latest[key])) for key in chunk)
            commands.append(b"".join(parts))
        written = sum(self._execute(commands))
        self.written += written
        self.older += len(keys) - written
        return written

    def _execute(self, commands: list[bytes]) -> list[int]:
        """Send the packed script calls in one round trip; reload the script once if the server
        lost it (a restart or a failover), and retry: the writes are idempotent."""
        import redis

        for attempt in (1, 2):
            pool = self.client.connection_pool
            conn = pool.get_connection()
            try:
                conn.send_packed_command(commands)
                return [conn.read_response() for _ in commands]
            except redis.exceptions.NoScriptError:
                conn.disconnect()  # replies of the other calls are still unread
                if attempt == 2:
                    raise
                self.sha = self.client.script_load(LUA_WRITE_LATEST).encode()
            except BaseException:
                conn.disconnect()
                raise
            finally:
                pool.release(conn)
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.client.close()
