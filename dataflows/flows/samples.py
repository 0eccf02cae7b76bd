"""Sample sets in the features flow: each input partition samples its own events into panes,
and one step per sample set merges the panes and closes windows with the stream watermark.

Only the panes' bottom-k samples cross workers, never the events. Each batch is sampled
from its columns (`PaneSampler.add_batch`): lateness, hashes and priority keys are numpy
operations per batch; Python touches only the events that enter a sample. Bottom-k samples merge exactly, so
the result does not depend on how partitions are interleaved or spread over workers: a
Kafka run, a replay and a restarted run write the same samples. Both steps' state is in
the Bytewax recovery snapshots.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import bytewax.operators as op
import numpy as np
from bytewax.dataflow import Stream
from bytewax.operators import StatefulBatchLogic

from dataflows.counters import FlowCounters
from dataflows.flows.ingest import wall_clock_ms
from dataflows.kafka.io import OutMessage
from features.config import Config
from features.event_batch import EventBatch
from features.partition_progress import NEVER
from features.samples.identity import batch_identities, identity_hashes
from features.windows.columnar import partition_verdicts
from features.windows.engine import PartitionClocks
from features.messages import encode, late_event_message
from features.samples.priority import WindowSample
from features.samples.messages import message_key, sample_messages
from features.samples.windows import ClosedSample, PaneSampler, SampleWindows

# What a partition sends each sample set per batch: the set's name, the panes the
# partition's watermark has passed, and its progress (largest event time per partition).
PaneItem = tuple[str, list[tuple[int, WindowSample]], dict[int, int]]


@dataclass
class _PartitionState:
    clocks: PartitionClocks
    samplers: dict[str, PaneSampler]


class _PartitionSampling(StatefulBatchLogic[EventBatch, "tuple[str, PaneItem] | OutMessage", _PartitionState]):
    """Keyed by input partition: drops late events (the partition's clock, as the features
    do), samples the rest into panes, hands over panes its watermark has passed.

    Late events go to the late topic from the feature sets' stage; without feature sets,
    `late_topic` is set and this step writes them (each late event is written once).
    """

    def __init__(self, state: _PartitionState, counters: FlowCounters, source_topic: str,
                 late_topic: str | None, clock_ms: Callable[[], int]) -> None:
        self.state = state
        self.counters = counters
        self.source_topic = source_topic
        self.late_topic = late_topic
        self.clock_ms = clock_ms

    def _emit(self, release: Callable[[PaneSampler], list[tuple[int, WindowSample]]]
              ) -> list[tuple[str, PaneItem]]:
        progress = dict(self.state.clocks.high)
        return [(name, (name, release(sampler), progress)) for name, sampler in self.state.samplers.items()]

    def on_batch(self, values: list[EventBatch]) -> tuple[list[tuple[str, PaneItem] | OutMessage], bool]:
        started = time.perf_counter()
        batch = EventBatch.concat(values)
        clocks = self.state.clocks
        verdicts = partition_verdicts(clocks.high, clocks.lateness, batch.partitions, batch.times)
        late = np.flatnonzero(verdicts != NEVER)
        out: list[tuple[str, PaneItem] | OutMessage] = []
        kept = batch
        if late.size:
            self.counters.add({"samples_late": int(late.size)})
            if self.late_topic is not None:
                out += self._late(batch, late, verdicts)
            kept = batch.take(np.flatnonzero(verdicts == NEVER))
        hashes: dict[str | None, np.ndarray] = {}  # by id field: sets with the same one share them
        for sampler in self.state.samplers.values():
            id_field = sampler.spec.id_field
            if id_field not in hashes:
                hashes[id_field] = identity_hashes(batch_identities(kept, id_field))
            sampler.add_batch(kept, hashes[id_field])
        watermark = min(clocks.high.values()) - clocks.lateness if clocks.high else -(2**62)
        out += self._emit(lambda s: s.release(watermark))
        self.counters.observe("stage.sample_panes", (time.perf_counter() - started,))
        return out, StatefulBatchLogic.RETAIN

    def _late(self, batch: EventBatch, late: np.ndarray, verdicts: np.ndarray) -> list[OutMessage]:
        now = self.clock_ms()
        out = [OutMessage(self.late_topic, batch.entities[i].encode(), encode(late_event_message(
            self.source_topic, int(batch.partitions[i]), int(batch.offsets[i]), batch.entities[i],
            int(batch.times[i]), int(verdicts[i]), batch.record(i), now)))
            for i in late.tolist()]
        self.counters.add({"late": len(out)})
        return out

    def on_eof(self) -> tuple[list[tuple[str, PaneItem] | OutMessage], bool]:
        return self._emit(PaneSampler.release_all), StatefulBatchLogic.RETAIN

    def snapshot(self) -> _PartitionState:
        return self.state


class _SetWindows(StatefulBatchLogic[PaneItem, OutMessage, SampleWindows]):
    """Keyed by sample set: merges every partition's panes, writes the windows that close.

    Bytewax builds the logic without its key, so a new one learns its set from the first item.
    """

    def __init__(self, windows: SampleWindows | None, new: Callable[[str], SampleWindows], counters: FlowCounters,
                 clock_ms: Callable[[], int]) -> None:
        self.windows = windows
        self.new = new
        self.counters = counters
        self.clock_ms = clock_ms

    def _encode(self, closed: Iterable[ClosedSample]) -> list[OutMessage]:
        if self.windows is None:
            return []
        now = self.clock_ms()
        topic = self.windows.spec.topic
        out = []
        items = 0
        for c in closed:
            for message in sample_messages(c, now):
                items += len(message["items"])
                out.append(OutMessage(topic, message_key(message).encode(), encode(message)))
        if out:
            name = self.windows.spec.name
            self.counters.add({"samples_out": len(out), f"samples_out.{name}": len(out), "sample_items": items})
        return out

    def on_batch(self, values: list[PaneItem]) -> tuple[list[OutMessage], bool]:
        started = time.perf_counter()
        closed: list[ClosedSample] = []
        now = self.clock_ms()
        for name, panes, progress in values:
            if self.windows is None:
                self.windows = self.new(name)
            late = self.windows.late_after_close
            for start, pane in panes:
                self.windows.absorb(start, pane)
            if self.windows.late_after_close > late:
                self.counters.add({"samples.late_after_close": self.windows.late_after_close - late})
            closed += self.windows.advance(progress, now)
        out = self._encode(closed)
        self.counters.observe("stage.samples", (time.perf_counter() - started,))
        return out, StatefulBatchLogic.RETAIN

    def on_eof(self) -> tuple[list[OutMessage], bool]:
        return self._encode(self.windows.flush() if self.windows else []), StatefulBatchLogic.RETAIN

    def snapshot(self) -> SampleWindows | None:
        return self.windows


def sample_stage(batches: Stream[EventBatch], config: Config, counters: FlowCounters, partitions: int,
                 clock_ms: Callable[[], int] = wall_clock_ms) -> list[Stream[OutMessage]]:
    """Add the sample sets to a flow; returns their output stream (none without sample sets).

    `partitions` is the number of input partitions: windows close once all have passed them,
    except partitions silent for 30 s of wall time (`PartitionProgress`).
    """
    if not config.sample_sets:
        return []
    lateness = config.source.lateness_ms
    by_partition = op.flat_map("samples_by_partition", batches,
                               lambda b: [(str(p), part) for p, part in b.by_partition()])

    late_topic = None if config.feature_sets else config.source.late_topic

    def partition_builder(resume: _PartitionState | None) -> _PartitionSampling:
        state = resume or _PartitionState(PartitionClocks(lateness), {s.name: PaneSampler(s) for s in config.sample_sets})
        return _PartitionSampling(state, counters, config.source.topic, late_topic, clock_ms)

    panes = op.key_rm("samples_panes_unkey", op.stateful_batch("samples_panes", by_partition, partition_builder))
    split = op.branch("samples_late", panes, lambda item: type(item) is OutMessage)
    by_set = split.falses  # (set, item), keyed for the next step
    specs = {s.name: s for s in config.sample_sets}

    def set_builder(resume: SampleWindows | None) -> _SetWindows:
        if resume is not None:
            resume.progress.resumed(clock_ms())
        return _SetWindows(resume, lambda name: SampleWindows(specs[name], lateness, partitions), counters, clock_ms)

    windows = op.stateful_batch("samples_windows", by_set, set_builder)
    return [op.key_rm("samples_unkey", windows), split.trues]


def samples_summary(counters: FlowCounters) -> str:
    """What the sample sets wrote, for a run's summary ("" when there are none).

    >>> counters = FlowCounters()
    >>> counters.add({"samples_out": 17, "samples_out.by_area": 17, "sample_items": 80})
    >>> print(samples_summary(counters))
      sample messages out   17 (80 sampled events)
        by_area               17
    """
    if not counters.get("samples_out"):
        return ""
    lines = [f"  sample messages out   {counters.get('samples_out'):,} ({counters.get('sample_items'):,} sampled events)"]
    lines += [f"    {name:<21} {n:,}" for name, n in counters.with_prefix("samples_out.").items()]
    if counters.get("samples.late_after_close"):
        lines.append(f"  samples: events of an idle partition's closed windows, left out "
                     f"{counters.get('samples.late_after_close'):,}")
    return "\n".join(lines)
