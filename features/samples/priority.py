"""Order-independent priority (bottom-k) samples: the same sample however events arrive.

Each event gets a pseudo-random priority key from a keyed 64-bit hash of its identity (keyed
by the sample set's seed and name; `features.samples.identity`, computed per batch in numpy),
and a sample keeps the k events with the smallest keys. The sample is a function of the *set* of events, not of their order, so a Kafka run
(partitions interleaved), a replay (one partition), any number of workers and a restarted
run all draw the same sample; and the sample of a union is the bottom-k of the samples'
union, so merging windows is exact (Cohen & Kaplan 2007, "Summarizing data using bottom-k
sketches", PODC).

- uniform: key = u, uniform in (0, 1) from the hash. Each of n events (distinct
  identities) is in the sample with probability exactly k/n.
- weighted: key = ln(-ln u) - ln w, a monotone transform of Efraimidis & Spirakis' A-Res
  key u^(1/w) (the one `features.samples.reservoirs.WeightedReservoir` keeps): the k smallest are the
  k largest A-Res keys, i.e. k successive draws proportional to weight. Kept as a log so
  recency weights w = 2^((t - end) / half_life) never overflow: with ln w measured from the
  epoch (t / half_life * ln 2) the key of an event does not depend on its window, and every
  window's order is the same as with weights relative to its end (they differ by a factor
  common to all events of the window).
- stratified: a uniform sample per stratum; a window keeps the `max_strata` strata whose
  keyed hash of the stratum name is smallest (also order-independent), the events of every
  other stratum share one uniform `overflow` sample and are counted.

Events with the same identity get the same key and are sampled once (at-least-once
duplicates), though each counts in `seen`.

>>> b = Bottom(2)
>>> for key in (0.5, 0.1, 0.9, 0.3):
...     b.offer(key, int(key * 10), 0, None, {"x": key})
>>> b.seen, [item[0] for item in b.items()]
(4, [0.1, 0.3])
"""

from __future__ import annotations

import hashlib
import heapq
import math
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import orjson

from features.event_batch import EventBatch
from features.samples.config import SampleSet

# An item: (key, hash, event time ms, weight or None, kept fields). Inside `Bottom` the
# heap holds (-key, -hash, ...) so its top is the largest key, the first to go.
Item = tuple[float, int, int, float | None, dict[str, Any]]

TWO_POW_M52 = 2.0**-52
_LN2 = math.log(2.0)


def priority_keys(spec: SampleSet, hashes: np.ndarray, batch: EventBatch) -> np.ndarray:
    """The priority key of each event of `batch` (smaller wins), from the set's hashes of the
    events (`features.samples.identity.keyed`) and, for weighted sets, their weights.

    u is the hash's top 52 bits, centred in (0, 1) (never 0 or 1): uniform sets use u;
    weighted ones ln(-ln u) - ln w (module docstring), with w the weight field (an event
    without a positive finite weight gets an infinite key: counted, never drawn) or the
    recency weight measured from the epoch.

    >>> from features.events import Event
    >>> from features.windows.config import WindowSpec
    >>> spec = SampleSet("s", WindowSpec("tumbling", 1, 1), 1, "weighted", weight_field="w")
    >>> batch = EventBatch.of([Event("a", 0, {"w": 1.0}), Event("a", 0, {"w": 2.0}), Event("a", 0, {"w": 0})])
    >>> keys = priority_keys(spec, np.full(3, 2**63, np.uint64), batch)
    >>> bool(keys[1] < keys[0]), keys[2]
    (True, np.float64(inf))
    """
    u = ((hashes >> np.uint64(12)).astype(np.float64) + 0.5) * TWO_POW_M52
    if spec.kind != "weighted":
        return u
    if spec.weight_field is not None:
        w = batch.numbers(spec.weight_field)
        with np.errstate(invalid="ignore", divide="ignore"):
            keys = np.log(-np.log(u)) - np.log(w)
        return np.where((w > 0.0) & np.isfinite(w), keys, np.inf)
    return np.log(-np.log(u)) - batch.times * _LN2 / spec.half_life_ms  # type: ignore[operator]


class Hasher:
    """A keyed 64-bit hash for one sample set: the seed and name make the key.

    >>> Hasher(1, "s")(b"r-1") == Hasher(1, "s")(b"r-1") != Hasher(2, "s")(b"r-1")
    True
    """

    __slots__ = ("base",)

    def __init__(self, seed: int, name: str) -> None:
        key = hashlib.blake2b(f"driftline.sample/{seed}/{name}".encode(), digest_size=32).digest()
        self.base = hashlib.blake2b(digest_size=8, key=key)  # copied per hash: keying costs once

    def __call__(self, data: bytes) -> int:
        h = self.base.copy()
        h.update(data)
        return int.from_bytes(h.digest(), "big")

    def __getstate__(self) -> bytes:
        raise TypeError("Hasher is rebuilt from the sample set, not pickled")


def identity_bytes(fields: dict[str, Any], id_field: str | None) -> bytes:
    """The bytes that identify an event: its `id_field`, or all its fields in canonical JSON.

    >>> identity_bytes({"b": 1, "a": "x"}, None), identity_bytes({"id": "r-1"}, "id")
    (b'{"a":"x","b":1}', b'r-1')
    """
    if id_field is not None:
        value = fields.get(id_field)
        if type(value) is str:
            return value.encode()
        if value is not None:
            return orjson.dumps(value)
    return orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)


class Bottom:
    """The k items with the smallest keys offered so far, and how many were offered.

    `cutoff` is set when the items are known only up to a key (a sample cut to fit a
    message): items above it cannot be trusted, and merges respect it.
    """

    __slots__ = ("k", "seen", "heap", "cutoff")

    def __init__(self, k: int) -> None:
        self.k = k
        self.seen = 0
        self.heap: list[tuple[float, int, int, float | None, dict[str, Any]]] = []
        self.cutoff = math.inf

    def offer(self, key: float, h: int, time_ms: int, weight: float | None, fields: dict[str, Any]) -> None:
        """Count one event and keep it if its key is among the k smallest (duplicates once)."""
        self.seen += 1
        heap = self.heap
        if len(heap) >= self.k and key >= -heap[0][0]:
            return
        self._insert(key, h, time_ms, weight, fields)

    def _insert(self, key: float, h: int, time_ms: int, weight: float | None, fields: dict[str, Any]) -> None:
        heap = self.heap
        entry = (-key, -h, time_ms, weight, fields)
        for other in heap:  # O(k), only on insertions: an identity is sampled once
            if other[1] == -h and other[0] == -key:
                return
        if len(heap) < self.k:
            heapq.heappush(heap, entry)
        elif entry > heap[0]:  # a smaller (key, hash) than the largest held
            heapq.heapreplace(heap, entry)

    def threshold(self) -> float:
        """The largest key held once full (an event needs a smaller key to enter), else inf."""
        return -self.heap[0][0] if len(self.heap) >= self.k else math.inf

    def items(self) -> list[Item]:
        """The held items, smallest key first (ties by hash): a stable order."""
        return [(-e[0], -e[1], e[2], e[3], e[4]) for e in sorted(self.heap, reverse=True)]

    def absorb(self, other: Bottom) -> None:
        """Become the bottom-k of both streams: exact, because keys are fixed per event."""
        self.seen += other.seen
        self.cutoff = min(self.cutoff, other.cutoff)
        for e in other.heap:
            self._insert(-e[0], -e[1], e[2], e[3], e[4])
        if self.cutoff < math.inf:
            self.heap = [e for e in self.heap if -e[0] <= self.cutoff]
            heapq.heapify(self.heap)

    def copy(self) -> Bottom:
        """An independent copy (items are shared, they are never mutated).

        >>> b = Bottom(1); b.offer(0.5, 1, 0, None, {}); c = b.copy(); c.offer(0.1, 2, 0, None, {})
        >>> b.items()[0][0], c.items()[0][0]
        (0.5, 0.1)
        """
        out = Bottom(self.k)
        out.seen, out.heap, out.cutoff = self.seen, list(self.heap), self.cutoff
        return out

    @classmethod
    def of(cls, k: int, seen: int, items: Iterable[Item], cutoff: float = math.inf) -> Bottom:
        """A bottom-k sample of `seen` events rebuilt from its items (e.g. from a message).

        >>> Bottom.of(2, 10, [(0.2, 7, 0, None, {})]).threshold()
        inf
        """
        out = cls(k)
        for key, h, t, w, fields in items:
            out._insert(key, h, t, w, fields)
        out.seen, out.cutoff = seen, cutoff
        return out

    def __getstate__(self) -> tuple[int, int, list[Any], float]:
        return self.k, self.seen, self.heap, self.cutoff

    def __setstate__(self, state: tuple[int, int, list[Any], float]) -> None:
        self.k, self.seen, self.heap, self.cutoff = state

    def __repr__(self) -> str:
        return f"Bottom(k={self.k}, seen={self.seen}, held={len(self.heap)})"


class WindowSample:
    """The bottom-k sample of one window (or pane) per stratum, with a bounded number of strata.

    An unstratified sample is the single stratum None. For stratified samples, `rank`
    gives each stratum name a keyed hash; the `max_strata` strata of smallest (rank, name)
    are kept and every other stratum's events go to `overflow`, whatever the order they
    came in (an evicted stratum is absorbed into the overflow sample, which is exact).

    >>> rank = {"a": 2, "b": 1}.__getitem__
    >>> w = WindowSample(1, max_strata=1)
    >>> w.stratum("a", rank).offer(0.3, 1, 0, None, {}); w.stratum("b", rank).offer(0.2, 2, 0, None, {})
    >>> sorted(w.strata), w.overflow.seen
    (['b'], 1)
    """

    __slots__ = ("k", "max_strata", "strata", "overflow", "ranks", "worst")

    def __init__(self, k: int, max_strata: int = 1) -> None:
        self.k = k
        self.max_strata = max_strata
        self.strata: dict[str | None, Bottom] = {}
        self.overflow = Bottom(k)
        self.ranks: dict[str | None, tuple[int, str]] = {}  # of the kept strata
        self.worst: str | None = None  # the kept stratum of largest rank, once full

    def stratum(self, name: str | None, rank: Callable[[str], int] | None = None) -> Bottom:
        """The sample an event of stratum `name` goes to (a new stratum may evict another)."""
        bottom = self.strata.get(name)
        if bottom is not None:
            return bottom
        mine = (0, "") if name is None or rank is None else (rank(name), name)
        if len(self.strata) >= self.max_strata:
            worst = self.worst
            if mine >= self.ranks[worst]:
                return self.overflow
            self.overflow.absorb(self.strata.pop(worst))
            del self.ranks[worst]
        bottom = self.strata[name] = Bottom(self.k)
        self.ranks[name] = mine
        if len(self.strata) >= self.max_strata:
            self.worst = max(self.ranks, key=self.ranks.__getitem__)
        return bottom

    @property
    def seen(self) -> int:
        """Events offered, overflow included."""
        return sum(b.seen for b in self.strata.values()) + self.overflow.seen

    def absorb(self, other: WindowSample, rank: Callable[[str], int] | None = None) -> None:
        """Become the sample of both: stratum by stratum, then the strata bound again."""
        self.overflow.absorb(other.overflow)
        for name, bottom in other.strata.items():
            self.stratum(name, rank).absorb(bottom)

    def copy(self) -> WindowSample:
        """An independent copy."""
        out = WindowSample(self.k, self.max_strata)
        out.strata = {name: b.copy() for name, b in self.strata.items()}
        out.overflow = self.overflow.copy()
        out.ranks, out.worst = dict(self.ranks), self.worst
        return out

    def __getstate__(self) -> tuple[Any, ...]:
        return self.k, self.max_strata, self.strata, self.overflow, self.ranks, self.worst

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        self.k, self.max_strata, self.strata, self.overflow, self.ranks, self.worst = state
