"""The demo's planted concept drift is visible to the demo's model (#19, item 10): with fixed
seeds, the online model of deploy/rides.toml (its event-field inputs), fed the generated rides
and labels in event-time order as the model flow feeds them, sees its error jump by several
points, ADWIN fires within a few hundred labels of the new regime, and the challenger it
starts is promoted by a clear margin."""

from __future__ import annotations

from dataclasses import replace

import orjson
import pytest

from dataflows.synth.generator import StreamSpec, generate
from dataflows.synth.planted_changes import parse_change
from features.config import load_config
from features.models.segment import ErrorDrift, Promotion, SegmentModel, WindowMetrics
from tests import ROOT

EVENTS, CHANGE_AT = 60_000, 20_000
FIELDS = ("price", "distance_km", "surge", "eta_min", "payment")


def run(seed: int) -> dict:
    spec = next(m for m in load_config(ROOT / "deploy" / "rides.toml").models if m.name == "cancel")
    spec = replace(spec, inputs=FIELDS, features=())  # the event fields; feature inputs need the flow
    stream = StreamSpec(events=EVENTS, seed=seed, changes=(parse_change(f"concept:start={CHANGE_AT}"),))
    items, change_ms = [], None
    for m in generate(stream):
        if m.expected_reason is not None:
            continue
        doc = orjson.loads(m.value)
        if m.kind == "event":
            if m.index == CHANGE_AT:
                change_ms = doc["ts"]
            x = {k: doc[k] for k in FIELDS if doc[k] is not None}
            items.append((doc["ts"], 0, doc["ride_id"], x))
        else:
            items.append((doc["ts"], 1, doc["ride_id"], doc["cancelled"]))
    items.sort(key=lambda item: item[:3])  # the flow's order: event time, events before labels, key
    model = SegmentModel(spec, None)
    out: list[object] = []
    first_new_label_ms = None  # labels come ~2 minutes after their rides: the new regime phases in
    new_labels = 0  # labels of rides from the new regime, up to the first error drift that saw it
    detected = None
    for time_ms, kind, key, value in items:
        if kind == 0:
            out += model.on_event(key, time_ms, value)
            continue
        new = model.on_label(key, time_ms, value)
        out += new
        if int(key.rsplit("-", 1)[1]) >= CHANGE_AT and detected is None:
            first_new_label_ms = first_new_label_ms or time_ms
            new_labels += 1
        if detected is None and first_new_label_ms is not None:
            detected = next((o for o in new if isinstance(o, ErrorDrift) and o.after[1] > o.before[1]), None)
    out += model.flush(items[-1][0])
    return {"out": out, "change_ms": change_ms, "first_new_label_ms": first_new_label_ms, "detected": detected,
            "new_labels": new_labels}


def accuracy(windows: list[WindowMetrics]) -> float:
    scored = [(w.metrics["accuracy"], w.labelled) for w in windows if w.metrics.get("accuracy") is not None]
    return sum(a * n for a, n in scored) / sum(n for _, n in scored)


@pytest.mark.parametrize("seed", [7, 11])
def test_the_error_jumps_adwin_fires_soon_and_a_challenger_wins_clearly(seed: int) -> None:
    result = run(seed)
    out, change_ms, detected = result["out"], result["change_ms"], result["detected"]
    windows = [o for o in out if isinstance(o, WindowMetrics)]
    promotions = [o for o in out if isinstance(o, Promotion) and o.time_ms >= change_ms]
    assert detected is not None and promotions
    promoted = promotions[0]
    # ADWIN (delta 0.05) fires within a few hundred labels of the new regime's rides
    assert result["new_labels"] < 600, result["new_labels"]
    # the old model's error, window by window: several points more than before the change
    before = accuracy([w for w in windows if w.end_ms <= change_ms and w.start_ms > windows[0].start_ms])
    hit = min(accuracy([w]) for w in windows if change_ms < w.end_ms <= promoted.time_ms + 60_000)
    assert before - hit > 0.04, (before, hit)
    # the challenger started on that drift wins by a clear margin (more than the config's
    # margin, which the promotion requires), and the model served after it stays better
    assert promoted.challenger_score - promoted.champion_score > 0.03, promoted
    after = accuracy([w for w in windows if w.start_ms >= promoted.time_ms])
    assert after - hit > 0.015, (hit, after)
    assert len(promotions) == 1  # no flapping: one promotion answers the one change
