"""Which worker Bytewax 0.21 gives a key of a stateful step, and keys chosen to land on a worker.

Bytewax routes each `(key, value)` of a stateful step (`stateful_batch`, and the operators
built on it) to worker `hash(key) % worker_count`, where the hash is Rust's `DefaultHasher`
(SipHash-1-3 with zero keys; stable across processes and runs) over the key string as Rust
hashes a `String` (its UTF-8 bytes, then a 0xFF byte): `stateful_batch` in bytewax's
`src/operators.rs` partitions the keyed stream over the workers with
`BuildHasherDefault<DefaultHasher>`. Routing is fixed for a given key string and worker count;
Bytewax offers no hook to route otherwise. So a flow that wants a shard on a given worker
names the shard with a key whose hash lands there (`key_on_worker`): recovery state stays
keyed by that string, and as long as the worker count is the same, the shard comes back on
the same worker. `tests/flows/test_worker_routing.py` checks `worker_of` against a running
Bytewax with 2, 3 and 4 workers.

>>> worker_of("m/j0", 1)
0
>>> key = key_on_worker("cancel/w1", 1, 2); worker_of(key, 2), key.startswith("cancel/w1")
(1, True)
"""

from __future__ import annotations

import functools
import struct

_MASK = 0xFFFFFFFFFFFFFFFF


def _rotl(x: int, b: int) -> int:
    return ((x << b) | (x >> (64 - b))) & _MASK


def siphash13(data: bytes, k0: int = 0, k1: int = 0) -> int:
    """SipHash-1-3 of `data` (Rust's `DefaultHasher` algorithm), as an unsigned 64-bit int."""
    v0 = k0 ^ 0x736F6D6570736575
    v1 = k1 ^ 0x646F72616E646F6D
    v2 = k0 ^ 0x6C7967656E657261
    v3 = k1 ^ 0x7465646279746573
    length = len(data)
    end = length - length % 8

    def rounds(v0: int, v1: int, v2: int, v3: int, n: int) -> tuple[int, int, int, int]:
        for _ in range(n):
            v0 = (v0 + v1) & _MASK
            v1 = _rotl(v1, 13) ^ v0
            v0 = _rotl(v0, 32)
            v2 = (v2 + v3) & _MASK
            v3 = _rotl(v3, 16) ^ v2
            v0 = (v0 + v3) & _MASK
            v3 = _rotl(v3, 21) ^ v0
            v2 = (v2 + v1) & _MASK
            v1 = _rotl(v1, 17) ^ v2
            v2 = _rotl(v2, 32)
        return v0, v1, v2, v3

    for i in range(0, end, 8):
        (m,) = struct.unpack_from("<Q", data, i)
        v3 ^= m
        v0, v1, v2, v3 = rounds(v0, v1, v2, v3, 1)
        v0 ^= m
    tail = int.from_bytes(data[end:], "little") | ((length & 0xFF) << 56)
    v3 ^= tail
    v0, v1, v2, v3 = rounds(v0, v1, v2, v3, 1)
    v0 ^= tail
    v2 ^= 0xFF
    v0, v1, v2, v3 = rounds(v0, v1, v2, v3, 3)
    return v0 ^ v1 ^ v2 ^ v3


@functools.lru_cache(maxsize=4096)
def worker_of(key: str, workers: int) -> int:
    """The worker (0-based, over every process of the cluster) Bytewax 0.21 routes `key` to."""
    return siphash13(key.encode() + b"\xff") % workers


@functools.lru_cache(maxsize=4096)
def key_on_worker(base: str, worker: int, workers: int) -> str:
    """`base`, or `base` with the smallest suffix `~<n>` that makes Bytewax route it to `worker`.

    The same arguments give the same key in every process and run."""
    if not 0 <= worker < workers:
        raise ValueError(f"worker {worker} is not one of 0..{workers - 1}")
    if worker_of(base, workers) == worker:
        return base
    n = 1
    while worker_of(f"{base}~{n}", workers) != worker:
        n += 1
    return f"{base}~{n}"
