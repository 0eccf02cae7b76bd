"""The demo's model story: phases around a planted drift, from metrics and drift-event messages."""

from __future__ import annotations

from dataflows.report.model_findings import drift_story, story_lines
from features.models.messages import METRICS_SCHEMA, PROMOTION_SCHEMA

MINUTE = 60_000


def window(i: int, accuracy: float, labelled: int, segment: str | None = None) -> dict:
    return {"schema": METRICS_SCHEMA, "model": "cancel", "segment": segment,
            "window": {"start_ms": i * MINUTE, "end_ms": (i + 1) * MINUTE},
            "metrics": {"accuracy": accuracy, "roc_auc": None}, "counts": {"labelled": labelled}}


def test_phases_detection_and_promotion() -> None:
    metrics = [window(i, 0.9, 100) for i in range(5)]  # before the drift at minute 5
    metrics += [window(5, 0.6, 100), window(6, 0.7, 300)]  # during: until the promotion at 7:00
    metrics += [window(7, 0.85, 100), window(8, 0.95, 100), window(9, 0.1, 100)]  # after; 9 is past the next change
    metrics += [window(6, 0.0, 999, segment="area-1")]  # segments are not part of the story
    metrics.append({"schema": PROMOTION_SCHEMA, "model": "cancel", "segment": None, "at_ms": 7 * MINUTE,
                    "at": "07:00", "to_version": 2, "champion": 0.6, "challenger": 0.8, "metric": "accuracy"})
    drifts = [{"kind": "error_rate", "column": "cancel", "window": {"end_ms": 2 * MINUTE, "end": "02:00"},
               "reference": {"mean": 0.1}, "current": {"mean": 0.1}},  # a false alarm before the drift
              {"kind": "error_rate", "column": "cancel", "window": {"end_ms": 6 * MINUTE + 30_000, "end": "06:30"},
               "reference": {"mean": 0.1}, "current": {"mean": 0.4}}]
    story = drift_story("cancel", metrics, drifts, 5 * MINUTE, until_ms=9 * MINUTE)
    phases = story["phases"]
    assert phases["before"] == {"windows": 5, "labelled": 500, "accuracy": 0.9, "roc_auc": None}
    assert phases["during"]["windows"] == 2 and abs(phases["during"]["accuracy"] - (60 + 210) / 400) < 1e-12
    assert phases["after"]["windows"] == 2 and abs(phases["after"]["accuracy"] - 0.9) < 1e-12
    assert story["error_drift"]["after_s"] == 90 and story["error_drifts"] == 2
    text = "\n".join(story_lines(story))
    assert "promoted to version 2 at 07:00" in text and "error rate 0.100 -> 0.400" in text
