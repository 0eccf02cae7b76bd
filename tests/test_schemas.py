"""Every message a replay writes validates against its JSON Schema in deploy/schemas/."""

from __future__ import annotations

from pathlib import Path

import orjson

from dataflows.cli.replay import replay

from tests import ROOT
from tests.schemas import schema_file, schema_validator, validate_message

# What the replay of deploy/rides.toml below writes: every schema but the model lifecycle's.
REPLAYED = {"driftline.dead_letter/1", "driftline.features/1", "driftline.late_event/1", "driftline.sample/1",
            "driftline.drift_event/1", "driftline.window_summary/1", "driftline.prediction/1",
            "driftline.model_metrics/1"}


def test_schemas_are_valid_json_schemas() -> None:
    files = sorted(path.name for path in (ROOT / "deploy" / "schemas").glob("*.json"))
    assert files
    for file_name in files:
        assert schema_file(schema_validator(file_name).schema["$id"]) == file_name


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
            validate_message(message)
            seen.add(message["schema"])
    assert seen == REPLAYED
