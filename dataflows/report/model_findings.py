"""What the model flow did, for people: counter lines for run summaries, and the demo's story
of a concept drift (accuracy before, during and after it, the error drift, the promotion)."""

from __future__ import annotations

from typing import Any


from dataflows.counters import FlowCounters
from dataflows.kafka.tail import read_json
from features.config import Config
from features.messages import iso_utc
from features.models.messages import METRICS_SCHEMA, PROMOTION_SCHEMA


def model_counter_lines(counters: FlowCounters) -> list[str]:
    """Summary lines for the model flow's counters (none when the flow did not run).

    >>> counters = FlowCounters()
    >>> counters.add({"model.predictions": 10, "model.labels_in": 9, "model.labels_used": 8})
    >>> model_counter_lines(counters)[:2]
    ['  predictions           10', '  labels read           9 (used 8, rejected 0, late 0, no prediction 0)']
    """
    if not counters.get("model.predictions") and not counters.get("model.labels_in"):
        return []
    return [
        f"  predictions           {counters.get('model.predictions'):,}",
        f"  labels read           {counters.get('model.labels_in'):,} (used {counters.get('model.labels_used'):,}, "
        f"rejected {counters.total('model.labels_rejected.'):,}, late {counters.get('model.late_labels'):,}, "
        f"no prediction {counters.get('model.labels_unmatched'):,})",
        f"  expired predictions   {counters.get('model.expired'):,} (no label within the TTL)",
        f"  events too late for the models {counters.get('model.late_events'):,}",
        f"  metric windows {counters.get('model.windows'):,}, snapshots {counters.get('model.snapshots'):,}, "
        f"error drifts {counters.get('model.error_drifts'):,}, promotions {counters.get('model.promotions'):,}",
    ] + ([f"  snapshots that failed  {counters.get('model.snapshot_errors'):,} (the model could not be pickled; "
          "see the snapshot_failed log lines)"] if counters.get("model.snapshot_errors") else [])


def _weighted(windows: list[dict[str, Any]], metric: str) -> float | None:
    pairs = [(w["metrics"][metric], w["counts"]["labelled"]) for w in windows
             if w["metrics"].get(metric) is not None]
    total = sum(n for _, n in pairs)
    return sum(v * n for v, n in pairs) / total if total else None


def drift_story(model: str, metrics: list[dict[str, Any]], drifts: list[dict[str, Any]],
                drift_at_ms: int, until_ms: int | None = None) -> dict[str, Any]:
    """Accuracy and ROC AUC of a model's windows before a planted drift, during it (until the
    promotion, or the detection, that answered it) and after (until `until_ms`, when another
    change begins); the detection and promotions.

    Only whole-model windows (no `segment_by`) are summarised.
    """
    windows = sorted((m for m in metrics if m["schema"] == METRICS_SCHEMA and m["model"] == model
                      and m["segment"] is None), key=lambda m: m["window"]["end_ms"])
    promotions = sorted((m for m in metrics if m["schema"] == PROMOTION_SCHEMA and m["model"] == model
                         and m["segment"] is None), key=lambda m: m["at_ms"])
    detections = sorted((d for d in drifts if d.get("kind") == "error_rate" and d.get("column") == model),
                        key=lambda d: d["window"]["end_ms"])
    detected = next((d for d in detections if d["window"]["end_ms"] >= drift_at_ms), None)
    answered = next((p for p in promotions if p["at_ms"] >= drift_at_ms), None)
    if answered is not None:
        settled = answered["at_ms"]
    elif detected is not None:
        settled = detected["window"]["end_ms"]
    else:
        settled = drift_at_ms + (max((w["window"]["end_ms"] for w in windows), default=drift_at_ms) - drift_at_ms) // 3
    phases = {
        "before": [w for w in windows if w["window"]["end_ms"] <= drift_at_ms],
        "during": [w for w in windows if drift_at_ms < w["window"]["end_ms"] and w["window"]["start_ms"] < settled],
        "after": [w for w in windows if w["window"]["start_ms"] >= settled
                  and (until_ms is None or w["window"]["end_ms"] <= until_ms)],
    }
    return {
        "model": model,
        "drift_planted_at": iso_utc(drift_at_ms),
        "next_change_at": None if until_ms is None else iso_utc(until_ms),
        "phases": {name: {"windows": len(ws), "labelled": sum(w["counts"]["labelled"] for w in ws),
                          "accuracy": _weighted(ws, "accuracy"), "roc_auc": _weighted(ws, "roc_auc")}
                   for name, ws in phases.items()},
        "error_drift": None if detected is None else {
            "at": detected["window"]["end"], "after_s": (detected["window"]["end_ms"] - drift_at_ms) / 1000,
            "error_before": detected["reference"]["mean"], "error_after": detected["current"]["mean"]},
        "error_drifts": len(detections),
        "promotions": [{"at": p["at"], "to_version": p["to_version"], "champion": p["champion"],
                        "challenger": p["challenger"], "metric": p["metric"]} for p in promotions],
    }


def story_lines(story: dict[str, Any]) -> list[str]:
    """The story as text lines."""
    def fmt(value: float | None) -> str:
        return "  n/a" if value is None else f"{value:.3f}"

    until = f" (after: until the next planted change at {story['next_change_at']})" if story["next_change_at"] else ""
    lines = [f"online model {story['model']!r}: concept drift planted at {story['drift_planted_at']}{until}"]
    for name, phase in story["phases"].items():
        lines.append(f"  {name:<7} accuracy {fmt(phase['accuracy'])}  ROC AUC {fmt(phase['roc_auc'])}"
                     f"  ({phase['labelled']:,} labels, {phase['windows']} windows)")
    drift = story["error_drift"]
    if drift is None:
        lines.append(f"  no error drift detected after the change ({story['error_drifts']} in the whole run)")
    else:
        lines.append(f"  error drift (ADWIN) detected at {drift['at']}, {drift['after_s']:.0f} s of event time after"
                     f" the change: error rate {drift['error_before']:.3f} -> {drift['error_after']:.3f}")
    for p in story["promotions"]:
        lines.append(f"  challenger promoted to version {p['to_version']} at {p['at']}"
                     f" ({p['metric']} {p['champion']:.3f} -> {p['challenger']:.3f} over the comparison window)")
    if not story["promotions"]:
        lines.append("  no promotion")
    return lines


def demo_model_report(bootstrap: str, config: Config, drift_at_ms: int,
                      until_ms: int | None = None) -> tuple[list[str], list[dict[str, Any]]]:
    """The demo's model section: (text lines, one story per model without segments)."""
    lines: list[str] = []
    stories = []
    for spec in config.models:
        if spec.segment_by is not None:
            continue
        key = spec.name.encode()
        metrics = [doc for k, doc in read_json(bootstrap, spec.metrics_topic, config.kafka) if k == key]
        drifts = [doc for k, doc in read_json(bootstrap, spec.drift_topic, config.kafka) if k == key]
        story = drift_story(spec.name, metrics, drifts, drift_at_ms, until_ms)
        stories.append(story)
        lines += story_lines(story)
    return lines, stories
