"""Feature-set values as model inputs, point-in-time correct: what was known at the event's time.

A model shard feeds every event it sees, in event-time order, to a `FeatureInputs`. Before
an event at time `t` is predicted, the windows of the feature sets that end at or before
`t` are closed (by the same window code as the features flow, so the values are the ones
the features flow writes to `features.<set>`); the event then reads its entity's latest
closed window of each set, and is added to the open windows afterwards. So a prediction
never sees its own event or a later one, and a replay, a Kafka run and any number of
workers give the same vectors.

Which window an event at `t` reads:

- tumbling and hopping: the window that ends at the latest step boundary `b <= t`. If the
  entity had no event in it there is no row, and the event reads the values of an empty
  window (`count`, `sum`, `distinct`, `rate` 0, the rest null and so left out of the vector), as the
  window really was, not an older window's values;
- last_n and session: the latest window that closed at or before `t`, however old (the last
  N events stay the last N until new ones come; a session's features stay those of the
  entity's previous session). Before the first one closes: nothing (the inputs are absent).

>>> from features.windows.config import FeatureSet, FeatureSpec, WindowSpec
>>> from features.models.config import FeatureInput
>>> fs = FeatureSet("a1m", "area", "features.a1m", WindowSpec("tumbling", 60_000, 60_000),
...                 (FeatureSpec("rides", "count"), FeatureSpec("mean_price", "mean", "price")))
>>> inputs = FeatureInputs((fs,), (FeatureInput("a1m.rides", "a1m", "rides", True),
...                                FeatureInput("a1m.mean_price", "a1m", "mean_price", True)))
>>> [inputs.on_event(t, {"area": "x", "price": p}) for t, p in ((1_000, 10.0), (59_999, 20.0), (60_000, 1.0))]
[{'a1m.rides': 0}, {'a1m.rides': 0}, {'a1m.rides': 2, 'a1m.mean_price': 15.0}]
>>> inputs.on_event(180_500, {"area": "x", "price": 5.0})  # [120 s, 180 s) had no ride in x
{'a1m.rides': 0}
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from features.windows.config import FeatureSet
from features.models.config import FeatureInput
from features.windows.state import FeatureRow, new_window_state


class _SetInputs:
    """One feature set's open windows and each entity's latest closed row, for the inputs read from it."""

    def __init__(self, feature_set: FeatureSet, inputs: Sequence[FeatureInput],
                 static: Mapping[str, Mapping[str, Any]] | None) -> None:
        self.entity_field = feature_set.entity
        # Only final windows are read: no interim rows to build per event.
        self.state = new_window_state(dataclasses.replace(feature_set, emit="final", update_every_ms=0), static)
        window = feature_set.window
        # Tumbling and hopping windows end on step boundaries: the one at the last boundary counts.
        self.step = window.step_ms if window.type in ("tumbling", "hopping") else 0
        self.length = window.length_ms
        self.names = tuple((i.name, i.feature) for i in inputs)
        self.latest: dict[str, FeatureRow] = {}

    def close(self, time_ms: int) -> None:
        latest = self.latest
        for row in self.state.close_due(time_ms):
            latest[row.entity] = row

    def read(self, entity: str, time_ms: int, out: dict[str, Any]) -> None:
        row = self.latest.get(entity)
        if self.step:
            end = time_ms - time_ms % self.step
            if row is None or row.end_ms != end:
                row = self.state.empty_row(entity, end - self.length, end)
        elif row is None:
            return
        values = row.values
        for name, feature in self.names:
            value = values.get(feature)
            if value is not None:
                out[name] = value


class FeatureInputs:
    """The feature inputs of one model shard: fed every event of the shard in event-time order.

    The whole object is shard state (it pickles into Bytewax recovery snapshots).
    """

    def __init__(self, feature_sets: Sequence[FeatureSet], inputs: Sequence[FeatureInput],
                 statics: Mapping[str, Mapping[str, Mapping[str, Any]]] | None = None) -> None:
        by_set = {fs.name: fs for fs in feature_sets}
        used = list(dict.fromkeys(i.feature_set for i in inputs))
        self.sets = [_SetInputs(by_set[name], [i for i in inputs if i.feature_set == name],
                                (statics or {}).get(name)) for name in used]

    def on_event(self, time_ms: int, fields: Mapping[str, Any]) -> dict[str, Any]:
        """The feature inputs of an event at `time_ms` (null values left out); then the event
        joins the open windows. Events must come in event-time order."""
        out: dict[str, Any] = {}
        for s in self.sets:
            s.close(time_ms)
            entity = str(fields[s.entity_field])
            s.read(entity, time_ms, out)
            s.state.add(entity, time_ms, fields)
        return out
