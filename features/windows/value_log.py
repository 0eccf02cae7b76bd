"""The values of many pane slots as one log of arrays, for quantiles and medians.

A slot's values are the log entries with its number, in arrival order: adding a batch
appends two arrays, whatever the number of slots, and a window's values are gathered with
a few grouped numpy steps. The results are `features.windows.aggregates`': exact up to
`cap` values per window; a slot past the cap becomes the same KLL sketch (built from its
values in arrival order), and a window past it is merged from its panes as the per-event
engine merges them.

>>> log = ValueLog()
>>> log.add(np.array([0, 0, 2]), np.array([3.0, 1.0, 2.0]), np.array([0, 2]), np.array([2, 1]), np.array([0, 0]))
>>> (ordered, starts, counts), merged = log.gather(np.array([[0, 1], [2, 0]]), np.array([[True, True], [True, False]]))
>>> ordered.tolist(), starts.tolist(), counts.tolist(), merged
([1.0, 3.0, 2.0], [0, 2], [2, 1], {})
"""

from __future__ import annotations

from typing import Any

import numpy as np

from features.windows.aggregates import EXACT_VALUES_CAP, Quantiles, _merge_values
from features.windows.ordering import among, sorted_within, spans, stable_order


class ValueLog:
    """The values of pane slots: (slot, value) arrays in arrival order, and sketches of the slots past `cap`."""

    def __init__(self, cap: int = EXACT_VALUES_CAP) -> None:
        self.cap = cap
        self._chunks: list[tuple[np.ndarray, np.ndarray]] = []  # merged when read
        self.sketches: dict[int, Quantiles] = {}

    def add(self, slots: np.ndarray, values: np.ndarray, heads: np.ndarray, counts: np.ndarray,
            held: np.ndarray) -> None:
        """Add values sorted by slot (arrival order within a slot), in runs `heads` of `counts`
        values; `held` is how many values each run's slot held before."""
        over = held + counts > self.cap
        if over.any():  # rare: slots past the cap take their values as sketches
            for r in np.flatnonzero(over).tolist():
                slot, run = int(slots[heads[r]]), values[heads[r]: heads[r] + counts[r]].tolist()
                sketch = self.sketches.get(slot)
                if sketch is None:
                    self.sketches[slot] = Quantiles(self._values_of(slot) + run)
                    self._remove(np.array([slot]))
                else:
                    for x in run:
                        sketch.update(x)
            keep = ~np.repeat(over, counts)
            slots, values = slots[keep], values[keep]
        if len(slots):
            self._chunks.append((slots, values))

    def drop(self, slots: np.ndarray) -> None:
        """Forget the slots' values (their panes have been emitted)."""
        for slot in slots.tolist() if self.sketches else ():
            self.sketches.pop(slot, None)
        self._remove(slots)

    def _remove(self, slots: np.ndarray) -> None:
        log_slots, log_values = self._merged()
        if len(log_slots):
            keep = ~among(log_slots, slots, max(int(log_slots.max()), int(slots.max(initial=0))) + 1)
            self._chunks = [(log_slots[keep], log_values[keep])]

    def gather(self, slots: np.ndarray, valid: np.ndarray,
               ) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], dict[int, Any]]:
        """Each window's values sorted, from its panes: (values, each window's start in them,
        count); `slots` and `valid` are (windows, panes). Windows with a sketch among their panes,
        or more values than the cap, are merged as the per-event engine merges them (a list or a
        sketch), and returned by window index instead."""
        rows, cols = np.nonzero(valid)
        panes = slots[rows, cols]
        log_slots, log_values = self._merged()
        need = np.zeros(max(int(panes.max(initial=-1)), int(log_slots.max(initial=-1))) + 1, bool)
        need[panes] = True
        picked = np.flatnonzero(need[log_slots])
        by_slot = stable_order(log_slots[picked])  # arrival order within a slot
        held_slots, held_values = log_slots[picked][by_slot], log_values[picked][by_slot]
        firsts = np.searchsorted(held_slots, panes, "left")
        sizes = np.searchsorted(held_slots, panes, "right") - firsts
        totals = np.bincount(rows, weights=sizes, minlength=len(slots)).astype(np.int64)
        special = totals > self.cap
        if self.sketches:
            special[rows[np.isin(panes, np.fromiter(self.sketches, np.int64, len(self.sketches)))]] = True
        merged = {}
        for i in np.flatnonzero(special).tolist():
            parts = []
            for j in np.flatnonzero(rows == i).tolist():
                sketch = self.sketches.get(int(panes[j]))
                if sketch is not None or sizes[j]:
                    parts.append(sketch if sketch is not None else held_values[firsts[j]: firsts[j] + sizes[j]].tolist())
            merged[i] = _merged_parts(parts)
        if merged:
            keep = ~special[rows]
            rows, firsts, sizes = rows[keep], firsts[keep], sizes[keep]
            totals[special] = 0
        index = spans(firsts, sizes)
        return (sorted_within(held_values[index], totals), np.cumsum(totals) - totals, totals), merged

    def _merged(self) -> tuple[np.ndarray, np.ndarray]:
        if len(self._chunks) != 1:
            if not self._chunks:
                return np.zeros(0, np.int64), np.zeros(0)
            self._chunks = [(np.concatenate([s for s, _ in self._chunks]), np.concatenate([v for _, v in self._chunks]))]
        return self._chunks[0]

    def _values_of(self, slot: int) -> list[float]:
        log_slots, log_values = self._merged()
        return log_values[log_slots == slot].tolist()


def _merged_parts(parts: list[list[float] | Quantiles]) -> list[float] | Quantiles:
    """A window's panes merged in time order, as the per-event engine merges them.

    >>> _merged_parts([[2.0], [1.0]])
    [2.0, 1.0]
    """
    if len(parts) == 1:
        return parts[0]
    merged: list[float] | Quantiles = []
    for part in parts:
        merged = _merge_values(merged, part)
    return merged
