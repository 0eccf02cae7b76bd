"""One model for one segment on the stream: predict, wait for the label, score, then learn.

`SegmentModel` is fed events and labels in event-time order (the flow orders them), a run of
them at a time (`run`; `on_event` and `on_label` are runs of one):

- `on_event` predicts with the champion (and the challenger, if any) and keeps the
  prediction with the exact input vector, keyed by the join key ("log and wait");
- `on_label` joins the label to the waiting prediction made at most `ttl` before it,
  scores the served prediction (prequential evaluation), feeds the error to ADWIN, then
  teaches both models the stored input vector; a late, duplicate or unknown label is counted;
- time passing closes metrics windows, expires predictions whose label did not come within
  the TTL (and evicts the oldest beyond `max_pending`, counted as expired), and takes
  periodic snapshots of the champion.

A challenger replaces the champion when its mean score over the last `promotion_window`
labelled examples that both predicted beats the champion's by `promotion_margin` and, with a
fixed test set (`promotion.test_set`), it is not worse than the champion on that set by more
than `promotion.test_margin`. A challenger that fails the test set is refused (a
`PromotionRefused`) and tested again after `promotion_window` more labels, so the set is
scored at most once per window of labels.

>>> from features.models.config import LabelSpec, ModelSpec
>>> spec = ModelSpec("m", "hoeffding_tree_classifier", "classification", ("x",), LabelSpec("l", "k", "y"))
>>> seg = SegmentModel(spec, None)
>>> out = seg.on_event("a", 1_000, {"x": 1.0}); out[-1].version, out[-1].value
(1, None)
>>> _ = seg.on_label("a", 2_000, True); seg.labelled, seg.champion.learned
(1, 1)
"""

from __future__ import annotations

import math
import pickle
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

from features.models import deep_pickle
from features.models.columns import EVENT, LABEL
from features.models.config import ModelSpec
from features.models.fixed_test_set import FixedSetScores, FixedTestSet
from features.models.label_clock import LabelClock
from features.models.metrics import PairedScores, WindowScores, score
from features.models.runner import ModelRunner
from features.stream_order import Entry

_INF = 2**63


class Served(NamedTuple):
    """A prediction made for one event (a tuple: one is made per event)."""

    key: str
    time_ms: int
    version: int
    proba: dict[Any, float] | None
    value: Any
    x: dict[str, Any]


# A prediction to render, as `run` makes it (a plain tuple: one per event): join key, event
# time, model version, probabilities, value, input vector, entity, segment.
Prediction = tuple[str, int, int, "dict[Any, float] | None", Any, dict[str, Any], Any, "str | None"]
# A due output of `run`: (how many predictions come before it, segment, output).
Result = tuple[int, "str | None", Any]


@dataclass(frozen=True)
class WindowMetrics:
    """The metrics of one window [start, end) of label time, and what happened to predictions."""

    start_ms: int
    end_ms: int
    version: int
    metrics: dict[str, float | None]
    predictions: int
    labelled: int
    expired: int
    unlabelled: int  # still waiting for a label at the window's end
    prequential: dict[str, float | int | None]
    challenger: dict[str, Any] | None


@dataclass(frozen=True)
class Promotion:
    """The challenger became the champion."""

    time_ms: int
    from_version: int
    to_version: int
    metric: str
    champion_score: float
    challenger_score: float
    window: int
    margin: float
    kind: str
    test_set: FixedSetScores | None = None  # with `promotion.test_set`: both models on it


@dataclass(frozen=True)
class PromotionRefused:
    """The challenger beat the champion on the recent labels but was worse on the fixed test set
    by more than the margin: the champion stays; `labelled` (the segment's labels so far) tells
    refusals apart."""

    time_ms: int
    version: int
    labelled: int
    metric: str
    champion_score: float
    challenger_score: float
    window: int
    margin: float
    kind: str
    test_set: FixedSetScores


@dataclass(frozen=True)
class ErrorDrift:
    """ADWIN found a change in the served predictions' error: old regime vs new."""

    time_ms: int
    version: int
    began: tuple[int, int] | None  # (last label time of the old regime, first of the new)
    before: tuple[int, float, float | None]  # (count, mean error, std)
    after: tuple[int, float, float | None]
    delta: float


@dataclass(frozen=True)
class Snapshot:
    """The champion, pickled, as of `as_of_ms`."""

    as_of_ms: int
    version: int
    kind: str
    learned: int
    model_pickle: bytes
    metrics: dict[str, float | int | None]


@dataclass(frozen=True)
class SnapshotFailed:
    """The champion could not be pickled: no snapshot this time; the flow goes on (counted, logged)."""

    as_of_ms: int
    version: int
    kind: str
    error: str


class SegmentModel:
    """The online model of one (model, segment); its state pickles into Bytewax recovery, except
    the fixed test set (read from its file at every start: `test_set` is set again on resume)."""

    def __init__(self, spec: ModelSpec, segment: str | None, test_set: FixedTestSet | None = None) -> None:
        from river.drift import ADWIN

        self.spec = spec
        self.segment = segment
        self.test_set = test_set
        self.classify = spec.task == "classification"
        self.serials = 1
        self.champion = self._runner(spec.kind, spec.params)
        self.version = 1
        self.challenger: ModelRunner | None = None
        self.challenger_since: int | None = None
        if spec.challenger is not None and spec.challenger.start == "always":
            self._start_challenger(None)
        # key -> (time, x, probabilities, value), and with a challenger (champion serial, challenger
        # serial, challenger output): a tuple per waiting prediction, made in `run`.
        # OrderedDicts: a plain dict emptied from the front makes `next(iter(d))` scan the holes.
        self.pending: OrderedDict[str, tuple[Any, ...]] = OrderedDict()
        # Recently labelled (True) or expired (False) keys, kept one TTL to tell a duplicate or
        # late label from an unknown one.
        self.resolved: OrderedDict[str, tuple[int, bool]] = OrderedDict()
        self.adwin = ADWIN(delta=spec.adwin_delta)
        self.error_n, self.error_sum = 0, 0.0  # ADWIN's window: its own properties cost more than this
        self.label_times = LabelClock()  # where ADWIN's cut falls in time
        self.paired = PairedScores(spec.promotion_window)
        self.retest_at = 0  # after a refusal: the labelled count at which the test set is tried again
        self.window_start: int | None = None
        self.scores = WindowScores()
        self.window_counts = [0, 0, 0]  # predictions, labelled, expired
        self.next_snapshot: int | None = None
        self.snapshot_learned = 0
        self.due_ms = -_INF  # the earliest event time at which `advance` has something to do
        self.last_ms = 0  # the order time of the latest entry run (a bounded run's end snapshots as of it)
        self.labelled = 0
        self.scored = 0  # labelled predictions that predicted something
        self.score_sum = 0.0  # correct predictions, or minus the absolute errors
        self.expired = 0
        self.duplicate_labels = 0
        self.late_labels = 0
        self.unmatched_labels = 0

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["test_set"]  # decoded from the file at start; not copied into every snapshot
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.__dict__.setdefault("retest_at", 0)  # state pickled before the test-set check
        self.test_set = None

    # --- models -------------------------------------------------------------------------------

    def _runner(self, kind: str, params: dict[str, Any]) -> ModelRunner:
        runner = ModelRunner.build(kind, params, self.spec.preprocessing, self.spec.inputs, self.spec.task,
                                   self.serials)
        self.serials += 1
        return runner

    def _start_challenger(self, time_ms: int | None) -> None:
        challenger = self.spec.challenger
        assert challenger is not None
        self.challenger = self._runner(challenger.kind, challenger.params)
        self.challenger_since = time_ms
        self.paired = PairedScores(self.spec.promotion_window)

    def _score(self, output: tuple[Any, Any], y: Any) -> float:
        return score(self.classify, output[1], y)

    # --- the stream ---------------------------------------------------------------------------

    def run(self, entries: Iterable[Entry], predictions: list[Prediction], results: list[Result]) -> int:
        """A run of this segment's released entries, in order (`features.models.columns`: order
        time, rank, join key, arrival number, segment, own time, payload): each event is
        predicted and waits for its label, each label is scored and learned. Appends each
        prediction to `predictions` and each due output to `results`, as (how many predictions
        come before it, segment, output); returns how many labels it saw.

        This loop is the model flow's per-event work around River: per event it makes only the
        waiting entry and the prediction row, and reads what every entry needs once per run.
        """
        segment, pending = self.segment, self.pending
        expiry, max_pending = self.spec.labels.ttl_ms + 1, self.spec.max_pending
        labels = 0
        t = self.last_ms
        for t, rank, key, _arrival, _segment, own, payload in entries:
            if t >= self.due_ms:
                due = self.advance(t)
                if due:
                    at = len(predictions) + (rank == EVENT)  # an event's outputs follow its prediction
                    results += [(at, segment, r) for r in due]
            if rank != EVENT:
                labels += 1
                caused = self._learn(key, t, payload)
                if caused:
                    at = len(predictions)
                    results += [(at, segment, r) for r in caused]
                continue
            x = payload[1]
            if t + expiry < self.due_ms:  # its expiry, at the latest
                self.due_ms = t + expiry
            champion, challenger = self.champion, self.challenger
            proba, value = champion.predict(x)
            if key in pending:  # a repeated event: the newer prediction waits, in time order
                del pending[key]
            pending[key] = ((t, x, proba, value) if challenger is None else
                            (t, x, proba, value, champion.serial, challenger.serial, challenger.predict(x)))
            if len(pending) > max_pending:
                self._expire_oldest(t)
            if self.window_start is None:
                self._open_window(t)
            self.window_counts[0] += 1
            predictions.append((key, own, self.version, proba, value, x, payload[0], segment))
        self.last_ms = t
        return labels

    def on_event(self, key: str, time_ms: int, x: dict[str, Any]) -> list[Any]:
        """Predict for one event (`run` of one entry); returns due outputs, the `Served` prediction last."""
        predictions: list[Prediction] = []
        results: list[Result] = []
        self.run([(time_ms, EVENT, key, 0, self.segment, time_ms, (None, x, None))], predictions, results)
        key, own, version, proba, value, x, _entity, _segment = predictions[0]
        return [r for _at, _segment, r in results] + [Served(key, own, version, proba, value, x)]

    def on_label(self, key: str, time_ms: int, y: Any) -> list[Any]:
        """Join a label to its waiting prediction, score it, then learn (`run` of one entry);
        returns due outputs."""
        results: list[Result] = []
        self.run([(time_ms, LABEL, key, 0, self.segment, time_ms, y)], [], results)
        return [r for _at, _segment, r in results]

    def _learn(self, key: str, time_ms: int, y: Any) -> list[Any]:
        """One label: joined, scored and learned, or counted; returns what it caused (error
        drift, promotion)."""
        out: list[Any] = []
        entry = self.pending.pop(key, None)
        if entry is None:
            self._count_unjoined(key, time_ms)
            return out
        self.resolved[key] = (time_ms, True)
        x, proba, value = entry[1], entry[2], entry[3]
        classify = self.classify
        if not classify:
            y = float(y)
        if self.window_start is None:
            self._open_window(time_ms)
        self.window_counts[1] += 1
        self.labelled += 1
        served_score = score(classify, value, y)
        if value is not None:  # as River's progressive validation: no prediction, no score
            self.scored += 1
            self.score_sum += served_score
            if classify:
                self.scores.add_classification(y, value, proba or {})
            else:
                self.scores.add_regression(y, value)
            self._watch_error(time_ms, 1.0 - served_score if classify else -served_score, out)
        champion, challenger = self.champion, self.challenger
        if challenger is not None and len(entry) > 4 and entry[5] == challenger.serial \
                and entry[4] == champion.serial:  # both predicted it, and are still the same models
            self.paired.add(served_score, self._score(entry[6], y))
        champion.learn(x, y)
        if challenger is not None:
            challenger.learn(x, y)
            self._maybe_promote(time_ms, out)
        return out

    def _count_unjoined(self, key: str, time_ms: int) -> None:
        """A label without a waiting prediction: unmatched, a duplicate, or late."""
        resolved = self.resolved.get(key)
        if resolved is None or resolved[0] + self.spec.labels.ttl_ms < time_ms:
            self.unmatched_labels += 1
        elif resolved[1]:
            self.duplicate_labels += 1
        else:
            self.late_labels += 1

    def _expire_oldest(self, time_ms: int) -> None:
        """Beyond `max_pending`: the oldest waiting prediction expires."""
        oldest = next(iter(self.pending))
        del self.pending[oldest]
        self._resolve(oldest, time_ms, False)
        self._count_expired()

    def _watch_error(self, time_ms: int, error: float, out: list[Any]) -> None:
        adwin = self.adwin
        adwin.update(error)
        self.label_times.add(time_ms)
        self.error_n += 1
        self.error_sum += error
        if not adwin.drift_detected:
            return
        kept, kept_mean = int(adwin.width), float(adwin.estimation)
        dropped = self.error_n - kept
        dropped_mean = (self.error_sum - kept_mean * kept) / dropped if dropped > 0 else kept_mean
        self.error_n, self.error_sum = kept, kept_mean * kept
        began = self.label_times.began(kept)
        self.label_times.keep_last(kept)

        def std(m: float) -> float | None:
            return math.sqrt(max(m * (1 - m), 0.0)) if self.classify else None

        out.append(ErrorDrift(time_ms, self.version, began, (dropped, dropped_mean, std(dropped_mean)),
                              (kept, kept_mean, std(kept_mean)), self.spec.adwin_delta))
        if self.spec.challenger is not None and self.challenger is None:
            self._start_challenger(time_ms)

    def _maybe_promote(self, time_ms: int, out: list[Any]) -> None:
        paired = self.paired
        if not paired.full or self.labelled < self.retest_at:
            return
        champion_mean, challenger_mean = paired.means()
        if challenger_mean - champion_mean <= self.spec.promotion_margin:
            return
        assert self.challenger is not None and self.spec.challenger is not None
        spec, metric, sign = self.spec, "accuracy" if self.classify else "mae", 1.0 if self.classify else -1.0
        tested = None
        if self.test_set is not None:
            tested = self.test_set.compare(self.champion, self.challenger, self.segment)
            if not tested.passed:
                out.append(PromotionRefused(time_ms, self.version, self.labelled, metric, sign * champion_mean,
                                            sign * challenger_mean, spec.promotion_window, spec.promotion_margin,
                                            self.challenger.kind, tested))
                self.retest_at = self.labelled + spec.promotion_window
                return
        out.append(Promotion(time_ms, self.version, self.version + 1, metric, sign * champion_mean,
                             sign * challenger_mean, spec.promotion_window, spec.promotion_margin,
                             self.challenger.kind, tested))
        self.champion, self.challenger, self.challenger_since = self.challenger, None, None
        self.version += 1
        self.paired = PairedScores(self.spec.promotion_window)
        self.adwin = type(self.adwin)(delta=self.spec.adwin_delta)  # the new champion's errors from here
        self.error_n, self.error_sum = 0, 0.0
        self.label_times.reset()
        if self.spec.challenger.start == "always":
            self._start_challenger(time_ms)

    # --- time ---------------------------------------------------------------------------------

    def _due(self, time_ms: int) -> None:
        """Something will be due at `time_ms` (`advance` recomputes the exact time)."""
        if time_ms < self.due_ms:
            self.due_ms = time_ms

    def _resolve(self, key: str, time_ms: int, labelled: bool) -> None:
        self.resolved[key] = (time_ms, labelled)

    def _compute_due(self) -> int:
        due = _INF
        if self.pending:
            due = next(iter(self.pending.values()))[0] + self.spec.labels.ttl_ms + 1
        if self.window_start is not None:
            due = min(due, self.window_start + self.spec.metrics_window_ms)
        if self.next_snapshot is not None:
            due = min(due, self.next_snapshot)
        return due

    def advance(self, now_ms: int) -> list[Any]:
        """Let event time reach `now_ms`: close windows, expire predictions, take snapshots.

        Everything is done in time order (a window closes before the expiries that follow its
        end), so the results do not depend on how often this is called.
        """
        out: list[Any] = []
        ttl = self.spec.labels.ttl_ms
        if self.next_snapshot is None:
            self.next_snapshot = (now_ms // self.spec.snapshot_every_ms + 1) * self.spec.snapshot_every_ms
        while True:
            close = self.window_start + self.spec.metrics_window_ms if self.window_start is not None else _INF
            snap = self.next_snapshot
            expire = next(iter(self.pending.values()))[0] + ttl + 1 if self.pending else _INF
            first = min(close, snap, expire)
            if first > now_ms:
                break
            if close == first:
                out.append(self._close_window())
            elif snap == first:
                snapshot = self._snapshot(snap)
                if snapshot is not None:
                    out.append(snapshot)
                # Nothing is learned before the next window close, expiry or `now`: skip the
                # boundaries until then (they would find nothing new).
                size = self.spec.snapshot_every_ms
                self.next_snapshot = max(snap + size, min(close, expire, now_ms) // size * size)
            else:
                key = next(iter(self.pending))
                del self.pending[key]
                self._resolve(key, expire, False)
                if self.window_start is None:
                    self._open_window(expire)
                self._count_expired()
        resolved = self.resolved  # forgotten when convenient: a lookup checks the age anyway
        while resolved:
            key = next(iter(resolved))
            if resolved[key][0] + ttl >= now_ms:
                break
            del resolved[key]
        self.due_ms = self._compute_due()
        return out

    def _count_expired(self) -> None:
        self.expired += 1
        self.window_counts[2] += 1

    def _open_window(self, time_ms: int) -> None:
        size = self.spec.metrics_window_ms
        self.window_start = time_ms // size * size
        self._due(self.window_start + size)

    def _close_window(self) -> WindowMetrics:
        assert self.window_start is not None
        start, end = self.window_start, self.window_start + self.spec.metrics_window_ms
        metrics = self.scores.classification() if self.classify else self.scores.regression()
        predictions, labelled, expired = self.window_counts
        challenger = None
        if self.challenger is not None:
            champion_mean, challenger_mean = self.paired.means()
            challenger = {"kind": self.challenger.kind, "since_ms": self.challenger_since,
                          "compared": len(self.paired.champion), "champion_score": champion_mean,
                          "challenger_score": challenger_mean}
        result = WindowMetrics(start, end, self.version, metrics, predictions, labelled, expired,
                               len(self.pending), self.prequential(), challenger)
        self.window_start = None
        self.scores = WindowScores()
        self.window_counts = [0, 0, 0]
        return result

    def prequential(self) -> dict[str, float | int | None]:
        """Totals since the start: labelled, expired, and accuracy (or MAE) of the served predictions
        that predicted something (a model that has learned nothing predicts None)."""
        mean = self.score_sum / self.scored if self.scored else None
        name = "accuracy" if self.classify else "mae"
        return {"labelled": self.labelled, "expired": self.expired,
                name: (mean if self.classify or mean is None else -mean)}

    def _snapshot(self, as_of_ms: int) -> Snapshot | SnapshotFailed | None:
        if self.champion.learned == self.snapshot_learned:
            return None  # nothing new to save
        self.snapshot_learned = self.champion.learned
        try:
            return self.snapshot(as_of_ms)
        except (pickle.PicklingError, TypeError, AttributeError, RecursionError, MemoryError) as exc:
            return SnapshotFailed(as_of_ms, self.version, self.champion.kind, f"{type(exc).__name__}: {exc}")

    def snapshot(self, as_of_ms: int) -> Snapshot:
        """The champion, pickled (also when deeper than the recursion limit), with its version and metrics."""
        return Snapshot(as_of_ms, self.version, self.champion.kind, self.champion.learned,
                        deep_pickle.dumps(self.champion.model), self.prequential())

    def flush(self, as_of_ms: int) -> list[Any]:
        """The inputs ended: close the open window and snapshot the champion as of `as_of_ms`."""
        out: list[Any] = []
        if self.window_start is not None:
            out.append(self._close_window())
        snapshot = self._snapshot(as_of_ms)
        if snapshot is not None:
            out.append(snapshot)
        return out
