"""Counts a running flow keeps, for progress lines, end-of-run summaries and tests.

Bytewax workers run as threads of one process, so updates take a lock; they happen once
per batch, not per event.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Mapping


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
        self.started = time.monotonic()

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
