"""Seeded, picklable reservoir samplers: uniform, skip-ahead uniform, weighted, stratified.

Every reservoir knows `k` (its capacity) and `seen` (n, the items offered so far), draws
from its own `random.Random(seed)` (so a seed reproduces a sample, and no global state is
touched), and pickles as plain Python state for Bytewax snapshots; a restored reservoir
continues exactly as the original would have.

- `UniformReservoir`: Algorithm R (Vitter 1985, "Random sampling with a reservoir", ACM
  TOMS 11(1)). After n items each item is in the sample with probability k/n.
- `SkipReservoir`: Algorithm L (Li 1994, "Reservoir-sampling algorithms of time complexity
  O(n(1 + log(N/n)))", ACM TOMS 20(4)): the same distribution, but it draws how many items
  to skip, so a long stream costs O(k log(n/k)) random draws, and `extend` over a sequence
  jumps over skipped items without touching them.
- `WeightedReservoir`: A-ExpJ (Efraimidis & Spirakis 2006, "Weighted random sampling with a
  reservoir", IPL 97(5)): weighted sampling without replacement, the sample of successive
  draws with probability proportional to weight; exponential jumps keep random draws at
  O(k log(n/k)). Chosen over DataSketches' `var_opt`: var_opt draws from a C++ generator
  that cannot be seeded from Python (samples would not be reproducible and snapshots not
  deterministic) and needs a SerDe to serialise Python items; A-ExpJ is a few lines of
  Python state. Its keys also make `merge_weighted` exact.
- `StratifiedReservoir`: a `UniformReservoir` per stratum key, at most `max_strata` of
  them; items of later strata share one overflow reservoir and are counted.
- `merge_uniform`: two uniform samples over n1 and n2 items into a uniform sample of the
  union: how many come from each side is drawn from the hypergeometric distribution.

>>> r = UniformReservoir(3, seed=1)
>>> r.extend(range(100))
>>> r.k, r.seen, len(r.sample())
(3, 100, 3)
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Hashable, Iterable, Sequence
from typing import Any, Generic, TypeVar

T = TypeVar("T")


def _check_k(k: int) -> None:
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"reservoir size k must be an int >= 1, got {k!r}")


def _open_uniform(rng: random.Random) -> float:
    """A uniform draw in (0, 1): logs of it are finite."""
    u = rng.random()
    while u == 0.0:
        u = rng.random()
    return u


class UniformReservoir(Generic[T]):
    """A uniform sample of k items of a stream, Algorithm R (Vitter 1985).

    >>> r = UniformReservoir(2, seed=7)
    >>> for x in "abcde":
    ...     r.add(x)
    >>> r.seen, sorted(r.sample())
    (5, ['a', 'd'])
    """

    __slots__ = ("k", "seen", "items", "_rng")

    def __init__(self, k: int, seed: int | None = None) -> None:
        _check_k(k)
        self.k = k
        self.seen = 0
        self.items: list[T] = []
        self._rng = random.Random(seed)

    def add(self, item: T) -> None:
        """Offer one item."""
        self.seen += 1
        if len(self.items) < self.k:
            self.items.append(item)
        else:
            j = self._rng.randrange(self.seen)
            if j < self.k:
                self.items[j] = item

    def extend(self, items: Iterable[T]) -> None:
        """Offer items in order."""
        for item in items:
            self.add(item)

    def sample(self) -> list[T]:
        """The current sample (a copy): min(k, seen) items."""
        return list(self.items)

    @classmethod
    def from_sample(cls, items: Sequence[T], seen: int, k: int,
                    seed: int | None = None) -> UniformReservoir[T]:
        """A reservoir continuing from a uniform sample of min(k, seen) items of `seen`.

        >>> UniformReservoir.from_sample(["a", "b"], seen=10, k=2).seen
        10
        """
        _check_size(items, seen, k)
        r = cls(k, seed)
        r.items, r.seen = list(items), seen
        return r

    def __repr__(self) -> str:
        return f"{type(self).__name__}(k={self.k}, seen={self.seen})"


class SkipReservoir(UniformReservoir[T]):
    """A uniform sample of k items that skips ahead, Algorithm L (Li 1994).

    Same distribution as `UniformReservoir`; it keeps W (in logs), the k-th smallest of the
    uniform keys the stream would have drawn, and the position of the next item to take.

    >>> r = SkipReservoir(5, seed=3)
    >>> r.extend(range(1_000_000))  # about k * ln(n / k) = 61 random replacements
    >>> r.seen, len(r.sample())
    (1000000, 5)
    """

    __slots__ = ("_log_w", "_next")

    def __init__(self, k: int, seed: int | None = None) -> None:
        super().__init__(k, seed)
        self._log_w = 0.0
        self._next = 0  # 1-based position of the next item that enters (0: still filling)

    def add(self, item: T) -> None:
        """Offer one item."""
        self.seen += 1
        if len(self.items) < self.k:
            self.items.append(item)
            if len(self.items) == self.k:
                self._start(math.log(_open_uniform(self._rng)) / self.k)
        elif self.seen == self._next:
            self._take(item)

    def extend(self, items: Iterable[T]) -> None:
        """Offer items in order; over a sequence, skipped items are never touched."""
        if not isinstance(items, Sequence):
            for item in items:
                self.add(item)
            return
        pos, n = 0, len(items)
        while pos < n and len(self.items) < self.k:
            self.add(items[pos])
            pos += 1
        if len(self.items) < self.k:  # still filling: every item was taken
            return
        base = self.seen - pos  # stream position of items[0], less one
        while base + n >= self._next:
            self.seen = self._next
            self._take(items[self._next - base - 1])
        self.seen = base + n

    def _start(self, log_w: float) -> None:
        self._log_w = log_w
        self._next = self.seen + self._skip() + 1

    def _take(self, item: T) -> None:
        self.items[self._rng.randrange(self.k)] = item
        self._log_w += math.log(_open_uniform(self._rng)) / self.k
        self._next += self._skip() + 1

    def _skip(self) -> int:
        # floor(log(u) / log(1 - W)), with log(1 - W) accurate for W near 0 and near 1.
        lw = self._log_w
        log_1m_w = math.log(-math.expm1(lw)) if lw > -0.5 else math.log1p(-math.exp(lw))
        if log_1m_w == 0.0:  # W below 1e-300: nothing would enter for ~1e300 items
            return 2**62
        return int(math.log(_open_uniform(self._rng)) / log_1m_w)

    @classmethod
    def from_sample(cls, items: Sequence[T], seen: int, k: int,
                    seed: int | None = None) -> SkipReservoir[T]:
        """A reservoir continuing from a uniform sample of min(k, seen) items of `seen`.

        W is drawn afresh from its distribution given `seen` (Beta(k, seen - k + 1), the
        k-th smallest of `seen` uniform keys), which does not depend on which items are in
        the sample.

        >>> SkipReservoir.from_sample([1, 2], seen=10, k=2, seed=0).seen
        10
        """
        _check_size(items, seen, k)
        r = cls(k, seed)
        r.items, r.seen = list(items), seen
        if seen >= k:
            beta = r._rng.betavariate(k, seen - k + 1)
            r._start(math.log(beta) if beta > 0.0 else -745.0)
        return r


def _check_size(items: Sequence[Any], seen: int, k: int) -> None:
    if len(items) != min(k, seen):
        raise ValueError(f"a uniform sample of {seen} items with k={k} holds {min(k, seen)} "
                         f"items, got {len(items)}")


def merge_uniform(a: UniformReservoir[T], b: UniformReservoir[T],
                  rng: random.Random) -> UniformReservoir[T]:
    """A uniform sample of the union of two streams from uniform samples of each.

    With n1 = a.seen and n2 = b.seen, m = min(k, n1 + n2) items are drawn; how many come
    from a is hypergeometric (m draws without replacement from n1 + n2 items, n1 of them
    a's), then that many are taken uniformly from a's sample and the rest from b's. Every
    item of the union is then in the result with probability m / (n1 + n2). The result has
    a's type and a seed drawn from `rng`.

    >>> a = UniformReservoir(2, seed=1); a.extend("abc")
    >>> b = UniformReservoir(2, seed=2); b.extend("xyz")
    >>> m = merge_uniform(a, b, random.Random(0)); m.seen, len(m.sample())
    (6, 2)
    """
    if a.k != b.k:
        raise ValueError(f"cannot merge reservoirs of sizes {a.k} and {b.k}; use one k")
    n1, n2 = a.seen, b.seen
    m = min(a.k, n1 + n2)
    from_a, left_a, left = 0, n1, n1 + n2
    for _ in range(m):  # a hypergeometric draw, exact for any n (numpy's caps n at 1e9)
        if rng.randrange(left) < left_a:
            from_a += 1
            left_a -= 1
        left -= 1
    items = rng.sample(a.items, from_a) + rng.sample(b.items, m - from_a)
    return type(a).from_sample(items, n1 + n2, a.k, rng.getrandbits(64))


class WeightedReservoir(Generic[T]):
    """A weighted sample without replacement of k items, A-ExpJ (Efraimidis & Spirakis).

    Equivalent to drawing k items one after another, each with probability proportional to
    its weight among those not drawn yet. Each sampled item has the key u ** (1 / w) of
    algorithm A-Res (kept as its log); the k largest keys win. Weights must be finite and
    >= 0 (weight 0: never sampled).

    >>> r = WeightedReservoir(2, seed=5)
    >>> for item, w in (("a", 1.0), ("b", 100.0), ("c", 1.0), ("d", 100.0)):
    ...     r.add(item, w)
    >>> sorted(r.sample())
    ['b', 'd']
    """

    __slots__ = ("k", "seen", "total_weight", "_heap", "_jump", "_rng")

    def __init__(self, k: int, seed: int | None = None) -> None:
        _check_k(k)
        self.k = k
        self.seen = 0
        self.total_weight = 0.0
        self._heap: list[tuple[float, int, float, T]] = []  # (log key, arrival, weight, item)
        self._jump = 0.0  # weight still to pass before the next item enters
        self._rng = random.Random(seed)

    def add(self, item: T, weight: float) -> None:
        """Offer one item with its weight."""
        w = float(weight)
        if not (w >= 0.0 and math.isfinite(w)):
            raise ValueError(f"weights must be finite and >= 0, got {weight!r}")
        self.seen += 1
        self.total_weight += w
        if w == 0.0:
            return
        heap = self._heap
        if len(heap) < self.k:
            heapq.heappush(heap, (math.log(_open_uniform(self._rng)) / w, self.seen, w, item))
            if len(heap) == self.k:
                self._draw_jump()
            return
        self._jump -= w
        if self._jump > 0.0:
            return
        # The item enters: its key is uniform in (T ** w, 1), T the smallest key held.
        t = math.exp(w * heap[0][0])
        r = t + (1.0 - t) * _open_uniform(self._rng)
        heapq.heapreplace(heap, (math.log(r) / w, self.seen, w, item))
        self._draw_jump()

    def _draw_jump(self) -> None:
        # X_w = log(u) / log(T): the weight to skip before some key beats T.
        threshold = self._heap[0][0]
        log_u = math.log(_open_uniform(self._rng))
        self._jump = log_u / threshold if threshold < 0.0 else 0.0

    def extend(self, items: Iterable[tuple[T, float]]) -> None:
        """Offer (item, weight) pairs in order."""
        for item, weight in items:
            self.add(item, weight)

    def sample(self) -> list[T]:
        """The sampled items (a copy), in arrival order."""
        return [entry[3] for entry in sorted(self._heap, key=lambda e: e[1])]

    def weighted_sample(self) -> list[tuple[T, float]]:
        """The sampled (item, weight) pairs, in arrival order."""
        return [(entry[3], entry[2]) for entry in sorted(self._heap, key=lambda e: e[1])]

    def __repr__(self) -> str:
        return f"WeightedReservoir(k={self.k}, seen={self.seen})"


def merge_weighted(a: WeightedReservoir[T], b: WeightedReservoir[T],
                   rng: random.Random) -> WeightedReservoir[T]:
    """A weighted sample of the union of two streams: the k largest A-Res keys of both.

    Exact: keys are drawn independently per item, so the k largest of the union's keys are
    the k largest of the two samples' keys. The result continues with a seed from `rng`.

    >>> a = WeightedReservoir(1, seed=1); a.add("x", 1.0)
    >>> b = WeightedReservoir(1, seed=2); b.add("y", 1.0)
    >>> merge_weighted(a, b, random.Random(0)).seen
    2
    """
    if a.k != b.k:
        raise ValueError(f"cannot merge reservoirs of sizes {a.k} and {b.k}; use one k")
    out: WeightedReservoir[T] = WeightedReservoir(a.k, rng.getrandbits(64))
    out.seen, out.total_weight = a.seen + b.seen, a.total_weight + b.total_weight
    # Arrival numbers must stay unique: b's follow a's.
    entries = a._heap + [(key, a.seen + i, w, item) for key, i, w, item in b._heap]
    out._heap = heapq.nlargest(a.k, entries, key=lambda e: (e[0], -e[1]))
    heapq.heapify(out._heap)
    if len(out._heap) == out.k:
        out._draw_jump()
    return out


class StratifiedReservoir(Generic[T]):
    """A uniform sample of k items per stratum key, for at most `max_strata` strata.

    Strata are admitted in order of first appearance. Once `max_strata` exist, items of any
    other key go to one shared `overflow` reservoir (a uniform sample of all of them, size
    k) and are counted in `overflow_seen`, so a high-cardinality key cannot grow memory
    without bound and nothing is dropped silently.

    >>> r = StratifiedReservoir(2, max_strata=2, seed=0)
    >>> for key, x in (("a", 1), ("b", 2), ("c", 3), ("a", 4)):
    ...     r.add(key, x)
    >>> sorted(r.strata), r.overflow_seen, r.seen
    (['a', 'b'], 1, 4)
    """

    __slots__ = ("k", "max_strata", "strata", "overflow", "_rng")

    def __init__(self, k: int, max_strata: int, seed: int | None = None) -> None:
        _check_k(k)
        if not isinstance(max_strata, int) or max_strata < 1:
            raise ValueError(f"max_strata must be an int >= 1, got {max_strata!r}")
        self.k = k
        self.max_strata = max_strata
        self.strata: dict[Hashable, UniformReservoir[T]] = {}
        self._rng = random.Random(seed)
        self.overflow: UniformReservoir[T] = UniformReservoir(k, self._rng.getrandbits(64))

    def add(self, key: Hashable, item: T) -> None:
        """Offer one item of stratum `key`."""
        reservoir = self.strata.get(key)
        if reservoir is None:
            if len(self.strata) >= self.max_strata:
                self.overflow.add(item)
                return
            # Seeds come from this reservoir's generator: reproducible given the seed and
            # the order in which strata first appear.
            reservoir = self.strata[key] = UniformReservoir(self.k, self._rng.getrandbits(64))
        reservoir.add(item)

    @property
    def seen(self) -> int:
        """Items offered, overflow included."""
        return sum(r.seen for r in self.strata.values()) + self.overflow.seen

    @property
    def overflow_seen(self) -> int:
        """Items of strata beyond `max_strata`, sampled together in `overflow`."""
        return self.overflow.seen

    def sample(self) -> dict[Hashable, list[T]]:
        """The sample of each stratum (copies); the overflow sample is `overflow.sample()`."""
        return {key: r.sample() for key, r in self.strata.items()}

    def __repr__(self) -> str:
        return (f"StratifiedReservoir(k={self.k}, strata={len(self.strata)}/{self.max_strata}, "
                f"seen={self.seen}, overflow_seen={self.overflow_seen})")
