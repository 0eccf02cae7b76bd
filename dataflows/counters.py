"""What a running flow measures: counts, latency histograms, gauges.

Progress lines, end-of-run summaries, the Prometheus endpoint and tests all read this one
object. Bytewax workers run as threads of one process, so updates take a lock; they happen
once per batch, not per event.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

# Seconds: from a millisecond batch to the minutes a window may wait for its watermark.
LATENCY_BUCKETS_S = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0)


@dataclass
class Histogram:
    """Cumulative-bucket histogram in the Prometheus layout: counts of observations <= each bound."""

    bounds: tuple[float, ...] = LATENCY_BUCKETS_S
    buckets: list[int] = field(default_factory=lambda: [0] * len(LATENCY_BUCKETS_S))
    count: int = 0
    sum: float = 0.0

    def observe(self, value: float) -> None:
        """Record one observation.

        >>> h = Histogram(); h.observe(0.02); h.observe(7.0)
        >>> h.count, h.buckets[:5]
        (2, [0, 0, 0, 1, 1])
        """
        self.count += 1
        self.sum += value
        for i, bound in enumerate(self.bounds):
            if value <= bound:
                self.buckets[i] += 1

    def observe_many(self, values: Sequence[float]) -> None:
        """Record many observations at once (the same counts and sum as one `observe` each).

        >>> h = Histogram(); h.observe_many([0.02, 7.0])
        >>> h.count, h.buckets[:5], h.sum
        (2, [0, 0, 0, 1, 1], 7.02)
        """
        # Bucket i counts the values <= bounds[i]: the values whose first bound at or above them is <= i.
        first = np.searchsorted(self.bounds, values, side="left")
        at_most = np.cumsum(np.bincount(first, minlength=len(self.bounds) + 1)[: len(self.bounds)])
        self.buckets = [b + int(n) for b, n in zip(self.buckets, at_most)]
        self.count += len(values)
        self.sum = sum(values, self.sum)  # in order, as `observe` adds them


class FlowCounters:
    """Named counters, safe to update from several worker threads.

    >>> counters = FlowCounters()
    >>> counters.add({"events_in": 3, "rejected.not_json": 1})
    >>> counters.get("events_in"), counters.total("rejected.")
    (3, 1)
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._histograms: dict[str, Histogram] = {}
        self._gauges: dict[str, float] = {}
        self._declared: set[str] = set()
        self.started = time.monotonic()

    def declare(self, names: Iterable[str]) -> None:
        """Name counters the flow may count, so that exports show them at 0 before their first
        count (a Prometheus `rate()` cannot see a series' first sample, so a counter that first
        appears at 50 hides that burst). Values, snapshots and summaries are unchanged.

        >>> counters = FlowCounters()
        >>> counters.declare(["rejected.not_json", "rejected.oversized"])
        >>> counters.add({"rejected.oversized": 2})
        >>> counters.declared(), counters.snapshot()
        (['rejected.not_json', 'rejected.oversized'], {'rejected.oversized': 2})
        """
        with self._lock:
            self._declared.update(names)

    def declared(self) -> list[str]:
        """The declared counter names, sorted."""
        with self._lock:
            return sorted(self._declared)

    def add(self, deltas: Mapping[str, int]) -> None:
        """Add several counts at once."""
        with self._lock:
            self._counts.update(deltas)

    def get(self, name: str) -> int:
        """One counter's value (0 if never set)."""
        with self._lock:
            return self._counts[name]

    def total(self, prefix: str) -> int:
        """The sum of every counter whose name starts with `prefix`."""
        with self._lock:
            return sum(v for k, v in self._counts.items() if k.startswith(prefix))

    def snapshot(self) -> dict[str, int]:
        """A copy of all counters, sorted by name."""
        with self._lock:
            return dict(sorted(self._counts.items()))

    def with_prefix(self, prefix: str) -> dict[str, int]:
        """The counters under `prefix`, with the prefix removed from their names."""
        return {k[len(prefix):]: v for k, v in self.snapshot().items() if k.startswith(prefix)}

    def observe(self, name: str, values: Iterable[float]) -> None:
        """Add observations (seconds) to the histogram `name`.

        >>> counters = FlowCounters()
        >>> counters.observe("stage.decode", [0.002, 0.004])
        >>> counters.histograms()["stage.decode"].count
        2
        """
        with self._lock:
            histogram = self._histograms.get(name)
            if histogram is None:
                self._histograms[name] = histogram = Histogram()
            histogram.observe_many(values if isinstance(values, (list, tuple)) else list(values))

    def set_gauge(self, name: str, value: float) -> None:
        """Set the current value of a gauge, e.g. `consumer_lag.<topic>.<partition>`."""
        with self._lock:
            self._gauges[name] = value

    def histograms(self) -> dict[str, Histogram]:
        """Copies of every histogram, by name."""
        with self._lock:
            return {k: Histogram(h.bounds, list(h.buckets), h.count, h.sum) for k, h in self._histograms.items()}

    def gauges(self) -> dict[str, float]:
        """Every gauge's current value, by name."""
        with self._lock:
            return dict(self._gauges)
