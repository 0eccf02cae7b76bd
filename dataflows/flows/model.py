"""The model flow: events and delayed labels -> online River models, predict then learn.

Three keyed steps, so the predict/learn sequence of every model is the same in a Kafka
run, a replay and with any number of workers:

1. per input partition (events and labels topics): lateness in partition order
   (`PartitionClocks`; late events and labels are counted, not used), then routing by join
   key to one of `JOIN_SHARDS` join shards per model, with the partition's progress;
2. per join shard (`LabelRouter`): the segment of each event's key, so a label, which
   carries only the key, reaches its segment; labels that came before their event wait
   for it. Each shard sends its items and its watermark to every model shard;
3. per model shard (a hash of the segment into `MODEL_SHARDS`, or one shard without
   `segment_by`; with `placement = "load"`, one shard per worker and the segments spread by
   weight, `ShardRouting`): `OrderedRelease` puts events and labels in order once every
   join shard's watermark has passed them, and each segment's `SegmentModel` predicts,
   scores and learns. The state (models, waiting predictions) is Bytewax state: recovery
   restores it.

The order (`order` in `[[models]]`): `event_time` sorts by each item's event time and waits
for the watermark (`source.lateness` behind the slowest partition); `arrival` sorts by the
item's *sequence time*, the largest event time its input partition had delivered when it was
read (so it never goes back within a partition, and no item comes behind it), and waits for
the slowest partition's sequence time only. Both orders depend only on each partition's
sequence of messages, so a replay and a recovery make the same predictions.

Between steps, each item carries one batch's events or labels for one shard as columns
(`EventColumns`, `LabelColumns`): across worker processes Bytewax pickles each item, so the
cost is per batch, not per event.

Outputs: `predictions.<model>` (keyed by the join key, so it is co-partitioned with the
labels), `model.metrics` (window metrics, promotions and refused promotions, keyed by the model),
`model.snapshots` (keyed by the model), error drift on `drift.events` (keyed by the column),
and rejected labels on `<labels topic>.dlq`.
"""

from __future__ import annotations

import logging
import time
import zlib
from collections.abc import Callable
from itertools import groupby, repeat
from operator import itemgetter
from typing import Any

import bytewax.operators as op
import numpy as np
from bytewax.dataflow import Dataflow, Stream
from bytewax.inputs import FixedPartitionedSource
from bytewax.operators import StatefulBatchLogic
from bytewax.outputs import DynamicSink, Sink, StatelessSinkPartition

from dataflows.counters import FlowCounters
from dataflows.flows.ingest import wall_clock_ms, writes_dead_letters
from dataflows.flows.model_inputs import EventPart, feature_fields, input_decoder
from dataflows.kafka.io import OutMessage
from dataflows.flows.metrics import MODEL_METRIC
from dataflows.flows.worker_routing import key_on_worker
from features.config import Config
from features.config_values import ConfigError
from features.windows.engine import PartitionClocks
from features.models.label_router import LabelRouter
from features.messages import encode, iso_utc
from features.models.config import ModelSpec
from features.models.messages import (
    error_drift_event,
    metrics_message,
    prediction_messages,
    promotion_message,
    promotion_refused_message,
    snapshot_messages,
)
from features.models.columns import EVENT, LABEL, EventColumns, LabelColumns, partition_order, push
from features.models.feature_inputs import FeatureInputs
from features.models.fixed_test_set import FixedTestSet, load_fixed_test_set
from features.models.labels import Label
from features.models.placement import plan_fingerprint, plan_segments, segment_weights, worker_for
from features.models.segment import (
    ErrorDrift,
    Prediction,
    Promotion,
    PromotionRefused,
    Result,
    SegmentModel,
    Snapshot,
    SnapshotFailed,
    WindowMetrics,
)
from features.partition_progress import PartitionProgress
from features.stream_order import NEVER, Entry, OrderedRelease

# Fixed for the life of a deployment: recovery snapshots are keyed by shard.
JOIN_SHARDS = 8
MODEL_SHARDS = 16
HASH_PLACEMENT = "hash"
# The layout of the join and model shards' state (what a recovery snapshot holds): a release
# that changes it (the classes below, the models' ordering buffer, feature-input windows)
# numbers it anew, and a snapshot of another layout is refused at start (`resumable`).
STATE_LAYOUT = 2


def _shard(text: str, shards: int) -> int:
    return zlib.crc32(text.encode()) % shards


def model_shard_key(spec: ModelSpec, segment: str | None) -> str:
    """The model-shard key of a segment (a stable hash: the same in every process and run).

    >>> from features.models.config import LabelSpec
    >>> spec = ModelSpec("m", "k", "classification", ("x",), LabelSpec("l", "id", "y"))
    >>> model_shard_key(spec, None)
    'm/s0'
    """
    return f"{spec.name}/s{_shard(segment, MODEL_SHARDS) if spec.segment_by else 0}"


def join_shard_keys(spec: ModelSpec) -> list[str]:
    """Every join-shard key of a model, by shard number.

    >>> from features.models.config import LabelSpec
    >>> join_shard_keys(ModelSpec("m", "k", "classification", ("x",), LabelSpec("l", "id", "y")))[:2]
    ['m/j0', 'm/j1']
    """
    return [f"{spec.name}/j{j}" for j in range(JOIN_SHARDS)]


def model_shard_keys(spec: ModelSpec) -> list[str]:
    """Every model-shard key of a model."""
    return [f"{spec.name}/s{i}" for i in range(MODEL_SHARDS if spec.segment_by else 1)]


class ShardRouting:
    """Where a model's join shards and model shards are, and which model shard has a segment.

    `placement = "hash"`: the shard keys above, placed by Bytewax's hash (any worker count
    resumes a recovery directory). `placement = "load"`: join shard `j` on worker
    `j % workers`, and one model shard per worker holding the segments `plan_segments` gives
    it; each key is chosen so that Bytewax routes it to that worker (`key_on_worker`). The
    keys, hence the recovery state, belong to that worker count and plan: `fingerprint`
    (kept in the shards' state) tells a resumed run that they changed.
    """

    def __init__(self, spec: ModelSpec, workers: int = 1) -> None:
        self.spec = spec
        self.workers = workers
        self.by_load = spec.placement.by == "load" and spec.segment_by is not None
        if self.by_load:
            self.weights = segment_weights(spec)
            self.plan = plan_segments(self.weights, workers)
            self.fingerprint = plan_fingerprint(self.plan, workers)
            self.join_keys = [key_on_worker(f"{spec.name}/j{j}", j % workers, workers) for j in range(JOIN_SHARDS)]
            self.model_keys = [key_on_worker(f"{spec.name}/w{w}", w, workers) for w in range(workers)]
        else:
            self.weights, self.plan, self.fingerprint = {}, {}, HASH_PLACEMENT
            self.join_keys = join_shard_keys(spec)
            self.model_keys = model_shard_keys(spec)

    def model_key(self, segment: str | None) -> str:
        """The model-shard key of a segment."""
        if self.by_load:
            return self.model_keys[worker_for(self.plan, segment, self.workers)]
        return model_shard_key(self.spec, segment)

    def check_resumed(self, fingerprint: str | None) -> None:
        """Refuse to resume state placed for another worker count or plan."""
        fingerprint = fingerprint or HASH_PLACEMENT
        if fingerprint == self.fingerprint:
            return
        was = "placed by hash" if fingerprint == HASH_PLACEMENT else f"placed by load (plan {fingerprint})"
        now = "by hash" if not self.by_load else f"by load for {self.workers} worker(s) (plan {self.fingerprint})"
        raise ConfigError(f"models[{self.spec.name}].placement", f"the placement the recovery state was made with "
                          f"({was})", f"a run placing segments {now}",
                          "a segment's model cannot move to another worker on resume: restart with the worker "
                          "count and segment weights of the run that wrote the recovery directory, or start this "
                          'model afresh (a new --recovery-dir); placement = "hash" resumes with any worker count.')


class _WorkerCountCheck(DynamicSink):
    """Fails at start when the flow runs on another worker count than it was placed for."""

    def __init__(self, workers: int) -> None:
        self.workers = workers

    def build(self, step_id: str, worker_index: int, worker_count: int) -> StatelessSinkPartition:
        if worker_count != self.workers:
            raise ConfigError("models.placement", f"the flow run on the {self.workers} worker(s) it was built for",
                              worker_count, "pass the cluster's total worker count to build_model_flow(workers=...).")
        return _NullPartition()


class _NullPartition(StatelessSinkPartition):
    def write_batch(self, items: list[Any]) -> None:
        pass


class _PartitionLogic(StatefulBatchLogic[Any, tuple[str, Any], PartitionClocks]):
    """One input partition: lateness, then per model one item per join shard (every join shard,
    even with nothing for it: each follows the partition's progress), carrying the batch's
    events or labels of that join shard as columns."""

    def __init__(self, clocks: PartitionClocks, config: Config, counters: FlowCounters,
                 routings: dict[str, ShardRouting] | None = None) -> None:
        self.clocks = clocks
        self.config = config
        self.counters = counters
        routings = routings or {spec.name: ShardRouting(spec) for spec in config.models}
        self.join_keys = {spec.name: routings[spec.name].join_keys for spec in config.models}
        self.feature_fields = {spec.name: feature_fields(config, spec) for spec in config.models}

    def on_batch(self, values: list[tuple[str, Any]]) -> tuple[list[tuple[str, Any]], bool]:
        config = self.config
        dead = [item for _part, item in values if type(item) is OutMessage]
        if dead:  # dead letters, keyed "" by the decoder: passed on to the sink
            values = [v for v in values if type(v[1]) is not OutMessage]
            if not values:
                return dead, StatefulBatchLogic.RETAIN
        part = values[0][0]
        topic = part.split("-", 1)[1]
        is_label = topic != config.source.topic
        groups: dict[str, list[EventColumns | LabelColumns]] = {}
        late = 0
        for _part, items in values:  # this partition's batches, in partition order
            late += self._labels(items, topic, groups) if is_label else self._events(items, groups)
        if late:
            self.counters.add({"model.late_labels" if is_label else "model.late_events": late})
        high = max(self.clocks.high.values(), default=None)
        out = []
        for spec in config.models:
            if is_label and spec.labels.topic != topic:
                continue
            for key in self.join_keys[spec.name]:
                out.append((key, (key, groups.get(key, []), part, high)))
        return [*dead, *out], StatefulBatchLogic.RETAIN

    def _order(self, partition: int, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The positions of the items that are not late, and every item's sequence time."""
        clocks = self.clocks
        late, seq = partition_order(clocks.high.get(partition), clocks.lateness, times)
        clocks.high[partition] = int(seq[-1])
        return np.flatnonzero(~late), seq

    def _events(self, part: EventPart, groups: dict[str, list[EventColumns | LabelColumns]]) -> int:
        """Adds the part's events to their join shards' groups; returns how many were late."""
        kept, seq = self._order(part.partition, part.times)
        columns, entities, times = part.columns, part.entities, part.times
        if len(kept) < len(part):
            index = kept.tolist()
            columns = {name: [column[i] for i in index] for name, column in columns.items()}
            entities, times, seq = [entities[i] for i in index], times[kept], seq[kept]
        if not entities:
            return len(part)
        for spec in self.config.models:
            keys = _strings(columns[spec.labels.key])
            segment_by = spec.segment_by
            segments = _strings(columns[segment_by]) if segment_by else [None] * len(keys)
            # Only what the model needs travels on (between processes, it is pickled).
            events = EventColumns(seq if spec.order == "arrival" else times, times, keys, segments, entities,
                                  tuple(columns[name] for name in spec.field_inputs),
                                  tuple(columns[name] for name in self.feature_fields[spec.name]) or None)
            join_keys = self.join_keys[spec.name]
            for shard, index in _by_join_shard(keys).items():
                groups.setdefault(join_keys[shard], []).append(events.take(index))
        return len(part) - len(entities)

    def _labels(self, labels: list[Label], topic: str, groups: dict[str, list[EventColumns | LabelColumns]]) -> int:
        """Adds the labels to their join shards' groups; returns how many were late."""
        read = len(labels)
        times = np.array([label.time_ms for label in labels], dtype=np.int64)
        kept, seq = self._order(labels[0].partition, times)
        if len(kept) < read:
            labels = [labels[i] for i in kept.tolist()]
            times, seq = times[kept], seq[kept]
        if not labels:
            return read
        keys = [label.key for label in labels]
        values = [label.value for label in labels]
        shards = _by_join_shard(keys)
        for spec in self.config.models:
            if spec.labels.topic != topic:
                continue
            columns = LabelColumns(seq if spec.order == "arrival" else times, times, keys, [None] * len(keys), values)
            join_keys = self.join_keys[spec.name]
            for shard, index in shards.items():
                groups.setdefault(join_keys[shard], []).append(columns.take(index))
        return read - len(labels)

    def snapshot(self) -> PartitionClocks:
        return self.clocks


def _strings(values: list[Any]) -> list[str]:
    """A key column as strings (join keys and segments are strings whatever the field's type).

    >>> _strings(["a", 7])
    ['a', '7']
    """
    return [v if type(v) is str else str(v) for v in values]


def _by_join_shard(keys: list[str]) -> dict[int, list[int]]:
    """The positions of each join shard's keys, in order.

    >>> _by_join_shard(["r1", "r2", "r1"]) == {_shard("r1", JOIN_SHARDS): [0, 2], _shard("r2", JOIN_SHARDS): [1]}
    True
    """
    shards: dict[int, list[int]] = {}
    for i, key in enumerate(keys):
        shard = zlib.crc32(key.encode()) % JOIN_SHARDS  # `_shard`, inlined: once per event
        index = shards.get(shard)
        if index is None:
            shards[shard] = [i]
        else:
            index.append(i)
    return shards


def resumable(state: Any) -> Any:
    """A join or model shard's state from a recovery snapshot, if this version can resume it;
    else a clear error (snapshots of releases before the layout was numbered have none).

    >>> resumable(None) is None
    True
    >>> resumable(object())  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    RuntimeError: the recovery directory holds the model flow's state of another driftline ...
    """
    if state is None or getattr(state, "state_layout", None) == STATE_LAYOUT:
        return state
    raise RuntimeError(
        "the recovery directory holds the model flow's state of another driftline (laid out differently: its "
        "ordering buffer or feature-input windows); this version cannot read it. Resume with the version that "
        "wrote it, or start with a new --recovery-dir (the flow then reads its input from the start and the "
        "models learn afresh).")


class _ModelShardKeys(dict):
    """Segment -> model-shard key, computed once per segment (hashing per item costs)."""

    def __init__(self, routing: ShardRouting) -> None:
        super().__init__()
        self.routing = routing

    def __missing__(self, segment: str | None) -> str:
        key = self[segment] = self.routing.model_key(segment)
        return key


class _JoinState:
    """A join shard's state: its key, the router, the input partitions' progress, and the
    watermark it last sent on."""

    def __init__(self, spec: ModelSpec, partitions: int, lateness_ms: int, placement: str = HASH_PLACEMENT) -> None:
        self.key = ""
        self.router = LabelRouter(spec.labels.ttl_ms)
        self.progress = PartitionProgress(partitions)
        # The arrival order waits for no lateness: sequence times never go back in a partition.
        self.lateness = 0 if spec.order == "arrival" else lateness_ms
        self.watermark = NEVER
        self.placement = placement
        self.state_layout = STATE_LAYOUT


class _JoinLogic(StatefulBatchLogic[Any, tuple[str, Any], _JoinState]):
    """One join shard of one model: events and labels to their model shard, with a watermark."""

    def __init__(self, state: _JoinState, spec: ModelSpec, counters: FlowCounters,
                 clock_ms: Callable[[], int], routing: ShardRouting | None = None) -> None:
        self.state = state
        self.spec = spec
        self.counters = counters
        self.clock_ms = clock_ms
        routing = routing or ShardRouting(spec)
        self.shard_keys = routing.model_keys
        self.shard_of = _ModelShardKeys(routing)
        self.segmented = spec.segment_by is not None
        self.arrival = spec.order == "arrival"

    def on_batch(self, values: list[tuple[str, list[Any], str, int | None]]) -> tuple[list[tuple[str, Any]], bool]:
        state = self.state
        progress, sent = state.progress, state.watermark
        out: dict[str, list[EventColumns | LabelColumns]] = {key: [] for key in self.shard_keys}
        now = self.clock_ms()
        late = [0, 0]
        before = 0  # arrival order: labels earlier in the order than their event (not used)
        for key, parts, part, high in values:
            state.key = key
            for columns in parts:
                if type(columns) is EventColumns:
                    late[EVENT], before = self._events(columns, sent, out, late[EVENT], before)
                else:
                    late[LABEL], before = self._labels(columns, sent, out, late[LABEL], before)
            if high is not None:
                progress.report(part, high, now)
        if before:
            self.counters.add({"model.labels_unmatched": before})
        if late[EVENT] or late[LABEL]:
            self.counters.add({"model.late_events": late[EVENT], "model.late_labels": late[LABEL]})
        slowest = progress.slowest(now)
        watermark = NEVER if slowest == NEVER else slowest - state.lateness
        if watermark > sent:
            state.watermark = watermark
            dropped = state.router.expire(watermark)
            if dropped:
                self.counters.add({"model.labels_unmatched": dropped})
        watermark = state.watermark
        return [(key, (state.key, parts, watermark)) for key, parts in out.items()], StatefulBatchLogic.RETAIN

    def _events(self, columns: EventColumns, sent: int, out: dict[str, list[Any]], late: int,
                before: int) -> tuple[int, int]:
        """Each event to its segment's model shard, with the labels that waited for it; returns
        the late and `before` counts so far."""
        router, shard_of, arrival = self.state.router, self.shard_of, self.arrival
        behind = columns.order < sent  # from a partition that was idle: the model shards are past it
        if behind.any():
            late += int(behind.sum())
            columns = columns.take(np.flatnonzero(~behind).tolist())
        times, keys, segments = columns.order.tolist(), columns.keys, columns.segments
        if not times:
            return late, before
        picks: dict[str, list[int]] = {}
        if self.segmented:
            for i, segment in enumerate(segments):
                index = picks.get(shard_of[segment])
                if index is None:
                    picks[shard_of[segment]] = [i]
                else:
                    index.append(i)
        else:  # one model shard: every event goes there
            picks[shard_of[None]] = list(range(len(times)))
        released: dict[str, list[tuple[int, str, Any, Any, int]]] = {}
        for i, waiting in router.events(keys, times, segments):
            t, join_key, segment = times[i], keys[i], segments[i]
            for label_time, label in waiting:
                if arrival and label_time < t:
                    before += 1
                    continue
                released.setdefault(shard_of[segment], []).append((label_time, join_key, segment, label[0], label[1]))
        for shard, index in picks.items():
            out[shard].append(columns.take(index))
            labels = released.get(shard)
            if labels:
                out[shard].append(LabelColumns.of(labels))
        return late, before

    def _labels(self, columns: LabelColumns, sent: int, out: dict[str, list[Any]], late: int,
                before: int) -> tuple[int, int]:
        """Each label whose event is known to its segment's model shard (the others wait for
        it); returns the late and `before` counts so far."""
        router, shard_of, arrival = self.state.router, self.shard_of, self.arrival
        behind = columns.order < sent
        if behind.any():
            late += int(behind.sum())
            columns = columns.take(np.flatnonzero(~behind).tolist())
        times = columns.order.tolist()
        if not times:
            return late, before
        picks: dict[str, tuple[list[int], list[Any]]] = {}
        for i, event_time, segment in router.labels(columns.keys, times,
                                                     list(zip(columns.values, columns.times.tolist()))):
            # In the arrival order a label joins only an event before it in the order:
            # whether an event later in the order has come yet depends on timing.
            if arrival and event_time > times[i]:
                before += 1
                continue
            shard = shard_of[segment]
            pick = picks.get(shard)
            if pick is None:
                picks[shard] = ([i], [segment])
            else:
                pick[0].append(i)
                pick[1].append(segment)
        for shard, (index, segments) in picks.items():
            out[shard].append(columns.joined(index, segments))
        return late, before

    def on_eof(self) -> tuple[list[tuple[str, Any]], bool]:
        dropped = self.state.router.drop_all()
        if dropped:
            self.counters.add({"model.labels_unmatched": dropped})
        return [], StatefulBatchLogic.RETAIN

    def snapshot(self) -> _JoinState:
        return self.state


class _ShardState:
    """A model shard's state: the ordering buffer, the models of its segments, and the windows
    of the feature sets its inputs read (fed every event of the shard)."""

    def __init__(self, features: FeatureInputs | None = None, placement: str = HASH_PLACEMENT) -> None:
        self.order = OrderedRelease(JOIN_SHARDS)
        self.segments: dict[str | None, SegmentModel] = {}
        self.features = features
        self.placement = placement
        self.state_layout = STATE_LAYOUT


LOGGER = logging.getLogger("driftline.model")


class _ModelLogic(StatefulBatchLogic[Any, list[OutMessage], _ShardState]):
    """One model shard: events and labels in event-time order through each segment's model."""

    def __init__(self, state: _ShardState, spec: ModelSpec, counters: FlowCounters,
                 clock_ms: Callable[[], int], test_set: FixedTestSet | None = None,
                 feature_fields: tuple[str, ...] = ()) -> None:
        import river

        self.state = state
        self.feature_fields = feature_fields  # the names of the events' field columns (`EventColumns.fields`)
        self.spec = spec
        self.counters = counters
        self.clock_ms = clock_ms
        self.river_version = river.__version__
        self.test_set = test_set
        for model in state.segments.values():  # resumed: the test set is not part of the state
            model.test_set = test_set

    def _run(self, items: list[Entry]) -> list[OutMessage]:
        """The released entries (see `features.models.columns`) through their segments' models,
        a run of consecutive entries of a segment at a time; the predictions are rendered
        together, with the other outputs in between where they came."""
        spec, state = self.spec, self.state
        segments, features = state.segments, state.features
        now = self.clock_ms()
        if features is not None:  # the shard's windows see every event, in order, before it is predicted
            for _t, rank, _key, _arrival, _segment, own, payload in items:
                if rank == EVENT:
                    payload[1].update(features.on_event(own, payload[2]))
        predictions: list[Prediction] = []
        results: list[Result] = []
        labels = 0
        # A segment's clock is the order time: in the arrival order, the sequence time (so TTLs,
        # windows and snapshots depend on the sequence alone, not on when the watermark moved);
        # a prediction still says its event's own time.
        for segment, run in groupby(items, itemgetter(4)):
            model = segments.get(segment)
            if model is None:
                model = segments[segment] = SegmentModel(spec, segment, self.test_set)
            labels += model.run(run, predictions, results)
        rendered = prediction_messages(spec.name, predictions, iso_utc(now))
        keys = map(str.encode, map(itemgetter(0), predictions))
        out = list(map(OutMessage, repeat(spec.topic), keys, rendered))
        if results:  # rare (windows, snapshots, drift): put in at their places
            merged: list[OutMessage] = []
            done = 0
            for at, segment, result in results:
                merged += out[done:at]
                done = at
                self._encode(segment, [result], now, merged)
            out = merged + out[done:]
        if predictions or labels:
            self.counters.add({"model.predictions": len(predictions), "model.labels_used": labels})
        return out

    def _encode(self, segment: str | None, results: list[Any], now: int, out: list[OutMessage]) -> None:
        spec = self.spec
        name_key = spec.name.encode()
        counts: dict[str, int] = {}
        for r in results:
            kind = type(r)
            if kind is WindowMetrics:
                msg, topic, key = metrics_message(spec.name, segment, spec.task, r, now), spec.metrics_topic, name_key
                counts["model.windows"] = counts.get("model.windows", 0) + 1
                counts["model.expired"] = counts.get("model.expired", 0) + r.expired
                for metric, value in r.metrics.items():
                    if value is not None:
                        self.counters.set_gauge(f"{MODEL_METRIC}|{spec.name}|{segment or '-'}|{metric}", value)
            elif kind is Promotion:
                msg, topic, key = promotion_message(spec.name, segment, r, now), spec.metrics_topic, name_key
                counts["model.promotions"] = counts.get("model.promotions", 0) + 1
            elif kind is PromotionRefused:
                msg, topic, key = promotion_refused_message(spec.name, segment, r, now), spec.metrics_topic, name_key
                counts["model.promotions_refused"] = counts.get("model.promotions_refused", 0) + 1
            elif kind is Snapshot:
                out.extend(OutMessage(spec.snapshots_topic, name_key, encode(part))
                           for part in snapshot_messages(spec.name, segment, r, self.river_version, now))
                counts["model.snapshots"] = counts.get("model.snapshots", 0) + 1
                continue
            elif kind is SnapshotFailed:  # the flow goes on; the next snapshot is tried as usual
                counts["model.snapshot_errors"] = counts.get("model.snapshot_errors", 0) + 1
                LOGGER.error("model %r (segment %r, version %d, %s) could not be snapshotted: %s", spec.name,
                             segment, r.version, r.kind, r.error,
                             extra={"event": "snapshot_failed", "fields": {"model": spec.name, "segment": segment,
                                                                           "error": r.error}})
                continue
            elif kind is ErrorDrift:
                msg = error_drift_event(spec.name, segment, spec.task, r, now, runbook=spec.runbook)
                topic, key = spec.drift_topic, msg["column"].encode()
                counts["model.error_drifts"] = counts.get("model.error_drifts", 0) + 1
                severity = f"drift_alerts.{msg['severity']}"
                counts[severity] = counts.get(severity, 0) + 1
            else:
                raise TypeError(f"unexpected model output {r!r}")
            out.append(OutMessage(topic, key, encode(msg)))
        if counts:
            self.counters.add(counts)

    def on_batch(self, values: list[tuple[str, list[Any], int]]) -> tuple[list[list[OutMessage]], bool]:
        started = time.perf_counter()
        order = self.state.order
        names, fields = self.spec.field_inputs, self.feature_fields
        for sender, parts, watermark in values:  # as each join shard sent them
            push(order, parts, names, fields)
            order.mark(sender, watermark)
        out = self._run(order.release())
        watermark = order.watermark
        if watermark > NEVER:
            now = self.clock_ms()
            for segment, model in self.state.segments.items():
                if watermark >= model.due_ms:
                    results = model.advance(watermark)
                    if results:
                        self._encode(segment, results, now, out)
        self.counters.observe("stage.model", (time.perf_counter() - started,))
        return [out], StatefulBatchLogic.RETAIN

    def on_eof(self) -> tuple[list[list[OutMessage]], bool]:
        out = self._run(self.state.order.flush())
        now = self.clock_ms()
        for segment, model in self.state.segments.items():
            self._encode(segment, model.flush(model.last_ms), now, out)
        return [out], StatefulBatchLogic.RETAIN

    def snapshot(self) -> _ShardState:
        return self.state


def label_topics(config: Config) -> tuple[str, ...]:
    """The labels topics the configured models read, in config order, without repeats."""
    return tuple(dict.fromkeys(spec.labels.topic for spec in config.models))


def model_output_topics(config: Config) -> tuple[str, ...]:
    """Every topic the model flow writes."""
    events_dlq = [config.source.dead_letter_topic] if writes_dead_letters(config, "model") else []
    topics = [*events_dlq, *(f"{t}.dlq" for t in label_topics(config))]
    for spec in config.models:
        topics += [spec.topic, spec.metrics_topic, spec.snapshots_topic, spec.drift_topic]
    return tuple(dict.fromkeys(topics))


def build_model_flow(config: Config, source: FixedPartitionedSource, sink: Sink[OutMessage],
                     counters: FlowCounters, clock_ms: Callable[[], int] = wall_clock_ms,
                     workers: int = 1) -> Dataflow:
    """Ingestion + labels + online models, reading `source` (the events topic and the labels
    topics) and writing every output message to `sink`. `workers` is the cluster's total
    worker count: `placement = "load"` places the shards for it (and the flow refuses to run
    on another)."""
    if not config.models:
        raise ConfigError("models", "at least one [[models]] entry", None,
                          "add a model (see docs/models.md).")
    routings = {spec.name: ShardRouting(spec, workers) for spec in config.models}
    # Read and checked at start (a bad file stops here, before any broker is asked), decoded once per process.
    test_sets = {spec.name: load_fixed_test_set(spec, config.schema, f"models[{i}].promotion.test_set",
                                                config.source.limits.max_event_bytes)
                 for i, spec in enumerate(config.models) if spec.promotion_test is not None}
    parts = source.list_parts()
    events_topic = config.source.topic
    flow = Dataflow("driftline_model")
    raw = op.input("inputs", flow, source)
    decoded = op.flat_map_batch("decode", raw, input_decoder(config, counters, clock_ms))

    def partition_builder(resume: PartitionClocks | None) -> _PartitionLogic:
        return _PartitionLogic(resume or PartitionClocks(config.source.lateness_ms), config, counters, routings)

    routed = op.stateful_batch("route", decoded, partition_builder)
    split = op.branch("split_dead_letters", routed, lambda item: type(item[1]) is OutMessage)
    outputs: list[Stream[OutMessage]] = [op.key_rm("dead_letters", split.trues)]
    by_join_shard = op.map("rekey_join", split.falses, lambda item: item[1])
    for spec in config.models:
        count = sum(1 for p in parts if p.split("-", 1)[1] in (events_topic, spec.labels.topic))
        mine = op.filter(f"{spec.name}_join_in", by_join_shard,
                         lambda item, prefix=spec.name + "/": item[0].startswith(prefix))

        routing = routings[spec.name]

        def join_builder(resume: _JoinState | None, spec: ModelSpec = spec, count: int = count,
                         routing: ShardRouting = routing) -> _JoinLogic:
            if resumable(resume) is not None:
                routing.check_resumed(resume.placement)
                resume.progress.resumed(clock_ms())
            state = resume or _JoinState(spec, count, config.source.lateness_ms, routing.fingerprint)
            return _JoinLogic(state, spec, counters, clock_ms, routing)

        joined = op.stateful_batch(f"{spec.name}_join", mine, join_builder)
        joined = op.map(f"{spec.name}_rekey_model", joined, lambda item: item[1])

        def model_builder(resume: _ShardState | None, spec: ModelSpec = spec,
                          routing: ShardRouting = routing) -> _ModelLogic:
            test_set = test_sets.get(spec.name)
            if resumable(resume) is not None:
                routing.check_resumed(resume.placement)
                return _ModelLogic(resume, spec, counters, clock_ms, test_set, feature_fields(config, spec))
            # The arrival order releases an event at most `lateness` behind an earlier one.
            behind = config.source.lateness_ms if spec.order == "arrival" else 0
            features = (FeatureInputs(config.feature_sets, spec.features, behind, config.schema)
                        if spec.features else None)
            return _ModelLogic(_ShardState(features, routing.fingerprint), spec, counters, clock_ms, test_set,
                               feature_fields(config, spec))

        modelled = op.stateful_batch(f"{spec.name}_models", joined, model_builder)
        # Each model shard emits one list of messages per batch: flattened per batch, not per item.
        outputs.append(op.flat_map_batch(f"{spec.name}_out", modelled,
                                         lambda batch: [m for _key, messages in batch for m in messages]))
    op.output("out", op.merge("all_out", *outputs), sink)
    if any(r.by_load for r in routings.values()):  # the keys were chosen for this worker count
        op.output("placement_check", op.filter("never", raw, lambda _m: False), _WorkerCountCheck(workers))
    return flow

