"""`[[models]]` in the config: defaults, River kinds by name or import path, errors that name the key."""

from __future__ import annotations

import pytest

from features.config import parse_config
from features.config_values import ConfigError

BASE = {
    "source": {"topic": "rides"},
    "schema": {"entity": "area", "event_time": "ts",
               "fields": {"ride_id": "string", "area": "string", "price": "float", "surge": {"type": "float",
                          "nullable": True}, "payment": {"type": "category", "values": ["card", "cash"]}}},
}


def model(**changes: object) -> dict:
    entry = {"name": "cancel", "kind": "hoeffding_tree_classifier", "inputs": ["price", "payment"],
             "labels": {"key": "ride_id", "field": "cancelled"}}
    entry.update(changes)
    return entry


def parse(*models: dict):
    return parse_config({**BASE, "models": list(models)})


def test_defaults_and_dead_letter_owner() -> None:
    config = parse(model())
    spec = config.models[0]
    assert (spec.topic, spec.labels.topic, spec.labels.ttl_ms, spec.task) == (
        "predictions.cancel", "rides.labels", 600_000, "classification")
    assert spec.challenger is None and spec.segment_by is None and config.dead_letter_flow == "model"


def test_import_path_challenger_and_preprocessing() -> None:
    spec = parse(model(kind="river.linear_model.LogisticRegression", params={"l2": 0.01},
                       preprocessing={"scale": True, "one_hot": ["payment"]}, segment_by="area",
                       challenger={"start": "always"}, promotion={"window": 100, "margin": 0.05})).models[0]
    assert spec.preprocessing.scale == ("price",) and spec.preprocessing.one_hot == ("payment",)
    assert spec.challenger.kind == spec.kind and spec.challenger.params == {"l2": 0.01}
    assert (spec.promotion_window, spec.promotion_margin) == (100, 0.05)


@pytest.mark.parametrize("changes, key", [
    ({"kind": "river.tree.NoSuchTree"}, "models[0].kind"),
    ({"kind": "river.preprocessing.StandardScaler"}, "models[0].kind"),
    ({"params": {"grace_periodd": 3}}, "models[0].params"),
    ({"inputs": ["prise"]}, "models[0].inputs"),
    ({"inputs": []}, "models[0].inputs"),
    ({"labels": {"key": "surge", "field": "y"}}, "models[0].labels.key"),
    ({"labels": {"key": "ride_id", "field": "y", "ttl": "0s"}}, "models[0].labels.ttl"),
    ({"labels": {"key": "ride_id", "field": "y", "topic": "rides"}}, "models[0].labels.topic"),
    ({"segment_by": "surge"}, "models[0].segment_by"),
    ({"preprocessing": {"scale": ["payment"]}}, "models[0].preprocessing.scale"),
    ({"challenger": {"kind": "hoeffding_tree_regressor"}}, "models[0].challenger.kind"),
    ({"challenger": {"start": "sometimes"}}, "models[0].challenger.start"),
    ({"promotion": {"window": 0}}, "models[0].promotion.window"),
    ({"name": "a b"}, "models[0].name"),
])
def test_bad_model_configs_name_the_key(changes: dict, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(model(**changes))
    assert caught.value.key == key


def test_model_names_are_unique() -> None:
    with pytest.raises(ConfigError) as caught:
        parse(model(), model())
    assert caught.value.key == "models[1].name"


FEATURE_SETS = [
    {"name": "area_1m", "window": {"type": "tumbling", "length": "1m"},
     "features": [{"name": "rides", "agg": "count"}, {"name": "last_payment", "agg": "last", "field": "payment"}]},
    {"name": "by_payment", "entity": "payment", "window": {"type": "last_n", "n": 5},
     "features": [{"name": "median_price", "agg": "median", "field": "price"}]},
]


def parse_with_sets(*models: dict):
    return parse_config({**BASE, "feature_sets": FEATURE_SETS, "models": list(models)})


def test_feature_inputs_follow_the_event_fields() -> None:
    spec = parse_with_sets(model(inputs=["area_1m.rides", "price", "area_1m.last_payment", "payment"],
                                 preprocessing={"scale": True, "one_hot": ["area_1m.last_payment"]},
                                 segment_by="area")).models[0]
    assert spec.inputs == ("price", "payment", "area_1m.rides", "area_1m.last_payment")
    assert spec.field_inputs == ("price", "payment")
    assert [(f.feature_set, f.feature, f.numeric) for f in spec.features] == [
        ("area_1m", "rides", True), ("area_1m", "last_payment", False)]
    assert spec.preprocessing.scale == ("price", "area_1m.rides")  # numeric feature inputs are scaled too


@pytest.mark.parametrize("changes, key, words", [
    ({"inputs": ["area_1m.ridez"]}, "models[0].inputs", "area_1m, by_payment"),
    ({"inputs": ["area_5m.rides"]}, "models[0].inputs", "<feature set>.<feature>"),
    ({"inputs": ["price", "price"]}, "models[0].inputs", "each input once"),
    ({"inputs": ["area_1m.rides"], "preprocessing": {"scale": ["area_1m.last_payment"]}},
     "models[0].preprocessing.scale", "inputs"),
    ({"inputs": ["area_1m.last_payment"], "preprocessing": {"scale": ["area_1m.last_payment"]}},
     "models[0].preprocessing.scale", "numeric"),
    # A segment's model must see every event of the entities whose features it reads.
    ({"inputs": ["by_payment.median_price"], "segment_by": "area"}, "models[0].segment_by", "payment"),
])
def test_bad_feature_inputs_name_the_key(changes: dict, key: str, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_with_sets(model(**changes))
    assert caught.value.key == key and words in str(caught.value)
