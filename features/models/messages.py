"""Messages of the model flow: predictions, window metrics, promotions (and refusals), snapshots, error drift.

Each has a `schema` and a deterministic `id` (see `features.messages`); JSON Schemas are in
`deploy/schemas/`. Class names become JSON object keys: booleans as "true"/"false".

>>> [msg] = prediction_messages("cancel", [("r1", 0, 1, {True: 0.25, False: 0.75}, False, {"price": 9.5},
...                                           "area-1", None)], iso_utc(5))
>>> import orjson; msg[:64], orjson.loads(msg)["probabilities"]
(b'{"schema":"driftline.prediction/1","id":"cancel/r1","model":"can', {'true': 0.25, 'false': 0.75})
"""

from __future__ import annotations

import base64
import functools
from typing import Any

from features.monitors.events import DriftEvent, window_dict
from features.messages import encode, iso_utc
from features.models.fixed_test_set import FixedSetScores
from features.models.segment import ErrorDrift, Prediction, Promotion, PromotionRefused, Snapshot, WindowMetrics

PREDICTION_SCHEMA = "driftline.prediction/1"
METRICS_SCHEMA = "driftline.model_metrics/1"
PROMOTION_SCHEMA = "driftline.model_promotion/1"
PROMOTION_REFUSED_SCHEMA = "driftline.model_promotion_refused/1"
SNAPSHOT_SCHEMA = "driftline.model_snapshot/1"


def class_name(value: Any) -> str:
    """A class label as a JSON object key.

    >>> class_name(True), class_name("cash"), class_name(3)
    ('true', 'cash', '3')
    """
    if type(value) is bool:
        return "true" if value else "false"
    return str(value)


def segment_id(model: str, segment: str | None) -> str:
    """`model` or `model@segment`: the model part of ids and drift-event columns.

    >>> segment_id("cancel", None), segment_id("cancel", "area-01")
    ('cancel', 'cancel@area-01')
    """
    return model if segment is None else f"{model}@{segment}"


_MILLIS = tuple(f"{ms:03d}Z" for ms in range(1000))


@functools.lru_cache(maxsize=4096)
def _second_iso(second: int) -> str:
    """`iso_utc` of a whole second, without its milliseconds: '2026-01-01T00:00:00.'."""
    return iso_utc(second * 1000)[:-4]


def event_time_iso(ms: int) -> str:
    """`iso_utc` for times that rarely repeat (one per event): cached per second, not per ms.

    >>> event_time_iso(1767225600123) == iso_utc(1767225600123), event_time_iso(1767225600007)
    (True, '2026-01-01T00:00:00.007Z')
    """
    return _second_iso(ms // 1000) + _MILLIS[ms % 1000]


def prediction_messages(model: str, predictions: list[Prediction], emitted_at: str) -> list[bytes]:
    """Served predictions (`SegmentModel.run`'s rows), each with the exact input vector the model
    saw, as encoded messages; `emitted_at` is the emission time as `iso_utc` writes it (the same
    for a batch of predictions: made once). One comprehension for the batch: per prediction, a
    dict for orjson and no object of ours."""
    prefix = model + "/"
    return [encode({
        "schema": PREDICTION_SCHEMA,
        "id": prefix + key,
        "model": model,
        "segment": segment,
        "version": version,
        "key": key,
        "entity": entity,
        "event_time": event_time_iso(ms),
        "event_time_ms": ms,
        "prediction": value,
        "probabilities": None if proba is None else {class_name(c): p for c, p in proba.items()},
        "inputs": x,
        "emitted_at": emitted_at,
    }) for key, ms, version, proba, value, x, entity, segment in predictions]


def metrics_message(model: str, segment: str | None, task: str, w: WindowMetrics,
                    emitted_at_ms: int) -> dict[str, Any]:
    """The prequential metrics of one window of label time."""
    return {
        "schema": METRICS_SCHEMA,
        "id": f"{segment_id(model, segment)}/{w.end_ms}",
        "model": model,
        "segment": segment,
        "version": w.version,
        "task": task,
        "window": window_dict(w.start_ms, w.end_ms),
        "metrics": w.metrics,
        "counts": {"predictions": w.predictions, "labelled": w.labelled, "expired": w.expired,
                   "unlabelled": w.unlabelled},
        "prequential": w.prequential,
        "challenger": w.challenger,
        "emitted_at": iso_utc(emitted_at_ms),
    }


def fixed_set_dict(t: FixedSetScores) -> dict[str, Any]:
    """Both models on the fixed test set (scores null when the segment has no example in it).

    >>> fixed_set_dict(FixedSetScores("test.jsonl", 200, 0.9, 0.895, 0.01, True))
    {'path': 'test.jsonl', 'examples': 200, 'champion': 0.9, 'challenger': 0.895, 'margin': 0.01, 'passed': True}
    """
    return {"path": t.path, "examples": t.examples, "champion": t.champion, "challenger": t.challenger,
            "margin": t.margin, "passed": t.passed}


def promotion_message(model: str, segment: str | None, p: Promotion, emitted_at_ms: int) -> dict[str, Any]:
    """A challenger replaced the champion: its scores on the recent labels (`champion`,
    `challenger`) and, with `promotion.test_set`, on the fixed test set (`test_set`)."""
    message = {
        "schema": PROMOTION_SCHEMA,
        "id": f"{segment_id(model, segment)}/promotion/{p.to_version}",
        "model": model,
        "segment": segment,
        "from_version": p.from_version,
        "to_version": p.to_version,
        "kind": p.kind,
        "at": iso_utc(p.time_ms),
        "at_ms": p.time_ms,
        "metric": p.metric,
        "champion": p.champion_score,
        "challenger": p.challenger_score,
        "window": p.window,
        "margin": p.margin,
        "emitted_at": iso_utc(emitted_at_ms),
    }
    if p.test_set is not None:
        message["test_set"] = fixed_set_dict(p.test_set)
    return message


def promotion_refused_message(model: str, segment: str | None, r: PromotionRefused,
                              emitted_at_ms: int) -> dict[str, Any]:
    """A challenger beat the champion on the recent labels but failed the fixed test set: the
    champion stays (tried again after `window` more labels)."""
    return {
        "schema": PROMOTION_REFUSED_SCHEMA,
        "id": f"{segment_id(model, segment)}/promotion/{r.version + 1}/refused/{r.labelled}",
        "model": model,
        "segment": segment,
        "version": r.version,
        "kind": r.kind,
        "at": iso_utc(r.time_ms),
        "at_ms": r.time_ms,
        "labelled": r.labelled,
        "metric": r.metric,
        "champion": r.champion_score,
        "challenger": r.challenger_score,
        "window": r.window,
        "margin": r.margin,
        "test_set": fixed_set_dict(r.test_set),
        "emitted_at": iso_utc(emitted_at_ms),
    }


SNAPSHOT_PART_BYTES = 384 * 1024  # of pickle per message: 512 KiB of base64, under Kafka's 1 MB default


def snapshot_messages(model: str, segment: str | None, s: Snapshot, river_version: str,
                      emitted_at_ms: int, part_bytes: int = SNAPSHOT_PART_BYTES) -> list[dict[str, Any]]:
    """The champion, pickled and base64-encoded, for `driftline model export`, in as many
    messages (`part` 0 .. `parts` - 1) as keep each under the broker's message size limit.

    >>> from features.models.segment import Snapshot
    >>> parts = snapshot_messages("m", None, Snapshot(60_000, 1, "k", 5, b"x" * 10, {}), "0.26", 0, part_bytes=4)
    >>> [(p["id"], p["part"], p["parts"], p["pickle_b64"]) for p in parts]
    [('m/60000/0', 0, 3, 'eHh4eA=='), ('m/60000/1', 1, 3, 'eHh4eA=='), ('m/60000/2', 2, 3, 'eHg=')]
    """
    data = s.model_pickle
    count = max(1, -(-len(data) // part_bytes))
    return [{
        "schema": SNAPSHOT_SCHEMA,
        "id": f"{segment_id(model, segment)}/{s.as_of_ms}/{i}",
        "model": model,
        "segment": segment,
        "version": s.version,
        "kind": s.kind,
        "as_of": iso_utc(s.as_of_ms),
        "as_of_ms": s.as_of_ms,
        "examples_learned": s.learned,
        "metrics": s.metrics,
        "river_version": river_version,
        "part": i,
        "parts": count,
        "pickle_bytes": len(data),
        "pickle_b64": base64.b64encode(data[i * part_bytes:(i + 1) * part_bytes]).decode("ascii"),
        "emitted_at": iso_utc(emitted_at_ms),
    } for i in range(count)]


def _error_summary(count: int, mean: float, std: float | None) -> dict[str, Any]:
    return {"count": count, "mean": mean, "std": std, "q05": None, "q25": None, "q50": None, "q75": None,
            "q95": None, "null_rate": 0.0}


def error_drift_event(model: str, segment: str | None, task: str, d: ErrorDrift,
                      emitted_at_ms: int, runbook: str | None = None) -> dict[str, Any]:
    """ADWIN's change in the served predictions' error, as a drift event of the drift flow
    (`features.monitors.events.DriftEvent`, kind `error_rate`, monitor `model`).

    `reference` is the old regime (the part of ADWIN's window it dropped), `current` the new
    one; `statistic` and `effect_size` are the change in mean error; the window (and so the
    scale) runs from the first label of the new regime to the detection. `runbook` is the
    model's (`[[models]] runbook`), carried as in the drift flow's events.
    """
    column = segment_id(model, segment)
    error = "error rate" if task == "classification" else "mean absolute error"
    began_ms = d.began[1] if d.began is not None else d.time_ms
    change = d.after[1] - d.before[1]
    event = DriftEvent(
        monitor="model", column=column, kind="error_rate", test="adwin", statistic=abs(change), p_value=None,
        effect_size=change, threshold=d.delta, scale_ms=max(1, d.time_ms - began_ms), start_ms=began_ms,
        end_ms=d.time_ms, began=None if d.began is None else (d.began[0], d.began[1]),
        reference=_error_summary(*d.before), current=_error_summary(*d.after),
        severity="warning" if change > 0 else "info",
        detail=(f"{column}: {error} {d.before[1]:.3g} -> {d.after[1]:.3g} (ADWIN, delta={d.delta:g}, "
                f"{d.before[0]} labels before, {d.after[0]} after), model version {d.version}"),
        runbook=runbook)
    return event.to_message(emitted_at_ms)
