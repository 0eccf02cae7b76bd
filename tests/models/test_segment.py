"""The online model of one segment: exactness against River, label joins, metrics, promotion, snapshots."""

from __future__ import annotations

import math
import pickle
import random
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from river import datasets, evaluate, linear_model, metrics, preprocessing, tree

from features.models.config import ChallengerSpec, LabelSpec, ModelSpec, Preprocessing
from features.models.metrics import WindowScores, roc_auc
from features.models.segment import ErrorDrift, Promotion, SegmentModel, Served, Snapshot, WindowMetrics

PHISHING_INPUTS = tuple(next(iter(datasets.Phishing()))[0])


def spec(**changes: object) -> ModelSpec:
    base = ModelSpec("m", "hoeffding_tree_classifier", "classification", ("x",),
                     LabelSpec("labels", "k", "y", ttl_ms=10_000), metrics_window_ms=1_000,
                     snapshot_every_ms=5_000)
    return replace(base, **changes)


def immediate_labels(seg: SegmentModel) -> list[object]:
    """Phishing in order, each label right after its prediction (at the same event time)."""
    out: list[object] = []
    for i, (x, y) in enumerate(datasets.Phishing()):
        out += seg.on_event(str(i), i, x)
        out += seg.on_label(str(i), i, y)
    return out


@pytest.mark.parametrize("kind, params, pre, river_model", [
    ("hoeffding_tree_classifier", {}, Preprocessing(), lambda: tree.HoeffdingTreeClassifier()),
    ("hoeffding_adaptive_tree_classifier", {"grace_period": 50}, Preprocessing(),
     lambda: tree.HoeffdingAdaptiveTreeClassifier(grace_period=50, seed=0)),
    ("river.linear_model.LogisticRegression", {}, Preprocessing(scale=PHISHING_INPUTS),
     lambda: preprocessing.StandardScaler() | linear_model.LogisticRegression()),
])
def test_prequential_accuracy_equals_progressive_val_score(kind, params, pre, river_model) -> None:
    seg = SegmentModel(spec(kind=kind, params=params, preprocessing=pre, inputs=PHISHING_INPUTS), None)
    immediate_labels(seg)
    expected = evaluate.progressive_val_score(datasets.Phishing(), river_model(), metrics.Accuracy()).get()
    assert seg.labelled == 1250 and seg.expired == 0
    assert abs(seg.prequential()["accuracy"] - expected) <= 1e-9
    assert 0.8 < expected < 1.0  # the models learn: the comparison is not between two trivial values


def test_labels_in_order_out_of_order_late_and_duplicate() -> None:
    seg = SegmentModel(spec(), None)
    rng = random.Random(1)
    xs = {str(i): {"x": rng.uniform(-1, 1)} for i in range(40)}
    for i in range(40):
        seg.on_event(str(i), i * 100, xs[str(i)])
    # In order for 0..9, out of order for 10..29 (all within the 10 s TTL of their events).
    for i in range(10):
        seg.on_label(str(i), 4_000 + i, xs[str(i)]["x"] > 0)
    shuffled = [str(i) for i in range(10, 30)]
    rng.shuffle(shuffled)
    for n, key in enumerate(shuffled):
        seg.on_label(key, 5_000 + n, xs[key]["x"] > 0)
    assert seg.labelled == 30 and seg.champion.learned == 30
    seg.on_label("3", 6_000, True)  # a duplicate: counted, not learned twice
    assert seg.duplicate_labels == 1 and seg.champion.learned == 30
    seg.on_label("nope", 6_001, True)
    assert seg.unmatched_labels == 1
    # 30..39 were predicted at 3.0-3.9 s: their labels at 13.95 s are beyond the TTL.
    seg.on_label("35", 13_950, True)
    assert seg.expired == 10 and seg.late_labels == 1 and seg.labelled == 30 and not seg.pending


def test_the_learned_vector_is_the_served_one_in_any_label_order() -> None:
    """Log and wait: a model taught from stored vectors in label order equals one taught directly."""
    seg = SegmentModel(spec(), None)
    reference = tree.HoeffdingTreeClassifier()
    rng = np.random.default_rng(3)
    events = [(str(i), {"x": float(v)}) for i, v in enumerate(rng.normal(size=600))]
    for i, (key, x) in enumerate(events):
        seg.on_event(key, i, x)
    order = rng.permutation(len(events))
    for n, j in enumerate(order):
        key, x = events[j]
        seg.on_label(key, 700 + n, x["x"] > 0.3)
        reference.learn_one(x, x["x"] > 0.3)
    probe = [{"x": float(v)} for v in np.linspace(-2, 2, 41)]
    assert [seg.champion.model.predict_proba_one(x) for x in probe] == [reference.predict_proba_one(x) for x in probe]


def test_window_metrics_match_a_direct_computation() -> None:
    seg = SegmentModel(spec(metrics_window_ms=10_000, labels=LabelSpec("labels", "k", "y", ttl_ms=3_000)), None)
    rng = random.Random(5)
    served: dict[str, Served] = {}
    windows: list[WindowMetrics] = []
    labels: dict[str, bool] = {}
    for i in range(3000):
        t = i * 10
        for o in seg.on_event(str(i), t, {"x": rng.gauss(0, 1)}):
            if isinstance(o, Served):
                served[o.key] = o
            elif isinstance(o, WindowMetrics):
                windows.append(o)
        if i >= 5 and i % 7:  # one in seven never labelled
            key = str(i - 5)
            labels[key] = served[key].x["x"] + rng.gauss(0, 0.5) > 0
            windows += [o for o in seg.on_label(key, t + 1, labels[key]) if isinstance(o, WindowMetrics)]
    windows += [o for o in seg.flush(30_000) if isinstance(o, WindowMetrics)]
    assert [w.start_ms for w in windows] == [0, 10_000, 20_000]
    for w in windows:
        labelled = [k for k in labels if w.start_ms <= int(k) * 10 + 51 < w.end_ms]
        assert w.labelled == len(labelled)
        keys = [k for k in labelled if served[k].value is not None]  # an untrained model is not scored
        y = np.array([labels[k] for k in keys])
        p_true = np.array([served[k].proba.get(True, 0.0) if served[k].proba else 0.0 for k in keys])
        pred = np.array([served[k].value for k in keys], dtype=object)
        p_y = np.clip(np.where(y, p_true, [(served[k].proba or {}).get(False, 0.0) for k in keys]), 1e-15, 1)
        tp = np.sum((pred == True) & y)  # noqa: E712 (object array of bools and None)
        fp = np.sum((pred == True) & ~y)  # noqa: E712
        fn = np.sum((pred != True) & y)  # noqa: E712
        assert w.metrics["accuracy"] == pytest.approx(np.mean(pred == y), abs=1e-12)
        assert w.metrics["log_loss"] == pytest.approx(-np.log(p_y).mean(), rel=1e-12)
        assert w.metrics["f1"] == pytest.approx(2 * tp / (2 * tp + fp + fn), abs=1e-12)
        pos, neg = p_true[y], p_true[~y]
        pairs = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
        assert w.metrics["roc_auc"] == pytest.approx(pairs / (len(pos) * len(neg)), abs=1e-12)
    assert sum(w.predictions for w in windows) == 3000
    assert sum(w.labelled for w in windows) == len(labels)
    # Predictions never labelled expire one TTL after their event; the last few are still waiting.
    assert sum(w.expired for w in windows) + windows[-1].unlabelled == 3000 - len(labels)
    assert seg.expired == sum(w.expired for w in windows)


def test_window_scores_agree_with_river_metrics() -> None:
    rng = random.Random(2)
    scores = WindowScores()
    acc, f1, logloss = metrics.Accuracy(), metrics.F1(), metrics.LogLoss()
    ys, ps = [], []
    for _ in range(500):
        y = rng.random() < 0.3
        p = round(0.01 + 0.98 * rng.random(), 2)  # rounded: ties in ROC AUC; never 0 or 1 (clipping)
        proba = {True: p, False: 1 - p}
        pred = p > 0.5
        scores.add_classification(y, pred, proba)
        acc.update(y, pred)
        f1.update(y, pred)
        logloss.update(y, proba)
        ys.append(y)
        ps.append(p)
    got = scores.classification()
    assert got["accuracy"] == pytest.approx(acc.get(), abs=1e-12)
    assert got["f1"] == pytest.approx(f1.get(), abs=1e-12)
    assert got["log_loss"] == pytest.approx(logloss.get(), rel=1e-9)
    pos = [p for y, p in zip(ys, ps) if y]
    neg = [p for y, p in zip(ys, ps) if not y]
    brute = sum((a > b) + 0.5 * (a == b) for a in pos for b in neg) / (len(pos) * len(neg))
    assert got["roc_auc"] == pytest.approx(brute, abs=1e-12) and roc_auc([True], [0.5]) is None


def flipping_stream(seg: SegmentModel, n: int, flip_at: int, seed: int = 0) -> list[object]:
    """y = x > 0 before `flip_at`, x <= 0 after; each label 1 ms after its event."""
    rng = random.Random(seed)
    out: list[object] = []
    for i in range(n):
        x = rng.uniform(-1, 1)
        out += seg.on_event(str(i), i * 10, {"x": x})
        out += seg.on_label(str(i), i * 10 + 1, (x > 0) if i < flip_at else (x <= 0))
    return out


def test_promotion_of_a_better_challenger() -> None:
    challenger = ChallengerSpec("hoeffding_tree_classifier", {"grace_period": 50}, "always")
    seg = SegmentModel(spec(kind="river.dummy.NoChangeClassifier", params={}, challenger=challenger,
                            promotion_window=200, promotion_margin=0.1), None)
    out = flipping_stream(seg, 1500, flip_at=10_000)
    promotions = [o for o in out if isinstance(o, Promotion)]
    assert len(promotions) == 1
    p = promotions[0]
    assert (p.from_version, p.to_version, p.metric) == (1, 2, "accuracy")
    assert p.challenger_score - p.champion_score > 0.1 and p.champion_score < 0.7
    assert isinstance(seg.champion.model, tree.HoeffdingTreeClassifier) and seg.version == 2
    assert seg.challenger is not None  # start = "always": a fresh challenger follows
    served = [o for o in out if isinstance(o, Served)]
    assert {s.version for s in served if s.time_ms > p.time_ms} == {2}


def test_no_promotion_without_the_margin() -> None:
    challenger = ChallengerSpec("hoeffding_tree_classifier", {}, "always")
    seg = SegmentModel(spec(challenger=challenger, promotion_window=200, promotion_margin=0.5), None)
    out = flipping_stream(seg, 1500, flip_at=10_000)
    assert not [o for o in out if isinstance(o, Promotion)] and seg.version == 1


def test_error_drift_starts_a_challenger_that_is_promoted() -> None:
    challenger = ChallengerSpec("hoeffding_tree_classifier", {"grace_period": 50}, "on_drift")
    seg = SegmentModel(spec(params={"grace_period": 50}, challenger=challenger, promotion_window=300,
                            promotion_margin=0.05), None)
    out = flipping_stream(seg, 6000, flip_at=2000)
    drifts = [o for o in out if isinstance(o, ErrorDrift)]
    assert drifts and drifts[0].time_ms > 20_000  # not before the flip at 20 s
    first = drifts[0]
    assert first.after[1] > first.before[1] + 0.1  # the error rate jumped
    assert first.began is not None and 19_000 <= first.began[1] <= first.time_ms
    promotions = [o for o in out if isinstance(o, Promotion)]
    assert promotions and promotions[0].time_ms > first.time_ms and seg.version >= 2
    late = [o for o in out if isinstance(o, Served) and o.time_ms > 55_000]
    assert np.mean([s.value == (s.x["x"] <= 0) for s in late]) > 0.9


def test_snapshot_round_trip_predicts_like_the_live_model() -> None:
    seg = SegmentModel(spec(inputs=PHISHING_INPUTS), None)
    out = immediate_labels(seg)
    snapshots = [o for o in out if isinstance(o, Snapshot)]
    assert snapshots == []  # Phishing spans 1.25 s of event time, one 5 s snapshot interval
    final = seg.flush(2_000)
    snapshot = [o for o in final if isinstance(o, Snapshot)][0]
    assert snapshot.learned == 1250 and snapshot.version == 1
    loaded = pickle.loads(snapshot.model_pickle)
    for x, _ in datasets.Phishing():
        assert loaded.predict_proba_one(x) == seg.champion.model.predict_proba_one(x)
    assert seg.flush(3_000) == []  # nothing learned since: no second snapshot


def test_periodic_snapshots_and_bounded_pending() -> None:
    seg = SegmentModel(spec(max_pending=5), None)
    out = []
    for i in range(100):
        out += seg.on_event(str(i), i * 200, {"x": float(i % 7)})
        if i >= 2:
            out += seg.on_label(str(i - 2), i * 200 + 1, i % 2 == 0)
    assert len(seg.pending) <= 5 and seg.expired == 0
    times = [o.as_of_ms for o in out if isinstance(o, Snapshot)]
    assert times == [5_000, 10_000, 15_000]
    for i in range(100, 120):  # no labels: the oldest waiting predictions are evicted
        seg.on_event(str(i), i * 200, {"x": 1.0})
    assert len(seg.pending) == 5 and seg.expired == 17


def test_regression_scores_mae() -> None:
    seg = SegmentModel(spec(kind="hoeffding_tree_regressor", task="regression"), None)
    rng = random.Random(0)
    out, errors = [], []
    for i in range(300):
        x = rng.uniform(0, 10)
        served = [o for o in seg.on_event(str(i), i, {"x": x}) if isinstance(o, Served)][0]
        errors.append(abs(served.value - 2 * x))
        out += seg.on_label(str(i), i, 2 * x)
    out += seg.flush(300)
    assert served.proba is None and seg.prequential()["mae"] == pytest.approx(np.mean(errors), rel=1e-12)
    window = [o for o in out if isinstance(o, WindowMetrics)][0]
    assert window.metrics["mae"] == pytest.approx(np.mean(errors), rel=1e-12)
    assert window.metrics["rmse"] == pytest.approx(math.sqrt(np.mean(np.square(errors))), rel=1e-12)


@given(st.lists(st.tuples(st.integers(0, 400), st.booleans(), st.booleans()), min_size=1, max_size=60),
       st.lists(st.integers(0, 60_000), max_size=10))
def test_outputs_do_not_depend_on_how_often_time_advances(steps, extra_times) -> None:
    """`advance` at arbitrary extra moments (as the flow's watermark does) changes nothing."""

    def run(extra: list[int]) -> list[object]:
        seg = SegmentModel(spec(labels=LabelSpec("labels", "k", "y", ttl_ms=2_000), metrics_window_ms=1_500,
                                snapshot_every_ms=2_500, max_pending=20), None)
        out: list[object] = []
        t = 0
        marks = sorted(extra)
        for n, (gap, labelled, y) in enumerate(steps):
            t += gap * 10
            while marks and marks[0] <= t:
                out += seg.advance(marks.pop(0))
            out += seg.on_event(str(n), t, {"x": float(gap % 5)})
            if labelled:
                out += seg.on_label(str(max(0, n - 2)), t, y)
        out += seg.flush(t + 1)
        return [o if not isinstance(o, Snapshot) else (o.as_of_ms, o.learned) for o in out]

    assert run([]) == run(extra_times)


def test_error_drift_window_runs_from_the_new_regime_to_the_detection() -> None:
    """A slow change that ADWIN finds with thousands of labels in its new regime: the event still
    says when the new regime began (it said began=None, a 1 ms window, past 4096 labels)."""
    from features.models.messages import error_drift_event

    seg = SegmentModel(spec(kind="river.linear_model.LogisticRegression"), None)
    rng = random.Random(3)
    out: list[object] = []
    for i in range(40_000):  # one label a second; label noise 5% -> 9% from label 20,000
        x = rng.uniform(-1, 1)
        y = (x > 0) != (rng.random() < (0.05 if i < 20_000 else 0.09))
        new = seg.on_event(str(i), i * 1000, {"x": x}) + seg.on_label(str(i), i * 1000, y)
        out += new
        if any(isinstance(o, ErrorDrift) and o.time_ms >= 20_000_000 for o in new):  # this step's only
            break
    drifts = [o for o in out if isinstance(o, ErrorDrift) and o.time_ms >= 20_000_000]  # not the learning
    assert drifts and drifts[0].after[0] > 4096  # the case that lost its start
    d = drifts[0]
    first_new = d.time_ms // 1000 + 1 - d.after[0]  # label number of the new regime's first label
    assert d.began is not None and d.began[0] < d.began[1]
    assert abs(d.began[1] // 1000 - first_new) <= 4  # within the sampling stride of the label clock
    event = error_drift_event("m", None, "classification", d, d.time_ms)
    window = event["window"]
    assert event["began"] is not None and window["start_ms"] == d.began[1] and window["end_ms"] == d.time_ms
    assert event["scale_ms"] == d.time_ms - d.began[1] > 1000 * 4000


def test_a_deep_hoeffding_tree_regressor_snapshots_recovers_and_scores_like_river() -> None:
    """River's TrumpApproval, one event a second, into a Hoeffding tree regressor: its numeric
    observers grow into long chains on the ever-increasing `ordinal_date`, deeper than pickle's
    recursion limit. Snapshots, the recovery pickle and River's MAE all hold."""
    inputs = tuple(next(iter(datasets.TrumpApproval()))[0])
    seg = SegmentModel(spec(kind="hoeffding_tree_regressor", task="regression", params={"grace_period": 50},
                            inputs=inputs, snapshot_every_ms=100_000), None)
    out: list[object] = []
    for i, (x, y) in enumerate(datasets.TrumpApproval()):
        out += seg.on_event(str(i), i * 1000, x)
        out += seg.on_label(str(i), i * 1000, y)
        if i == 500:  # the recovery path: the whole segment pickles (Bytewax snapshots) and resumes
            seg = pickle.loads(pickle.dumps(seg))
    out += seg.flush(10**9)
    expected = evaluate.progressive_val_score(datasets.TrumpApproval(),
                                              tree.HoeffdingTreeRegressor(grace_period=50), metrics.MAE()).get()
    assert seg.prequential()["mae"] == pytest.approx(expected, rel=1e-9)
    snapshots = [o for o in out if isinstance(o, Snapshot)]
    assert len(snapshots) >= 5
    model = pickle.loads(snapshots[-1].model_pickle)  # what `driftline model export` gives a service
    x0 = next(iter(datasets.TrumpApproval()))[0]
    assert model.predict_one(x0) == seg.champion.model.predict_one(x0)


def test_a_model_that_cannot_be_pickled_gives_a_failed_snapshot_and_goes_on() -> None:
    from features.models.segment import SnapshotFailed

    seg = SegmentModel(spec(snapshot_every_ms=1_000), None)
    seg.champion.model.hook = lambda: None  # a lambda does not pickle
    out: list[object] = []
    for i in range(50):
        out += seg.on_event(str(i), i * 100, {"x": float(i % 7)})
        out += seg.on_label(str(i), i * 100, i % 2 == 0)
    failed = [o for o in out if isinstance(o, SnapshotFailed)]
    assert failed and "lambda" in failed[0].error and seg.labelled == 50


def _stream(draws: list[tuple[int, int, bool, float]]) -> list[tuple]:
    """Released entries of one segment (`features.models.columns`) from (time step, key, is a
    label, value) draws: times only grow, events before labels at equal times."""
    entries, t = [], 0
    for n, (step, key, is_label, value) in enumerate(draws):
        t += step
        payload = value > 0 if is_label else ("area", {"x": value}, None)
        entries.append((t, int(is_label), str(key), n, None, t, payload))
    return sorted(entries)


def _outcome(seg: SegmentModel, predictions: list[tuple], results: list[tuple]) -> tuple:
    """What a run produced and left, snapshots' pickles aside (River's bytes may differ)."""
    shown = [(at, r.as_of_ms, r.learned) if isinstance(r, Snapshot) else (at, r) for at, _segment, r in results]
    return (predictions, shown, seg.labelled, seg.scored, seg.score_sum, seg.expired, seg.duplicate_labels,
            seg.late_labels, seg.unmatched_labels, list(seg.pending), seg.last_ms, seg.champion.learned)


@given(st.lists(st.tuples(st.integers(0, 900), st.integers(0, 12), st.booleans(), st.floats(-1, 1)), max_size=120),
       st.lists(st.integers(0, 120), max_size=6))
def test_a_run_of_entries_is_the_same_run_in_pieces(draws: list[tuple[int, int, bool, float]],
                                                     cuts: list[int]) -> None:
    """`SegmentModel.run` over a stream, or over the same stream cut into runs (as the flow's
    batches cut it): the same predictions, outputs at the same places, the same state."""
    entries = _stream(draws)
    whole = SegmentModel(spec(max_pending=8), None)
    predictions: list[tuple] = []
    results: list[tuple] = []
    whole.run(entries, predictions, results)
    pieces = SegmentModel(spec(max_pending=8), None)
    piece_predictions: list[tuple] = []
    piece_results: list[tuple] = []
    bounds = sorted({0, len(entries), *(c for c in cuts if c <= len(entries))})
    for start, end in zip(bounds, bounds[1:]):
        pieces.run(entries[start:end], piece_predictions, piece_results)
    assert _outcome(whole, predictions, results) == _outcome(pieces, piece_predictions, piece_results)
