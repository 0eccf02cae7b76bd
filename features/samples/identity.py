"""Event identities and their keyed 64-bit hashes, a whole batch at a time with numpy.

An event's identity is the bytes of its `id_field` (UTF-8 for strings, JSON otherwise), or
all its fields as canonical JSON (`priority.identity_bytes`). `identity_hashes` hashes a
batch of identities in numpy: MurmurHash3's 64-bit block mix over the identity's 8-byte
little-endian words (only the words the identity has, so the hash does not depend on the
batch it came in), its length, then the fmix64 finalizer. `keyed` derives one sample set's
hash from it: fmix64(hash xor the set's key), the key being a BLAKE2b digest of the set's
seed and name. Both are bijections of a well-mixed 64-bit value, so a set's hashes of
distinct identities behave as independent uniform 64-bit draws (tests/samples check the
uniformity and the inclusion probabilities), and the same identity gets the same hash in
every process, batch cut, partition and run.

>>> base = identity_hashes([b"r-1", b"r-2", b"r-1"])
>>> bool(base[0] == base[2] != base[1])
True
>>> bool(keyed(base, set_key(0, "s"))[0] != keyed(base, set_key(1, "s"))[0])
True
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from features.event_batch import EventBatch
from features.samples.priority import identity_bytes

_C1 = np.uint64(0x87C37B91114253D5)
_C2 = np.uint64(0x4CF5AD432745937F)
_M1 = np.uint64(0xFF51AFD7ED558CCD)
_M2 = np.uint64(0xC4CEB9FE1A85EC53)
_ADD = np.uint64(0x52DCE729)
_FIVE = np.uint64(5)
_SEED = np.uint64(0x9E3779B97F4A7C15)
_S = {n: np.uint64(n) for n in (27, 31, 33, 37)}


def _rotl(x: np.ndarray, r: int) -> np.ndarray:
    return (x << _S[r]) | (x >> np.uint64(64 - r))


def _fmix64(h: np.ndarray) -> np.ndarray:
    h = h ^ (h >> _S[33])
    h = h * _M1
    h ^= h >> _S[33]
    h *= _M2
    h ^= h >> _S[33]
    return h


def set_key(seed: int, name: str) -> np.uint64:
    """One sample set's hash key, from its seed and name.

    >>> bool(set_key(0, "s") == set_key(0, "s") != set_key(0, "t"))
    True
    """
    digest = hashlib.blake2b(f"driftline.sample/{seed}/{name}".encode(), digest_size=8).digest()
    return np.uint64(int.from_bytes(digest, "little"))


def identity_hashes(identities: Sequence[bytes]) -> np.ndarray:
    """The unkeyed 64-bit hash (uint64) of each identity (module docstring).

    >>> identity_hashes([b"", b"\\x00"]).tolist()[0] != identity_hashes([b"\\x00"]).tolist()[0]
    True
    """
    n = len(identities)
    lengths = np.fromiter(map(len, identities), np.int64, n)
    h = np.full(n, _SEED, np.uint64)
    if n and lengths.max():
        width = -(-int(lengths.max()) // 8) * 8
        # Fixed-width bytes, zero-padded: row i's first lengths[i] bytes are identity i.
        words = np.array(identities, dtype=f"S{width}").view("<u8").reshape(n, width // 8)
        nwords = -(-lengths // 8)
        for j in range(width // 8):
            k = _rotl(words[:, j] * _C1, 31) * _C2
            mixed = _rotl(h ^ k, 27) * _FIVE + _ADD
            h = mixed if j == 0 and (nwords > 0).all() else np.where(nwords > j, mixed, h)
    return _fmix64(h ^ lengths.astype(np.uint64))


def keyed(hashes: np.ndarray, key: np.uint64) -> np.ndarray:
    """One sample set's hashes from the unkeyed ones (uint64).

    >>> keyed(np.array([1], np.uint64), np.uint64(2)).dtype
    dtype('uint64')
    """
    return _fmix64(hashes ^ key)


def batch_identities(batch: EventBatch, id_field: str | None) -> list[bytes]:
    """The identity of each event of `batch` (`priority.identity_bytes` of its fields).

    String ids are read from the decoded column; others (numbers, nulls) from the event's
    JSON object, as `identity_bytes` words them.

    >>> from features.events import Event
    >>> batch = EventBatch.of([Event("a", 1, {"id": "r-1"}), Event("a", 2, {"id": 7})])
    >>> batch_identities(batch, "id"), batch_identities(batch, None)[1]
    ([b'r-1', b'7'], b'{"id":7}')
    """
    if id_field is None:
        return [identity_bytes(record, None) for record in batch.records]
    values = batch.values(id_field)
    try:
        return list(map(str.encode, values))
    except TypeError:  # rare: a number or a null id
        return [v.encode() if type(v) is str else identity_bytes(batch.record(i), id_field)
                for i, v in enumerate(values)]
