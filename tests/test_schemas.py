"""Every message a replay writes validates against its JSON Schema in deploy/schemas/."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
from jsonschema import Draft202012Validator

from dataflows.cli.replay import replay

from tests import ROOT
SCHEMAS = {
    "driftline.dead_letter/1": "dead_letter.json",
    "driftline.features/1": "features.json",
    "driftline.late_event/1": "late_event.json",
    "driftline.sample/1": "sample.json",
    "driftline.drift_event/1": "drift_event.json",
    "driftline.window_summary/1": "window_summary.json",
    "driftline.prediction/1": "prediction.json",
    "driftline.model_metrics/1": "model_metrics.json",
}


def validator(name: str) -> Draft202012Validator:
    schema = json.loads((ROOT / "deploy" / "schemas" / SCHEMAS[name]).read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def test_schemas_are_valid_json_schemas() -> None:
    for name in SCHEMAS:
        assert validator(name).schema["$id"] == name


def test_replayed_messages_match_their_schemas(tmp_path: Path) -> None:
    start = 1_767_225_600_000
    lines = []
    for i in range(6000):  # 10 minutes; the price jumps after 7.5 (a drift event)
        t = start + i * 100 - (120_000 if i % 500 == 499 else 0)
        event = {"ride_id": f"r{i}", "area": f"area-{i % 7}", "ts": t, "price": 5.0 + i % 13 + 10 * (i >= 4500),
                 "distance_km": 2.5, "surge": None if i % 11 == 0 else 1.2, "eta_min": 4.0,
                 "payment": ["card", "cash", "wallet"][i % 3]}
        lines.append(orjson.dumps(event))
    lines += [b"\xff\xfe{", b"[1, 2]", b'{"area": "a"}', orjson.dumps({**event, "price": "cheap"})]
    source = tmp_path / "events.jsonl"
    source.write_bytes(b"\n".join(lines) + b"\n")
    counters = replay(ROOT / "deploy" / "rides.toml", source, tmp_path / "out", quiet=True)
    assert counters.get("late") == 12 and counters.total("rejected.") == 4
    seen = set()
    for path in (tmp_path / "out").glob("*.jsonl"):
        for line in path.read_bytes().splitlines():
            message = orjson.loads(line)
            validator(message["schema"]).validate(message)
            seen.add(message["schema"])
    assert seen == set(SCHEMAS)
