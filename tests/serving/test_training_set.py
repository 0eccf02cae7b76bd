"""`driftline training-set` on the demo stream: every row is what the model flow logged."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from dataflows.cli import main
from features.config import load_config

CONFIG = Path(__file__).resolve().parents[2] / "deploy" / "rides.toml"


@pytest.fixture(scope="module")
def demo_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12,000 synthetic rides (malformed and late ones included) with their labels, and the
    model flow's replay of them."""
    d = tmp_path_factory.mktemp("training")
    assert main(["produce", "--events", "12000", "--seed", "5", "--malformed-fraction", "0.01",
                 "--output", str(d / "events.jsonl"), "--labels-output", str(d / "labels.jsonl")]) == 0
    assert main(["replay", "--config", str(CONFIG), "--input", str(d / "events.jsonl"), "--labels",
                 str(d / "labels.jsonl"), "--flow", "model", "--output-dir", str(d / "out")]) == 0
    return d


def _predictions(d: Path) -> dict[str, dict]:
    lines = (d / "out" / "predictions.cancel.jsonl").read_bytes().splitlines()
    return {m["key"]: m for m in map(orjson.loads, lines)}


def test_every_row_equals_the_logged_inputs(demo_files: Path) -> None:
    import pyarrow.parquet as pq

    d = demo_files
    assert main(["training-set", "--config", str(CONFIG), "--events", str(d / "events.jsonl"), "--labels",
                 str(d / "labels.jsonl"), "--model", "cancel", "--output", str(d / "train.parquet")]) == 0
    rows = pq.read_table(d / "train.parquet").to_pylist()
    spec = {s.name: s for s in load_config(CONFIG).models}["cancel"]
    predictions = _predictions(d)
    assert len(rows) > 5_000
    with_features = 0
    for row in rows:
        logged = predictions[row["_key"]]
        inputs = {name: row[name] for name in spec.inputs if row[name] is not None}
        assert inputs == logged["inputs"], row["_key"]
        assert (row["_event_time_ms"], row["_entity"]) == (logged["event_time_ms"], logged["entity"])
        with_features += "area_10m.mean_price" in inputs
    assert with_features > len(rows) // 2  # the point-in-time feature inputs are there, not only event fields
    # As many rows as the flow learned from: the labels it joined (its metrics count them).
    metrics = [orjson.loads(line) for line in (d / "out" / "model.metrics.jsonl").read_bytes().splitlines()]
    learned = sum(m["counts"]["labelled"] for m in metrics if m["schema"].startswith("driftline.model_metrics/"))
    assert len(rows) == learned


def test_jsonl_output_and_label_column(demo_files: Path) -> None:
    d = demo_files
    assert main(["training-set", "--config", str(CONFIG), "--events", str(d / "events.jsonl"), "--labels",
                 str(d / "labels.jsonl"), "--model", "cancel", "--output", str(d / "train.jsonl")]) == 0
    rows = [orjson.loads(line) for line in (d / "train.jsonl").read_bytes().splitlines()]
    labels = {}
    for line in (d / "labels.jsonl").read_bytes().splitlines():
        try:
            label = orjson.loads(line)
            labels[label["ride_id"]] = label["cancelled"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            continue
    assert rows and all(row["_label"] == labels[row["_key"]] for row in rows)
    assert list(rows[0])[:3] == ["_key", "_event_time_ms", "_entity"] and list(rows[0])[-2:] == ["_label",
                                                                                                 "_label_time_ms"]


def test_unknown_model_names_the_option(demo_files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = demo_files
    assert main(["training-set", "--config", str(CONFIG), "--events", str(d / "events.jsonl"), "--labels",
                 str(d / "labels.jsonl"), "--model", "nope", "--output", str(d / "x.jsonl")]) == 2
    assert "--model" in capsys.readouterr().err
