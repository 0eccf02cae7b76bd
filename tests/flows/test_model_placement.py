"""Model shards placed by load, and the arrival order, over JSONL partitions (no broker):

- segments placed by load on 2 workers write exactly what 1 worker placed by hash writes;
- the arrival order writes the same on 1 and 2 workers, and predicts every event once;
- a recovery directory resumes with the worker count it was written with, and a run with
  another worker count is refused with a message that says what to do;
- a recovery directory of another state layout is refused with a message too.
"""

from __future__ import annotations

import threading
import zlib
from pathlib import Path

import orjson
import pytest
from bytewax.outputs import DynamicSink, StatelessSinkPartition

from dataflows.counters import FlowCounters
from dataflows.flows.model import build_model_flow
from dataflows.flows.runner import Execution, run_flow
from dataflows.kafka.file_io import JsonlPartitions
from dataflows.synth.generator import StreamSpec
from dataflows.synth.produce import write_jsonl
from features.config import parse_config
from tests.flow_fixtures import strip
from tests.flows.test_model_flow import without_pickles


class Collect(DynamicSink):
    def __init__(self) -> None:
        self.messages: list[dict] = []
        self.lock = threading.Lock()

    def build(self, step_id, worker_index, worker_count):
        sink = self

        class Part(StatelessSinkPartition):
            def write_batch(self, items):
                with sink.lock:
                    sink.messages.extend(orjson.loads(m.value) for m in items)

        return Part()


def document(events: Path, placement: str, order: str = "event_time") -> dict:
    return {
        "source": {"topic": "rides", "lateness": "10s"},
        "schema": {"entity": "area", "event_time": "ts", "time_format": "epoch_ms", "fields": {
            "ride_id": "string", "area": "string", "price": "float", "eta_min": "float"}},
        "models": [{"name": "by_area", "kind": "hoeffding_tree_classifier", "params": {"grace_period": 50},
                    "segment_by": "area", "inputs": ["price", "eta_min"], "order": order,
                    "placement": {"by": "load", "weights_file": str(events)} if placement == "load" else "hash",
                    "labels": {"topic": "rides.labels", "key": "ride_id", "field": "cancelled", "ttl": "2m"},
                    "metrics_window": "30s", "snapshot_every": "1m"}],
    }


@pytest.fixture(scope="module")
def stream(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Path]]:
    directory = tmp_path_factory.mktemp("placement")
    events, labels = directory / "events.jsonl", directory / "labels.jsonl"
    write_jsonl(StreamSpec(events=4000, seed=5, label_delay_ms=20_000), events, labels)
    parts: dict[str, Path] = {}
    for path, topic, key in ((events, "rides", "area"), (labels, "rides.labels", "ride_id")):
        handles = {}
        for line in path.read_bytes().splitlines():
            p = zlib.crc32(str(orjson.loads(line).get(key)).encode()) % 2
            if p not in handles:
                parts[f"{p}-{topic}"] = directory / f"{topic}.{p}.jsonl"
                handles[p] = parts[f"{p}-{topic}"].open("wb")
            handles[p].write(line + b"\n")
        for handle in handles.values():
            handle.close()
    return events, parts


def run(doc: dict, parts: dict[str, Path], workers: int, recovery: Path | None = None) -> tuple[list[dict], FlowCounters]:
    sink, counters = Collect(), FlowCounters()
    flow = build_model_flow(parse_config(doc), JsonlPartitions(parts), sink, counters, workers=workers)
    run_flow(flow, Execution(workers=workers, recovery_dir=recovery))
    return sink.messages, counters


def test_placed_by_load_writes_what_hash_placement_writes(stream) -> None:
    events, parts = stream
    hashed, counters = run(document(events, "hash"), parts, workers=1)
    placed, counters2 = run(document(events, "load"), parts, workers=2)
    assert counters.get("model.predictions") > 3000
    assert strip(without_pickles(placed)) == strip(without_pickles(hashed))
    assert counters2.get("model.predictions") == counters.get("model.predictions")


def test_arrival_order_is_the_same_on_one_and_two_workers(stream) -> None:
    events, parts = stream
    one, counters = run(document(events, "load", order="arrival"), parts, workers=1)
    two, _ = run(document(events, "load", order="arrival"), parts, workers=2)
    assert strip(without_pickles(one)) == strip(without_pickles(two))
    predictions = [m for m in one if m["schema"] == "driftline.prediction/1"]
    assert len(predictions) == len({m["key"] for m in predictions}) == counters.get("model.predictions")
    assert counters.get("model.labels_used") > 0.9 * len(predictions)


def test_a_recovery_directory_resumes_with_its_worker_count_only(stream, tmp_path: Path) -> None:
    events, parts = stream
    doc = document(events, "load")
    recovery = tmp_path / "recovery"
    first, _ = run(doc, parts, workers=2, recovery=recovery)
    again, counters = run(doc, parts, workers=2, recovery=recovery)  # resumed at the end: nothing new to do
    assert counters.get("model.predictions") == 0
    with pytest.raises(Exception) as refused:
        run(doc, parts, workers=1, recovery=recovery)
    text = "".join(str(e) for e in (refused.value, refused.value.__cause__, refused.value.__context__) if e)
    assert "cannot move to another worker on resume" in text, text


def test_a_recovery_directory_of_another_state_layout_is_refused(stream, tmp_path: Path, monkeypatch) -> None:
    """A snapshot of the join and model shards laid out by another release stops the flow at
    start with what to do (as the features flow's), instead of failing later on its contents."""
    from dataflows.flows import model

    events, parts = stream
    doc, recovery = document(events, "hash"), tmp_path / "recovery"
    run(doc, parts, workers=1, recovery=recovery)
    _, counters = run(doc, parts, workers=1, recovery=recovery)  # the same layout resumes
    assert counters.get("model.predictions") == 0
    monkeypatch.setattr(model, "STATE_LAYOUT", model.STATE_LAYOUT + 1)  # as a release that changed it
    with pytest.raises(Exception) as refused:
        run(doc, parts, workers=1, recovery=recovery)
    text = "".join(str(e) for e in (refused.value, refused.value.__cause__, refused.value.__context__) if e)
    assert "model flow's state of another driftline" in text and "new --recovery-dir" in text, text


def test_state_pickled_before_layouts_were_numbered_is_refused() -> None:
    import pickle

    from dataflows.flows.model import _JoinState, _ShardState, resumable
    from features.models.config import LabelSpec, ModelSpec

    spec = ModelSpec("m", "hoeffding_tree_classifier", "classification", ("x",), LabelSpec("l", "id", "y"))
    for state in (_JoinState(spec, partitions=2, lateness_ms=0), _ShardState()):
        assert resumable(pickle.loads(pickle.dumps(state))) is not None
        del state.state_layout  # as an earlier release pickled it
        with pytest.raises(RuntimeError, match="new --recovery-dir"):
            resumable(pickle.loads(pickle.dumps(state)))
