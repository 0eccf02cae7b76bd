"""Config loading: every error names the key, what was expected, what was found, and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from features.config import load_config, parse_config
from features.config_values import ConfigError

from tests import ROOT


def _doc(**overrides: object) -> dict:
    doc = {
        "source": {"topic": "rides"},
        "schema": {
            "entity": "area",
            "event_time": "ts",
            "time_format": "epoch_ms",
            "fields": {"area": "string", "price": "float",
                       "payment": {"type": "category", "values": ["card", "cash"]}},
        },
    }
    for dotted, value in overrides.items():
        *parents, leaf = dotted.split("__")
        table = doc
        for p in parents:
            table = table[p]
        if value is None:
            del table[leaf]
        else:
            table[leaf] = value
    return doc


def test_shipped_demo_config_loads() -> None:
    config = load_config(ROOT / "deploy" / "rides.toml")
    assert config.source.topic == "rides"
    assert config.schema.entity == "area"
    assert config.schema.field("payment").values == ("card", "cash", "wallet")
    assert config.schema.field("surge").nullable
    assert config.source.lateness_ms == 10_000


def test_defaults() -> None:
    config = parse_config(_doc())
    assert config.source.dead_letter_topic == "rides.dlq"
    assert config.source.late_topic == "rides.late"
    assert config.source.limits.max_event_bytes == 65_536
    assert config.source.limits.max_future_ms == 86_400_000


@pytest.mark.parametrize(
    ("overrides", "key", "fragment"),
    [
        ({"source__topic": None}, "source.topic", "missing"),
        ({"source__topic": 3}, "source.topic", "a non-empty string"),
        ({"source__lateness": "ten seconds"}, "source.lateness", "a duration"),
        ({"source__partitions": 0}, "source.partitions", ">= 1"),
        ({"source__max_event_bytes": "big"}, "source.max_event_bytes", "an integer"),
        ({"source__topci": "x"}, "source.topci", "correct its spelling"),
        ({"schema__entity": "driver"}, "schema.entity", "one of the declared fields"),
        ({"schema__entity": "price"}, "schema.entity", "a non-nullable string, int or category field"),
        ({"schema__event_time": "price"}, "schema.event_time", "not also declared"),
        ({"schema__time_format": "unix"}, "schema.time_format", '"epoch_ms"'),
        ({"schema__fields__price": "flaot"}, "schema.fields.price.type", '"float"'),
        ({"schema__fields__price": 5}, "schema.fields.price", "a type name"),
        ({"schema__fields__price": {"type": "float", "values": ["a"]}}, "schema.fields.price.values", "category"),
        ({"schema__fields__price": {"type": "float", "nulable": True}}, "schema.fields.price.nulable", "spelling"),
        ({"schema__fields": {}}, "schema.fields", "at least one field"),
        ({"schema": None}, "schema", "a table"),
        ({"monitors": {}}, "monitors", "array of tables"),
        ({"monitor": {}}, "monitor", "known keys"),
    ],
)
def test_errors_name_key_expected_found_and_fix(overrides: dict, key: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(_doc(**overrides))
    error = info.value
    assert error.key == key
    message = str(error)
    assert f"`{key}`" in message
    assert "expected" in message and "found" in message and "Fix:" in message
    assert fragment in message


def test_unreadable_and_invalid_toml_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="readable TOML file"):
        load_config(tmp_path / "absent.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[source\ntopic = 'x'\n")
    with pytest.raises(ConfigError, match="valid TOML"):
        load_config(bad)
