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

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from features.event_batch import EventBatch
from features.events import Event
from features.samples.identity import batch_identities, identity_hashes, keyed, set_key
from features.samples.priority import Hasher, WindowSample, priority_keys
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
    """One sample set's open panes for the events of one input partition.

    Each batch is sampled from its columns: the events' hashes and priority keys are
    computed in numpy (`features.samples.identity`), and only the events whose key beats
    their sample's threshold are handed to Python, smallest key first, so a pane's cost is a
    few array operations per batch plus O(k) insertions. The result is the bottom-k of the
    events whatever the batches (tests/samples check it against a brute-force oracle).
    """

    def __init__(self, spec: SampleSet) -> None:
        self.spec = spec
        self.panes: dict[int, WindowSample] = {}
        self._prepare()

    def _prepare(self) -> None:
        self._key = set_key(self.spec.seed, self.spec.name)
        self._rank = stratum_ranker(self.spec.seed, self.spec.name)

    def __getstate__(self) -> dict[str, Any]:
        return {"spec": self.spec, "panes": self.panes}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._prepare()

    def add(self, events: Sequence[Event]) -> None:
        """Sample events (none of them late), whatever their order.

        >>> from features.windows.config import WindowSpec
        >>> sampler = PaneSampler(SampleSet("s", WindowSpec("tumbling", 60_000, 60_000), k=2))
        >>> sampler.add([Event("a", t, {"i": t}) for t in (1, 2, 3, 60_001)])
        >>> [(start, pane.seen, len(pane.strata[None].heap)) for start, pane in sampler.release_all()]
        [(0, 3, 2), (60000, 1, 1)]
        """
        batch = EventBatch.of(events)
        self.add_batch(batch, identity_hashes(batch_identities(batch, self.spec.id_field)))

    def add_batch(self, batch: EventBatch, hashes: np.ndarray) -> None:
        """Sample a batch of events (none of them late); `hashes` are `identity_hashes` of
        their identities (`batch_identities` with the set's `id_field`), shared by the sets
        with the same `id_field`."""
        spec = self.spec
        if spec.where is not None:
            wanted = spec.where.values
            keep = np.fromiter((v in wanted for v in batch.values(spec.where.field)), bool, len(batch))
            if not keep.all():
                index = np.flatnonzero(keep)
                batch, hashes = batch.take(index), hashes[index]
        n = len(batch)
        if not n:
            return
        h = keyed(hashes, self._key)
        keys = priority_keys(spec, h, batch)
        step = spec.window.step_ms
        times = batch.times
        starts = times - times % step
        names, codes = self._strata(batch)
        first = int(starts.min())
        groups = (starts - first) // step * len(names) + codes  # one per (pane, stratum)
        if int(groups.max()) <= 4 * n:  # the batch spans few panes (the common case): no sort
            counts = np.bincount(groups)
            present = np.flatnonzero(counts)
            counts = counts[present]
        else:
            present, counts = np.unique(groups, return_counts=True)
        k, max_strata, rank = spec.k, spec.max_strata if spec.stratum_field else 1, self._rank
        targets = []
        for g, group in enumerate(present.tolist()):  # by pane, then strata in order of appearance
            start = first + group // len(names) * step
            pane = self.panes.get(start)
            if pane is None:
                pane = self.panes[start] = WindowSample(k, max_strata)
            name = names[group % len(names)]
            pane.stratum(name, rank)
            targets.append((g, pane, name))
        for g, pane, name in targets:
            # Asked again: a stratum evicted by a later one of this batch now samples into the
            # overflow (where its earlier events went), as one event at a time would.
            bottom = pane.stratum(name, rank)
            bottom.seen += int(counts[g])
            members = np.flatnonzero(groups == present[g]) if len(present) > 1 else np.arange(n)
            candidates = members[keys[members] < bottom.threshold()]
            # Smallest key first (ties in arrival order: a duplicate identity keeps its first
            # event); once one fails the threshold, every later one does.
            for i in candidates[np.argsort(keys[candidates], kind="stable")].tolist():
                key = float(keys[i])
                if key >= bottom.threshold():
                    break
                bottom._insert(key, int(h[i]), int(times[i]), *self._item(batch, i))

    def _strata(self, batch: EventBatch) -> tuple[list[str | None], np.ndarray]:
        """The batch's stratum names and each event's index in them (one None stratum when
        the set is not stratified)."""
        field = self.spec.stratum_field
        if field is None:
            return [None], np.zeros(len(batch), np.int64)
        values = batch.values(field)
        index = {name: i for i, name in enumerate(dict.fromkeys(values))}  # first appearance order
        if all(type(name) is str for name in index):
            return list(index), np.fromiter(map(index.__getitem__, values), np.int64, len(values))
        # Non-strings are named from the event's JSON value, as `stratum_name` words it.
        names = [v if type(v) is str else stratum_name(batch.record(i).get(field)) for i, v in enumerate(values)]
        index = {name: i for i, name in enumerate(dict.fromkeys(names))}
        codes = np.fromiter(map(index.__getitem__, names), np.int64, len(names))
        return list(index), codes

    def _item(self, batch: EventBatch, i: int) -> tuple[float | None, dict[str, Any]]:
        """The weight and kept fields of a sampled event (its JSON object is parsed here only)."""
        spec = self.spec
        record = batch.record(i)
        weight = record.get(spec.weight_field) if spec.weight_field is not None else None
        fields = record if spec.fields is None else {name: record.get(name) for name in spec.fields}
        return weight, fields

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
