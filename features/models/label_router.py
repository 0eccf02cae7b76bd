"""Which segment a label belongs to: labels carry only the join key, events also the segment.

A `LabelRouter` serves one shard of join keys. It remembers the segment of each event's key
for two TTLs of event time (so a label beyond the TTL still reaches its segment, which counts
it as late), and holds a label whose event has not arrived yet (topics are read side by
side, so a label can come first) until the event comes or the watermark passes the label.

>>> router = LabelRouter(ttl_ms=1_000)
>>> router.label("r1", 500, "label of r1")  # no event yet: it waits
(False, None)
>>> router.event("r1", 400, "area-1")
[(500, 'label of r1')]
>>> router.label("r1", 600, "again")
(True, 'area-1')
>>> router.expire(3_000), router.label("r1", 3_500, "too late")
(0, (False, None))
>>> router.expire(4_000)
1
"""

from __future__ import annotations

import heapq
from collections import OrderedDict
from typing import Any


class LabelRouter:
    """Join key -> segment for recent events, and labels waiting for their events."""

    def __init__(self, ttl_ms: int) -> None:
        self.ttl = ttl_ms
        # key -> (event time, segment); an OrderedDict, as a dict emptied from the front makes
        # `next(iter(d))` scan the holes
        self.segments: OrderedDict[str, tuple[int, str | None]] = OrderedDict()
        self.waiting: dict[str, list[tuple[int, Any]]] = {}  # key -> [(label time, label)]
        # (label time, key) of every waiting label, so expiry visits only what the watermark
        # passed; entries of keys whose event came since are skipped when they surface.
        self.due: list[tuple[int, str]] = []

    def event(self, key: str, time_ms: int, segment: str | None) -> list[tuple[int, Any]]:
        """Record an event's segment; returns the (time, label) pairs that were waiting for it."""
        released = self.events([key], [time_ms], [segment])
        return released[0][1] if released else []

    def events(self, keys: list[str], times: list[int],
               segments: list[str | None]) -> list[tuple[int, list[tuple[int, Any]]]]:
        """Record a batch of events' segments, in order; returns (position, the (time, label)
        pairs that were waiting for it) of each event that had labels waiting (few do).

        >>> router = LabelRouter(ttl_ms=1_000)
        >>> router.label("r2", 9, "early")
        (False, None)
        >>> router.events(["r1", "r2"], [5, 6], ["a", "b"])
        [(1, [(9, 'early')])]
        """
        recorded, waiting = self.segments, self.waiting
        released = []
        for i, (key, time_ms, segment) in enumerate(zip(keys, times, segments)):
            recorded.pop(key, None)  # re-insert: the dict stays in arrival order
            recorded[key] = (time_ms, segment)
            if waiting and key in waiting:
                released.append((i, waiting.pop(key)))
        return released

    def label(self, key: str, time_ms: int, label: Any) -> tuple[bool, str | None]:
        """(True, segment) when the key's event is known; else the label waits: (False, None)."""
        found = self.labels([key], [time_ms], [label])
        return (True, found[0][2]) if found else (False, None)

    def labels(self, keys: list[str], times: list[int], labels: list[Any]) -> list[tuple[int, int, str | None]]:
        """A batch of labels, in order: returns (position, event time, segment) of each label
        whose key's event is known; the others wait for it.

        >>> router = LabelRouter(ttl_ms=1_000)
        >>> router.event("r1", 5, "a")
        []
        >>> router.labels(["r1", "r2"], [7, 8], ["label 1", "label 2"]), router.waiting
        ([(0, 5, 'a')], {'r2': [(8, 'label 2')]})
        """
        recorded, waiting, due = self.segments, self.waiting, self.due
        found = []
        for i, (key, time_ms) in enumerate(zip(keys, times)):
            known = recorded.get(key)
            if known is not None:
                found.append((i, *known))
            else:
                waiting.setdefault(key, []).append((time_ms, labels[i]))
                heapq.heappush(due, (time_ms, key))
        return found

    def expire(self, watermark: int) -> int:
        """Forget events older than two TTLs before the watermark, and drop waiting labels the
        watermark has passed (their events can no longer come); returns the labels dropped."""
        segments, horizon = self.segments, watermark - 2 * self.ttl
        while segments:
            key = next(iter(segments))
            if segments[key][0] >= horizon:
                break  # arrival order is nearly time order: stragglers go a little later
            del segments[key]
        dropped = 0
        due, waiting = self.due, self.waiting
        while due and due[0][0] < watermark:
            _, key = heapq.heappop(due)
            labels = waiting.get(key)
            if labels is not None and labels[-1][0] < watermark:  # the key's latest label too
                dropped += len(waiting.pop(key))
        return dropped

    def drop_all(self) -> int:
        """Drop every waiting label (the inputs have ended); returns how many there were."""
        dropped = sum(len(labels) for labels in self.waiting.values())
        self.waiting.clear()
        self.due.clear()
        return dropped
