"""Monitors in the config: defaults, and errors that name the key and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from features.config import parse_config
from features.config_values import ConfigError
from features.monitors.reference import build_references, read_references, write_references
from features.events import Event
from features.monitors.config import DEFAULT_CATEGORICAL_TESTS, DEFAULT_NUMERIC_TESTS


def doc(**monitor: object) -> dict:
    entry = {"name": "inputs", "numeric": ["price"], "categorical": ["payment"], **monitor}
    return {
        "source": {"topic": "rides"},
        "schema": {"entity": "area", "event_time": "ts",
                   "fields": {"area": "string", "price": "float", "payment": "category", "n": "int"}},
        "monitors": [entry],
    }


def test_defaults_and_dead_letter_ownership() -> None:
    config = parse_config(doc())
    m = config.monitors[0]
    assert (m.window_ms, m.scales_ms, m.min_count, m.kind) == (60_000, (60_000,), 100, "covariate")
    assert (m.reference.type, m.reference.windows) == ("first_windows", 10)
    assert m.numeric_tests == DEFAULT_NUMERIC_TESTS and m.categorical_tests == DEFAULT_CATEGORICAL_TESTS
    assert (m.policy.fdr, m.policy.consecutive, m.policy.cooldown_ms) == (0.01, 2, 3_600_000)
    assert config.dead_letter_flow == "drift"


def test_full_monitor(tmp_path: Path) -> None:
    config = parse_config(doc(window="30s", numeric=["price", "n"], scales=["5m", "30s", "1h"], kind="prediction",
                              reference={"type": "file", "path": "ref.json"},
                              numeric_tests=["ks", "wasserstein"], thresholds={"ks": 0.1},
                              critical={"ks": 0.3}, policy={"fdr": 0.05, "cooldown": "10m"},
                              multivariate={"sample": 50}, events_topic="alerts"),
                          path=tmp_path / "c.toml")
    m = config.monitors[0]
    assert m.scales_ms == (30_000, 300_000, 3_600_000)
    assert m.reference.path == tmp_path / "ref.json"
    assert m.policy.threshold("ks") == 0.1 and m.policy.critical_level("ks") == 0.3
    assert m.policy.cooldown_ms == 600_000 and m.events_topic == "alerts"


@pytest.mark.parametrize(
    ("monitor", "key", "fragment"),
    [
        ({"numeric": ["prize"]}, "monitors[0].numeric", "declare 'prize'"),
        ({"numeric": ["payment"], "categorical": []}, "monitors[0].numeric", "float, int"),
        ({"numeric": [], "categorical": []}, "monitors[0].numeric", "at least one"),
        ({"scales": ["90s"]}, "monitors[0].scales[0]", "multiple of the window"),
        ({"scales": ["1m", "soon"]}, "monitors[0].scales[1]", "multiple of the window"),
        ({"reference": {"type": "previous_period", "period": "30s"}}, "monitors[0].reference.period",
         "multiple of the window"),
        ({"reference": {"type": "last_week"}}, "monitors[0].reference.type", "first_windows"),
        ({"numeric_tests": ["kss"]}, "monitors[0].numeric_tests", "correct its spelling"),
        ({"thresholds": {"pis": 0.1}}, "monitors[0].thresholds.pis", "test name"),
        ({"policy": {"fdr": 2}}, "monitors[0].policy.fdr", "in [0.0, 1.0]"),
        ({"policy": {"min_severity": "loud"}}, "monitors[0].policy.min_severity", '"warning"'),
        ({"multivariate": {}}, "monitors[0].multivariate", "two numeric columns"),
        ({"name": "a b"}, "monitors[0].name", "letters"),
        ({"windw": "1m"}, "monitors[0].windw", "spelling"),
    ],
)
def test_errors_name_key_and_fix(monitor: dict, key: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(doc(**monitor))
    assert info.value.key == key
    assert fragment in str(info.value) and "Fix:" in str(info.value)


def test_duplicate_monitor_names() -> None:
    document = doc()
    document["monitors"].append(dict(document["monitors"][0]))
    with pytest.raises(ConfigError, match="unique monitor name"):
        parse_config(document)


def test_reference_file_round_trip(tmp_path: Path) -> None:
    config = parse_config(doc(numeric=["price", "n"], multivariate={"sample": 20}))
    events = [Event("a", 1_000 * i, {"price": float(i % 17), "n": i % 5, "payment": ["card", "cash"][i % 2]})
              for i in range(500)]
    refs = build_references(config.monitors, events)
    path = tmp_path / "ref.json"
    write_references(path, refs)
    back = read_references(path)["inputs"]
    assert back.summary == refs["inputs"].summary
    assert back.summary.columns["payment"].counts == {"card": 250, "cash": 250}
    assert back.sample is not None and back.sample.seen == 500 and len(back.sample.sample()) == 20
    assert (back.summary.start_ms, back.summary.end_ms) == (0, 499_001)
