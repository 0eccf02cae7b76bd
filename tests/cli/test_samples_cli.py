"""`driftline samples merge` over replay files: range selection, hopping windows, errors."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from dataflows.cli.commands import main
from dataflows.cli.replay import replay
from features.samples.messages import merge_samples
from tests.flow_fixtures import START, event_lines, to_toml
from tests.flows.test_samples_flow import sampled_config


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("samples")
    (tmp / "events.jsonl").write_bytes(b"".join(value + b"\n" for _, value in event_lines(3000, seed=2)))
    (tmp / "config.toml").write_text(to_toml(sampled_config("")))
    replay(tmp / "config.toml", tmp / "events.jsonl", tmp / "out", quiet=True)
    return tmp / "out"


def read(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def test_merge_of_a_range_of_files(replayed: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "m.jsonl"
    assert main(["samples", "merge", "--input", str(replayed), "--set", "p", "--from", "2026-01-01T00:00:00Z",
                 "--to", str(START + 60_000), "--output", str(out)]) == 0
    merged = read(out)
    windows = [m for m in read(replayed / "samples.p.jsonl")
               if START <= m["window"]["start_ms"] and m["window"]["end_ms"] <= START + 60_000]
    assert merged == merge_samples(windows, START, START + 60_000)
    assert {m["window"]["start_ms"] for m in merged} == {START}
    assert sum(m["seen"] for m in merged) == sum(m["seen"] for m in windows)
    assert "merged 6 windows of 'p'" in capsys.readouterr().err
    # Without --output the messages go to stdout, one JSON object per line.
    assert main(["samples", "merge", "--input", str(replayed / "samples.p.jsonl"), "--set", "p"]) == 0
    printed = [orjson.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert printed == merge_samples(read(replayed / "samples.p.jsonl"))


def test_hopping_windows_are_tiled(replayed: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["samples", "merge", "--input", str(replayed), "--set", "w", "--from", str(START),
                 "--to", str(START + 90_000)]) == 0
    (merged,) = [orjson.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert merged["merged_windows"] == 3  # [0, 30 s), [30, 60 s), [60, 90 s) of the 30 s / 10 s set


def test_errors_exit_non_zero(replayed: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["samples", "merge", "--input", str(replayed), "--set", "nope"]) == 1
    assert main(["samples", "merge", "--input", str(replayed / "missing"), "--set", "u"]) == 2
    assert main(["samples", "merge", "--input", str(replayed), "--set", "u", "--from", "soon"]) == 2
    assert "--from" in capsys.readouterr().err


def test_a_config_with_sample_sets_only_writes_samples_and_late_events(tmp_path: Path) -> None:
    document = sampled_config("")
    del document["feature_sets"]
    (tmp_path / "events.jsonl").write_bytes(b"".join(value + b"\n" for _, value in event_lines(3000, seed=4)))
    (tmp_path / "config.toml").write_text(to_toml(document))
    counters = replay(tmp_path / "config.toml", tmp_path / "events.jsonl", tmp_path / "out", quiet=True)
    late = read(tmp_path / "out" / "rides.late.jsonl")
    uniform = read(tmp_path / "out" / "samples.u.jsonl")
    assert len(late) == counters.get("late") == counters.get("samples_late") > 0
    assert {m["schema"] for m in late} == {"driftline.late_event/1"}
    assert sum(m["seen"] for m in uniform) + len(late) == counters.get("valid")
    assert counters.get("features_out") == 0 and sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "rides.dlq.jsonl", "rides.late.jsonl", "samples.p.jsonl", "samples.r.jsonl", "samples.u.jsonl",
        "samples.w.jsonl"]
