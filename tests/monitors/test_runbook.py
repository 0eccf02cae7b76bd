"""`runbook` per monitor and model (#21): parsed with errors that name the key and the fix,
carried in every drift event (drift tests, expectations, schema-version changes, model error
drift), valid against deploy/schemas/drift_event.json, and shown by `driftline tail` and
`DriftSubscriber` (the report: tests/report/test_report.py)."""

from __future__ import annotations

import tomllib

import numpy as np
import orjson
import pytest

from dataflows.client import parse_drift_event
from dataflows.kafka.tail import format_message
from features.config import parse_config
from features.config_values import ConfigError
from features.models.messages import error_drift_event
from features.models.segment import ErrorDrift
from features.monitors.engine import DriftEngine
from features.summaries.window import summarize_columns
from tests import ROOT
from tests.schemas import schema_validator

URL = "https://wiki.example.com/runbooks/pricing#inputs"
MIN = 60_000


def doc(monitor: dict | None = None, model: dict | None = None) -> dict:
    return {
        "source": {"topic": "rides"},
        "schema": {"entity": "area", "event_time": "ts",
                   "fields": {"area": "string", "ride_id": "string", "price": "float", "payment": "category"}},
        "monitors": [{"name": "inputs", "numeric": ["price"], **(monitor or {})}],
        "models": [{"name": "cancel", "kind": "hoeffding_tree_classifier", "inputs": ["price"],
                    "labels": {"key": "ride_id", "field": "cancelled"}, **(model or {})}],
    }


def test_runbooks_are_optional_text_or_urls() -> None:
    config = parse_config(doc())
    assert config.monitors[0].runbook is None and config.models[0].runbook is None
    config = parse_config(doc({"runbook": f"  {URL}\n"}, {"runbook": "Page #pricing; check the labels topic."}))
    assert config.monitors[0].runbook == URL
    assert config.models[0].runbook == "Page #pricing; check the labels topic."


@pytest.mark.parametrize("where", ["monitors", "models"])
@pytest.mark.parametrize(("value", "fragment"), [
    ("", "non-empty string"), ("   ", "non-empty string"), (42, "non-empty string"),
    (["a"], "non-empty string"), ("ftp://wiki/x", "http(s) URL"), ("https://", "http(s) URL"),
    ("https://wiki.example.com/a b", "http(s) URL"), ("x" * 2001, "at most 2000"),
])
def test_a_bad_runbook_stops_at_start_naming_the_key_and_the_fix(where: str, value: object, fragment: str) -> None:
    document = doc({"runbook": value}) if where == "monitors" else doc(model={"runbook": value})
    with pytest.raises(ConfigError) as info:
        parse_config(document)
    assert info.value.key == f"{where}[0].runbook"
    assert fragment in str(info.value) and "Fix:" in str(info.value)


def test_the_demo_config_points_into_the_runbooks_doc() -> None:
    raw = tomllib.loads((ROOT / "deploy" / "rides.toml").read_text())
    runbooks = [t["runbook"] for t in raw["monitors"] + raw["models"]]
    assert len(runbooks) == 2
    text = (ROOT / "docs" / "runbooks.md").read_text()
    for runbook in runbooks:
        path, _, anchor = runbook.partition("#")
        assert path == "docs/runbooks.md" and f"\n## {anchor}\n".lower() in text.lower(), runbook


def base(i: int, x: np.ndarray, payment: list[str]) -> object:
    return summarize_columns(i * MIN, (i + 1) * MIN, {"price": x, "payment": payment}, ["price"], ["payment"])


def test_drift_expectation_and_schema_events_carry_the_monitors_runbook() -> None:
    config = parse_config({**doc({"runbook": URL, "categorical": ["payment"], "min_count": 10,
                                  "reference": {"type": "first_windows", "windows": 3},
                                  "policy": {"consecutive": 1}}),
                           "models": []})
    m = config.monitors[0]
    engine = DriftEngine(m)
    rng = np.random.default_rng(1)
    events = []
    for i in range(10):
        payment = ["card", "cash"] * 250 if i < 6 else ["card", "cash", "crypto", "crypto"] * 125
        events += engine.add(base(i, rng.normal(3.0 if i >= 6 else 0.0, 1.0, 500), payment)).events
    assert {e.kind for e in events} >= {"covariate", "schema"}  # a mean shift, a new category
    validator = schema_validator("drift_event.json")
    for e in events:
        assert e.runbook == URL
        message = e.to_message(emitted_at_ms=0)
        assert message["runbook"] == URL
        validator.validate(message)
        assert parse_drift_event(message).runbook == URL
        assert format_message(b"price", orjson.dumps(message), 0, 1, compact=False).endswith(f" runbook: {URL}")
    without = DriftEngine(parse_config({**doc({"min_count": 10, "reference": {
        "type": "first_windows", "windows": 3}, "policy": {"consecutive": 1}}), "models": []}).monitors[0])
    rng = np.random.default_rng(1)
    plain = [e for i in range(10) for e in without.add(base(i, rng.normal(3.0 if i >= 6 else 0.0, 1.0, 500),
                                                             ["card"] * 500)).events]
    assert plain and all("runbook" not in e.to_message(0) for e in plain)  # absent, as before the key existed
    for e in plain:
        validator.validate(e.to_message(0))
        assert parse_drift_event(e.to_message(0)).runbook is None
        assert "runbook" not in format_message(b"price", orjson.dumps(e.to_message(0)), 0, 1, compact=False)


def test_expectation_events_carry_the_runbook() -> None:
    from dataclasses import replace

    from features.monitors.expectation_checks import ExpectationMonitor
    from tests.monitors.test_expectation_checks import close_window, monitor

    m = replace(monitor([{"column": "km", "range": {"min": 0, "max": 10}, "mostly": 0.99}]), runbook="call Ann")
    rows = [{"area": "a", "ts": i, "km": 500.0, "surge": 1.0, "payment": "card", "ride_id": f"r{i}", "code": i,
             "pickup": 1, "dropoff": 2} for i in range(200)]
    summary, checks = close_window(m, rows)
    events = ExpectationMonitor(m).check(summary, checks).events
    assert events and all(e.kind == "expectation" and e.runbook == "call Ann" for e in events)
    message = events[0].to_message(0)
    schema_validator("drift_event.json").validate(message)
    assert format_message(None, orjson.dumps(message), 0, 0, compact=True).endswith(" runbook: call Ann")


def test_model_error_drift_events_carry_the_models_runbook() -> None:
    d = ErrorDrift(time_ms=600_000, version=1, began=(400_000, 401_000), before=(5000, 0.07, 0.25),
                   after=(300, 0.2, 0.4), delta=0.05)
    message = error_drift_event("cancel", None, "classification", d, 0, runbook="docs/runbooks.md#driftlinemodelerrordrift")
    schema_validator("drift_event.json").validate(message)
    assert parse_drift_event(message).runbook == "docs/runbooks.md#driftlinemodelerrordrift"
    assert describe_ends_with(message, " runbook: docs/runbooks.md#driftlinemodelerrordrift")
    assert "runbook" not in error_drift_event("cancel", None, "classification", d, 0)


def describe_ends_with(message: dict, suffix: str) -> bool:
    return format_message(b"cancel", orjson.dumps(message), 0, 0, compact=True).endswith(suffix)


def test_multi_line_runbook_text_stays_one_tail_line_and_a_bad_one_is_refused_by_the_schema() -> None:
    d = ErrorDrift(600_000, 1, (400_000, 401_000), (5000, 0.07, 0.25), (300, 0.2, 0.4), 0.05)
    message = error_drift_event("cancel", None, "classification", d, 0, runbook="1. check labels\n2. page #ml")
    line = format_message(b"cancel", orjson.dumps(message), 0, 0, compact=True)
    assert "\n" not in line and line.endswith("runbook: 1. check labels 2. page #ml")
    validator = schema_validator("drift_event.json")
    assert not validator.is_valid({**message, "runbook": 7}) and not validator.is_valid({**message, "runbook": ""})
    with pytest.raises(ValueError, match="runbook"):
        parse_drift_event({**message, "runbook": 7})
