"""Sample sets over event-time windows: panes sampled where events are read, merged where windows close.

Two halves, so the flow never ships events to one place to sample them:

- `PaneSampler` samples one input partition's events (the caller has dropped late ones)
  into panes of one window step, and hands over a pane once the partition's watermark has
  passed its end (no event of that partition can fall into it any more).
- `SampleWindows` absorbs the panes of every partition (bottom-k merges are exact, so the
  result is the sample of all of them) and closes a window when the stream watermark (the
  slowest partition's, once every partition has reported) passes its end, as feature
  windows close. Hopping windows are the merge of their `length / step` panes.

>>> from features.samples.config import SampleSet
>>> from features.windows.config import WindowSpec
>>> from features.events import Event
>>> spec = SampleSet("s", WindowSpec("tumbling", 60_000, 60_000), k=2)
>>> sampler, windows = PaneSampler(spec), SampleWindows(spec, lateness_ms=0, partitions=1)
>>> sampler.add([Event("a", t, {"i": t}) for t in (1_000, 2_000, 3_000, 61_000)])
>>> for start, pane in sampler.release(60_000):
...     windows.absorb(start, pane)
>>> [(c.start_ms, c.end_ms, c.sample.seen) for c in windows.advance({0: 61_000})]
[(0, 60000, 3)]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from features.events import Event
from features.samples.priority import TWO_POW_M52, Hasher, WindowSample, identity_bytes, recency_log_weight
from features.partition_progress import NEVER as _NEVER
from features.partition_progress import PartitionProgress
from features.samples.config import SampleSet


def stratum_name(value: Any) -> str:
    """The stratum of a field value: strings as they are, anything else as JSON.

    >>> stratum_name("cash"), stratum_name(3), stratum_name(None)
    ('cash', '3', 'null')
    """
    return value if type(value) is str else orjson.dumps(value).decode()


def stratum_ranker(seed: int, name: str) -> Callable[[str], int]:
    """The keyed hash that orders a stratified set's strata (the smallest are kept).

    >>> rank = stratum_ranker(0, "s")
    >>> rank("cash") == stratum_ranker(0, "s")("cash") != stratum_ranker(1, "s")("cash")
    True
    """
    hasher = Hasher(seed, f"{name}#strata")
    return lambda stratum: hasher(stratum.encode())


class PaneSampler:
    """One sample set's open panes for the events of one input partition."""

    def __init__(self, spec: SampleSet) -> None:
        self.spec = spec
        self.panes: dict[int, WindowSample] = {}
        self._prepare()

    def _prepare(self) -> None:
        self._hash = Hasher(self.spec.seed, self.spec.name)
        self._rank = stratum_ranker(self.spec.seed, self.spec.name)

    def __getstate__(self) -> dict[str, Any]:
        return {"spec": self.spec, "panes": self.panes}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._prepare()

    def add(self, events: Iterable[Event]) -> None:
        """Sample events (none of them late), whatever their order."""
        spec = self.spec
        step, k = spec.window.step_ms, spec.k
        max_strata = spec.max_strata if spec.stratum_field else 1
        panes, base, rank, from_bytes = self.panes, self._hash.base, self._rank, int.from_bytes
        where_field, where_values = (spec.where.field, spec.where.values) if spec.where else (None, None)
        id_field, keep, stratum_field = spec.id_field, spec.fields, spec.stratum_field
        weight_field, half_life = spec.weight_field, spec.half_life_ms
        dumps, sort_keys = orjson.dumps, orjson.OPT_SORT_KEYS
        log, isfinite = math.log, math.isfinite
        for event in events:
            fields = event.fields
            if where_field is not None and fields.get(where_field) not in where_values:
                continue
            t = event.time_ms
            start = t - t % step
            pane = panes.get(start)
            if pane is None:
                pane = panes[start] = WindowSample(k, max_strata)
            if stratum_field is None:
                bottom = pane.strata.get(None) or pane.stratum(None)
            else:
                value = fields.get(stratum_field)
                name = value if type(value) is str else stratum_name(value)
                bottom = pane.strata.get(name) or pane.stratum(name, rank)
            if id_field is None:
                identity = dumps(fields, option=sort_keys)
            else:
                identity = fields.get(id_field)
                identity = identity.encode() if type(identity) is str else identity_bytes(fields, id_field)
            digest = base.copy()  # `Hasher.__call__`, inlined: this is the per-event path
            digest.update(identity)
            h = from_bytes(digest.digest(), "big")
            weight = None
            if weight_field is not None:
                weight = fields.get(weight_field)
                if weight is None or not (weight > 0.0 and isfinite(weight)):
                    bottom.seen += 1  # drawn from, never drawn
                    continue
                key = log(-log(((h >> 12) + 0.5) * TWO_POW_M52)) - log(weight)  # weighted_key(unit(h), ln w)
            elif half_life is not None:
                key = log(-log(((h >> 12) + 0.5) * TWO_POW_M52)) - recency_log_weight(t, half_life)
            else:
                key = ((h >> 12) + 0.5) * TWO_POW_M52  # unit(h), inlined
            bottom.seen += 1
            heap = bottom.heap
            if len(heap) >= k and key >= -heap[0][0]:
                continue
            bottom._insert(key, h, t, weight, fields if keep is None else {name: fields.get(name) for name in keep})

    def release(self, watermark: int) -> list[tuple[int, WindowSample]]:
        """Hand over the panes that end at or before `watermark`, oldest first."""
        step = self.spec.window.step_ms
        done = sorted(start for start in self.panes if start + step <= watermark)
        return [(start, self.panes.pop(start)) for start in done]

    def release_all(self) -> list[tuple[int, WindowSample]]:
        """Hand over every pane (the input has ended)."""
        return self.release(2**62)


@dataclass(frozen=True)
class ClosedSample:
    """The sample of one closed window of a sample set."""

    spec: SampleSet
    start_ms: int
    end_ms: int
    sample: WindowSample


class SampleWindows:
    """One sample set's panes from every partition, and the windows the stream watermark closes.

    The whole object is the set's state in the flow: it pickles into recovery snapshots.
    """

    def __init__(self, spec: SampleSet, lateness_ms: int, partitions: int) -> None:
        self.spec = spec
        self.lateness = lateness_ms
        self.progress = PartitionProgress(partitions)
        self.panes: dict[int, WindowSample] = {}
        self.closed_through = _NEVER  # every window ending at or before this is done
        self.late_after_close = 0  # events of panes that came after a window holding them closed
        self._rank = stratum_ranker(spec.seed, spec.name)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_rank"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._rank = stratum_ranker(self.spec.seed, self.spec.name)

    def absorb(self, start: int, pane: WindowSample) -> None:
        """Add one partition's sample of the pane starting at `start`. A pane that comes after
        a window holding it was closed (from a partition that was idle) is left out, counted."""
        if start + self.spec.window.step_ms <= self.closed_through:
            self.late_after_close += pane.seen
            return
        mine = self.panes.get(start)
        if mine is None:
            self.panes[start] = pane
        else:
            mine.absorb(pane, self._rank)

    def advance(self, progress: Mapping[int, int], now_ms: int | None = None) -> list[ClosedSample]:
        """Record the largest event time read per partition; returns the windows that close.
        With the wall clock (`now_ms`), idle partitions do not hold windows open (`PartitionProgress`)."""
        for p, t in progress.items():
            self.progress.report(p, t, now_ms)
        slowest = self.progress.slowest(now_ms)
        if slowest == _NEVER:
            return []
        return self.close(slowest - self.lateness)

    def close(self, watermark: int) -> list[ClosedSample]:
        """The windows that end after the last close and at or before `watermark`, in end order."""
        step, length = self.spec.window.step_ms, self.spec.window.length_ms
        # Window ends are multiples of step: nothing closes before the next one (the common case).
        if watermark < (self.closed_through // step + 1) * step:
            return []
        ends = sorted({start + j * step for start in self.panes for j in range(1, length // step + 1)
                       if self.closed_through < start + j * step <= watermark})
        out = []
        for end in ends:
            merged: WindowSample | None = None
            for start in range(end - length, end, step):
                pane = self.panes.get(start)
                if pane is None:
                    continue
                if merged is None:
                    merged = pane.copy() if length != step else pane
                else:
                    merged.absorb(pane, self._rank)
            if merged is not None:
                out.append(ClosedSample(self.spec, end - length, end, merged))
        self.closed_through = watermark
        for start in [s for s in self.panes if s + length <= watermark]:
            del self.panes[start]
        return out

    def flush(self) -> list[ClosedSample]:
        """Close every window that has events (the input has ended)."""
        return self.close(2**62)
