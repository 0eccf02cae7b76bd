"""`driftline reference build`, a file reference in a replay, and drift events in `driftline tail`."""

from __future__ import annotations

from pathlib import Path

import orjson

from dataflows.cli.commands import main
from dataflows.synth.generator import StreamSpec, generate
from dataflows.synth.planted_changes import parse_change
from dataflows.cli.replay import replay
from dataflows.kafka.tail import format_message

from tests import ROOT


def write_events(path: Path, spec: StreamSpec) -> None:
    path.write_bytes(b"".join(m.value + b"\n" for m in generate(spec) if m.kind == "event"))


def test_reference_file_then_replay_detects_and_tail_prints_one_line(tmp_path: Path, capsys) -> None:
    train, serve = tmp_path / "train.jsonl", tmp_path / "serve.jsonl"
    write_events(train, StreamSpec(events=30_000, seed=1, malformed_fraction=0.01))
    write_events(serve, StreamSpec(events=60_000, seed=2, changes=(parse_change("shift:eta_min:start=36000:scale=1.5"),)))
    config = (ROOT / "deploy" / "rides.toml").read_text()
    config = config.replace('reference = { type = "first_windows", windows = 5 }',
                            'reference = { type = "file", path = "ref.json" }')
    config_path = tmp_path / "rides.toml"
    config_path.write_text(config)

    assert main(["reference", "build", "--config", str(config_path), "--input", str(train),
                 "--output", str(tmp_path / "ref.json")]) == 0
    assert "summarised 29,700 events (300 invalid, skipped)" in capsys.readouterr().err

    replay(config_path, serve, tmp_path / "out", flows=["drift"], quiet=True)
    events = [orjson.loads(x) for x in (tmp_path / "out" / "drift.events.jsonl").read_bytes().splitlines()]
    eta = [e for e in events if e["column"] == "eta_min"]
    # With a file reference the first minutes are tested too, and nothing but eta alerts;
    # the change is localised within one base window of the 36,000th event (it lands ~1 s
    # before a minute boundary: that minute is barely changed).
    assert eta and {e["column"] for e in events} == {"eta_min"}
    lines = serve.read_bytes().splitlines()
    planted = sorted(orjson.loads(x)["ts"] for x in lines[35_990:36_010])[10]
    assert eta[0]["began"]["start_ms"] - 60_000 <= planted < eta[0]["began"]["end_ms"]

    line = format_message(b"eta_min", orjson.dumps(eta[0]), 0, 3, compact=False)
    assert "\n" not in line and line.startswith("[0:3] eta_min 2026-01-01 ") and "inputs/eta_min covariate" in line


def test_reference_build_without_monitors_is_a_config_error(tmp_path: Path, capsys) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[source]\ntopic = "rides"\n[schema]\nentity = "a"\nevent_time = "ts"\n'
                      '[schema.fields]\na = "string"\n')
    assert main(["reference", "build", "--config", str(config), "--input", "x", "--output", "y"]) == 2
    assert "config key `monitors`" in capsys.readouterr().err
