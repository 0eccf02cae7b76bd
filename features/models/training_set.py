"""Point-in-time training sets: each labelled event with exactly the inputs the model flow used.

The model flow predicts every event with an input vector (event fields, and feature-set
values of the event's entity as known at its time: `FeatureInputs`), and later joins the
label. A batch model trained on the same vectors sees what the online model saw, and what a
service would have had at request time: no feature computed from the event itself or a later
one. `TrainingSet` replays that, on the same code and in the same order:

- events and labels in the model flow's order: event time, events before labels at equal
  times, then the join key (`OrderedRelease`'s key);
- each event's vector: `input_vector` of its fields, then `FeatureInputs.on_event` (the
  flow's own objects, so the point-in-time rule has one implementation);
- a label joins the latest event of its key that is still waiting: made at most `ttl` before
  the label, not evicted beyond `max_pending` waiting events (per segment), not labelled
  already; like `SegmentModel`, other labels are counted, not used.

Events and labels behind their partition's watermark are left out by the caller, as the flow
does (`driftline training-set` reads the files like `driftline replay`).

>>> from features.models.config import LabelSpec, ModelSpec
>>> from features.models.labels import Label
>>> from features.events import Event
>>> spec = ModelSpec("m", "hoeffding_tree_classifier", "classification", ("x",), LabelSpec("l", "id", "y", ttl_ms=1_000))
>>> ts = TrainingSet(spec, ())
>>> events = [Event("a", 100, {"id": "r1", "x": 1.5}), Event("a", 200, {"id": "r2", "x": None})]
>>> rows = ts.rows(events, [Label("r2", 900, True), Label("r1", 1_200, False), Label("r9", 300, True)])
>>> [(r.key, r.x, r.label) for r in rows], ts.unmatched_labels, ts.late_labels
([('r2', {}, True)], 1, 1)
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from features.events import Event
from features.models.config import ModelSpec
from features.models.feature_inputs import FeatureInputs
from features.models.labels import Label
from features.models.runner import input_vector
from features.schema import EventSchema
from features.windows.config import FeatureSet

EVENT, LABEL = 0, 1  # the model flow's ranks: at equal times an event comes before a label


@dataclass(frozen=True)
class TrainingRow:
    """One labelled event: its join key, time, entity and segment, the input vector the model
    flow used (null inputs left out, as in `predictions.<model>`), and the label."""

    key: str
    time_ms: int
    entity: str
    segment: str | None
    x: dict[str, Any]
    label: Any
    label_time_ms: int


class TrainingSet:
    """Builds the rows of one model; counts labels that join nothing, as the flow does."""

    def __init__(self, spec: ModelSpec, feature_sets: Sequence[FeatureSet], schema: EventSchema | None = None) -> None:
        self.spec = spec
        # Events come sorted by event time here, as in the flow's event-time order (lateness 0).
        self.features = FeatureInputs(feature_sets, spec.features, schema=schema) if spec.features else None
        self.unmatched_labels = 0  # no waiting event with that key (or labelled already)
        self.late_labels = 0  # after the TTL, or the event was evicted beyond max_pending
        self.events = 0

    def rows(self, events: Iterable[Event], labels: Iterable[Label]) -> list[TrainingRow]:
        """The labelled rows, in label-time order. Call once per instance (the feature windows
        are state)."""
        spec = self.spec
        key_field, segment_by = spec.labels.key, spec.segment_by
        items: list[tuple[int, int, str, int, Any]] = []
        for seq, event in enumerate(events):
            items.append((event.time_ms, EVENT, str(event.fields[key_field]), seq, event))
        for seq, label in enumerate(labels, len(items)):
            items.append((label.time_ms, LABEL, label.key, seq, label))
        items.sort(key=lambda item: item[:4])
        features, field_inputs = self.features, spec.field_inputs
        ttl, max_pending = spec.labels.ttl_ms, spec.max_pending
        # per segment: key -> (time, entity, segment, x), oldest first (like SegmentModel.pending)
        pending: dict[str | None, OrderedDict[str, tuple[int, str, str | None, dict[str, Any]]]] = {}
        segment_of: dict[str, str | None] = {}  # the join key's segment (labels carry only the key)
        expired: set[str] = set()
        out: list[TrainingRow] = []
        def expire(waiting: OrderedDict[str, Any], now: int) -> None:
            """Predictions whose label did not come within the TTL expire (`SegmentModel.advance`)."""
            while waiting:
                oldest_key, oldest = next(iter(waiting.items()))
                if oldest[0] + ttl >= now:
                    break
                del waiting[oldest_key]
                expired.add(oldest_key)

        for t, rank, key, _seq, item in items:
            if rank == EVENT:
                fields = item.fields
                x = input_vector(fields, field_inputs)
                if features is not None:
                    x = {**x, **features.on_event(t, fields)}
                segment = str(fields[segment_by]) if segment_by else None
                waiting = pending.setdefault(segment, OrderedDict())
                expire(waiting, t)
                waiting.pop(key, None)
                waiting[key] = (t, item.entity, segment, x)
                segment_of[key] = segment
                expired.discard(key)
                self.events += 1
                if len(waiting) > max_pending:
                    expired.add(waiting.popitem(last=False)[0])
                continue
            waiting = pending.get(segment_of.get(key), OrderedDict())
            expire(waiting, t)
            entry = waiting.pop(key, None)
            if entry is None:
                if key in expired:
                    self.late_labels += 1
                else:
                    self.unmatched_labels += 1
                continue
            event_time, entity, segment, x = entry
            out.append(TrainingRow(key, event_time, entity, segment, x, item.value, t))
        return out


def table_columns(spec: ModelSpec) -> list[str]:
    """The columns of a training-set table: `_key`, `_event_time_ms`, `_entity`, (`_segment`),
    the model's inputs in config order, `_label`, `_label_time_ms`.

    >>> from features.models.config import LabelSpec, ModelSpec
    >>> table_columns(ModelSpec("m", "k", "classification", ("price", "a1m.rides"), LabelSpec("l", "id", "y")))
    ['_key', '_event_time_ms', '_entity', 'price', 'a1m.rides', '_label', '_label_time_ms']
    """
    return ["_key", "_event_time_ms", "_entity", *(["_segment"] if spec.segment_by else []), *spec.inputs,
            "_label", "_label_time_ms"]


def table_row(spec: ModelSpec, row: TrainingRow) -> dict[str, Any]:
    """One row as a dict of `table_columns` (an absent input is None)."""
    out: dict[str, Any] = {"_key": row.key, "_event_time_ms": row.time_ms, "_entity": row.entity}
    if spec.segment_by:
        out["_segment"] = row.segment
    x = row.x
    for name in spec.inputs:
        out[name] = x.get(name)
    out["_label"] = row.label
    out["_label_time_ms"] = row.label_time_ms
    return out
