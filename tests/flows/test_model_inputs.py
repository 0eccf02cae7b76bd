"""The model flow's inputs, over JSONL partitions (no broker): a prediction carries each input as
the event wrote it (a JSON integer in a float field stays an integer), whatever path decoded
the event (an event with a UTF-8 byte-order mark goes through the single-event decoder)."""

from __future__ import annotations

from pathlib import Path

import orjson

from tests.flows.test_model_placement import run as run_flow_collecting

START = 1_767_225_600_000
CONFIG = {
    "source": {"topic": "rides", "lateness": "10s"},
    "schema": {"entity": "area", "event_time": "ts", "time_format": "epoch_ms", "fields": {
        "ride_id": "string", "area": "string", "price": "float", "eta_min": {"type": "float", "nullable": True},
        "seats": {"type": "int", "required": False}}},
    "models": [{"name": "m", "kind": "hoeffding_tree_classifier", "inputs": ["price", "eta_min", "seats"],
                "labels": {"topic": "rides.labels", "key": "ride_id", "field": "cancelled", "ttl": "1m"}}],
}


def test_predictions_carry_the_inputs_as_the_events_wrote_them(tmp_path: Path) -> None:
    events = [{"ride_id": f"r{i}", "area": "a", "ts": START + 1000 * i, "price": price, "eta_min": eta, **extra}
              for i, (price, eta, extra) in enumerate([
                  (12, 3.5, {}), (12.0, None, {"seats": 2}), (7.25, 4, {"note": "ignored"}),
                  (18446744073709551615, 1.0, {}),  # an integer beyond int64 that orjson still reads as one
                  (2, 2, {"seats": 9223372036854775807})])]
    raws = [orjson.dumps(e) for e in events]
    raws.append(b"\xef\xbb\xbf" + orjson.dumps({"ride_id": "bom", "area": "a", "ts": START + 9000, "price": 3,
                                                       "eta_min": None}))
    labels = [orjson.dumps({"ride_id": e["ride_id"], "ts": e["ts"] + 500, "cancelled": True}) for e in events]
    (tmp_path / "events.jsonl").write_bytes(b"\n".join(raws) + b"\n")
    (tmp_path / "labels.jsonl").write_bytes(b"\n".join(labels) + b"\n")
    parts = {"0-rides": tmp_path / "events.jsonl", "0-rides.labels": tmp_path / "labels.jsonl"}

    messages, counters = run_flow_collecting(CONFIG, parts, workers=1)

    inputs = {m["key"]: m["inputs"] for m in messages if m["schema"] == "driftline.prediction/1"}
    expected = {e["ride_id"]: {n: e[n] for n in ("price", "eta_min", "seats") if e.get(n) is not None}
                for e in events}
    assert inputs == {**expected, "bom": {"price": 3}}
    assert [type(x["price"]) for x in inputs.values()] == [int, float, float, int, int, int]
    assert counters.get("model.predictions") == len(raws)

