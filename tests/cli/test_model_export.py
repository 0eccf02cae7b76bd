"""`driftline model export`: the latest snapshot from Kafka predicts like the live model."""

from __future__ import annotations

import pickle
import random
from dataclasses import replace
from pathlib import Path

import pytest

from dataflows.kafka.broker import RunningBroker, create_topics
from dataflows.cli.commands import main
from features.messages import encode
from features.models.config import LabelSpec, ModelSpec
from features.models.messages import snapshot_messages
from features.models.segment import SegmentModel
from tests.kafka_helpers import produce

pytestmark = pytest.mark.integration

SPEC = ModelSpec("cancel", "hoeffding_tree_classifier", "classification", ("x", "y"), LabelSpec("l", "k", "c"),
                 params={"grace_period": 50})


def trained(seg: SegmentModel, start: int, n: int, seed: int) -> None:
    rng = random.Random(seed)
    for i in range(start, start + n):
        x = {"x": rng.uniform(-1, 1), "y": rng.uniform(-1, 1)}
        seg.on_event(str(i), i, x)
        seg.on_label(str(i), i, x["x"] + 0.3 * x["y"] > 0)


def test_export_writes_the_latest_snapshot(broker: RunningBroker, topic_prefix: str, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    topic = f"{topic_prefix}model.snapshots"
    create_topics(broker.bootstrap, [topic], partitions=3)
    live = SegmentModel(SPEC, None)
    other = SegmentModel(replace(SPEC, name="other"), None)
    trained(live, 0, 300, seed=1)
    trained(other, 0, 300, seed=2)
    early = snapshot_messages("cancel", None, live.snapshot(1_000), "x", 0)
    trained(live, 300, 700, seed=3)
    latest = snapshot_messages("cancel", None, live.snapshot(2_000), "x", 0, part_bytes=1000)
    assert len(latest) > 3  # a snapshot in several parts, written twice (at-least-once), and out of order
    incomplete = snapshot_messages("cancel", None, live.snapshot(3_000), "x", 0, part_bytes=1000)[1:]
    decoy = snapshot_messages("other", None, other.snapshot(9_000), "x", 0)
    messages = [*latest[::-1], *decoy, *early, *latest, *incomplete]
    produce(broker.bootstrap, topic, [(m["model"].encode(), encode(m)) for m in messages])

    output = tmp_path / "model.pkl"
    assert main(["model", "export", "--bootstrap", broker.bootstrap, "--topic", topic, "--model", "cancel",
                 "--output", str(output)]) == 0
    assert "1,000 examples learned" in capsys.readouterr().out
    with output.open("rb") as handle:
        exported = pickle.load(handle)
    rng = random.Random(9)
    probes = [{"x": rng.uniform(-1, 1), "y": rng.uniform(-1, 1)} for _ in range(500)]
    assert [exported.predict_proba_one(x) for x in probes] == [live.champion.model.predict_proba_one(x)
                                                               for x in probes]
    assert main(["model", "export", "--bootstrap", broker.bootstrap, "--topic", topic, "--model", "nope",
                 "--output", str(tmp_path / "nope.pkl")]) == 1
    assert "no complete snapshot of model 'nope'" in capsys.readouterr().err
