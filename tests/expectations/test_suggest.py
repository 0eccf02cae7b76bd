"""`driftline expectations suggest`: a starting set that parses into the config, that the
training data itself meets, and that catches the demo's unit change (metres for km)."""

from __future__ import annotations

import tomllib
from pathlib import Path

from dataflows.cli.commands import main
from dataflows.cli.expectations import suggest_expectations
from dataflows.cli.reference import _events
from dataflows.synth.generator import StreamSpec, generate
from dataflows.synth.planted_changes import parse_change
from features.config import parse_config
from features.monitors.reference import build_references
from features.expectations.column_checks import evaluate

from tests import ROOT


def write_events(path: Path, spec: StreamSpec) -> None:
    path.write_bytes(b"".join(m.value + b"\n" for m in generate(spec) if m.kind == "event"))


def test_suggest_writes_toml_that_the_config_accepts(tmp_path: Path) -> None:
    train = tmp_path / "train.jsonl"
    write_events(train, StreamSpec(events=20_000, seed=5, malformed_fraction=0.01))
    out = tmp_path / "suggested.toml"
    assert main(["expectations", "suggest", "--config", str(ROOT / "deploy" / "rides.toml"),
                 "--input", str(train), "--output", str(out)]) == 0
    suggested = tomllib.loads(out.read_text())["expectations"]
    tests = {(e["column"], next(k for k in e if k not in ("column", "mostly"))) for e in suggested}
    assert {("distance_km", "range"), ("payment", "in"), ("price", "not_null")} <= tests
    assert ("surge", "not_null") not in tests  # the training data has null surges

    document = tomllib.loads((ROOT / "deploy" / "rides.toml").read_text())
    document["monitors"][0]["expectations"] = suggested
    assert len(parse_config(document).monitors[0].expectations) == len(suggested)  # valid as written


def test_the_training_data_meets_its_suggestions_and_metres_fail_the_range(tmp_path: Path) -> None:
    train, changed = tmp_path / "train.jsonl", tmp_path / "changed.jsonl"
    write_events(train, StreamSpec(events=20_000, seed=5))
    write_events(changed, StreamSpec(events=3_000, seed=6,
                                     changes=(parse_change("unit:distance_km:factor=1000:start=0:end=1500"),)))
    config_path = ROOT / "deploy" / "rides.toml"
    document = tomllib.loads(config_path.read_text())
    document["monitors"][0]["expectations"] = tomllib.loads(suggest_expectations(config_path, train))["expectations"]
    config = parse_config(document)
    monitor = config.monitors[0]
    for path, failing in ((train, set()), (changed, {"distance_km"})):
        summary = build_references([monitor], _events(config, path, [0]))[monitor.name].summary
        results = [evaluate(e.spec, summary.columns) for e in monitor.expectations]  # type: ignore[arg-type]
        assert {r.column for r in results if r.failed} == failing, [r.describe() for r in results if not r.passed]
