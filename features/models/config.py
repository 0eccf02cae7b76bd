"""Online models in the config: which River estimator, on which inputs, joined to which labels.

```toml
[[models]]
name = "cancel"
kind = "hoeffding_tree_classifier"     # or an import path, e.g. "river.linear_model.LogisticRegression"
params = { grace_period = 100 }
inputs = ["price", "distance_km", "surge", "eta_min", "payment", "area_10m.mean_price"]
preprocessing = { scale = true, one_hot = ["payment"] }
labels = { topic = "rides.labels", key = "ride_id", field = "cancelled", ttl = "10m" }
segment_by = "area"                    # optional: one model per area
metrics_window = "5m"
challenger = { start = "on_drift" }    # a fresh copy of the champion after error drift
promotion = { window = 500, margin = 0.02 }  # optional: test_set = "test.jsonl", test_margin = 0.01
snapshot_every = "5m"
order = "event_time"                   # or "arrival": predict as events arrive (docs/models.md)
placement = { by = "load", weights_file = "sample.jsonl" }  # segments to workers by load
runbook = "docs/runbooks.md#driftlinemodelerrordrift"   # text or URL, carried in its error-drift events
```

>>> from features.schema import parse_schema
>>> schema = parse_schema({"entity": "area", "event_time": "ts", "fields": {
...     "ride_id": "string", "area": "string", "price": "float"}})
>>> spec = parse_model({"name": "m", "kind": "hoeffding_tree_classifier", "inputs": ["price"],
...     "labels": {"topic": "rides.labels", "key": "ride_id", "field": "cancelled"}}, schema, "models[0]")
>>> spec.topic, spec.task, type(build_estimator(spec.kind, spec.params)).__name__
('predictions.m', 'classification', 'HoeffdingTreeClassifier')
"""

from __future__ import annotations

import functools
import importlib
import inspect
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from features.config_values import (
    ConfigError,
    join_key,
    read_bool,
    read_choice,
    read_duration_ms,
    read_float,
    read_int,
    read_str,
    read_runbook,
    read_str_list,
    read_table,
    reject_unknown_keys,
)
from features.windows.config import FeatureSet
from features.schema import EventSchema

KINDS = {
    "hoeffding_tree_classifier": "river.tree.HoeffdingTreeClassifier",
    "hoeffding_adaptive_tree_classifier": "river.tree.HoeffdingAdaptiveTreeClassifier",
    "hoeffding_tree_regressor": "river.tree.HoeffdingTreeRegressor",
}
CHALLENGER_STARTS = ("on_drift", "always")
ORDERS = ("event_time", "arrival")
PLACEMENTS = ("hash", "load")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
_MODEL_KEYS = {"name", "kind", "params", "inputs", "preprocessing", "labels", "segment_by", "metrics_window",
               "challenger", "promotion", "snapshot_every", "adwin_delta", "max_pending", "topic",
               "metrics_topic", "snapshots_topic", "drift_topic", "order", "placement", "runbook"}


@dataclass(frozen=True)
class LabelSpec:
    """Where a model's labels come from and how they join its predictions.

    `key` names the event field and the label field holding the join key; a label joins
    the prediction with the same key made at most `ttl_ms` of event time before it.
    """

    topic: str
    key: str
    field: str
    time_field: str = "ts"
    ttl_ms: int = 600_000


@dataclass(frozen=True)
class Preprocessing:
    """River preprocessing in front of the estimator: standard scaling and one-hot encoding."""

    scale: tuple[str, ...] = ()
    one_hot: tuple[str, ...] = ()


@dataclass(frozen=True)
class Placement:
    """How a segmented model's segments go to workers: `hash` (Bytewax's hash of 16 shards; a
    recovery directory resumes with any worker count) or `load` (one shard per worker, the
    segments spread by weight: configured `weights`, or counted in `weights_file`, a JSONL
    sample of events; fixed for a recovery directory's worker count)."""

    by: str = "hash"
    weights: tuple[tuple[str, float], ...] = ()
    weights_file: Path | None = None


@dataclass(frozen=True)
class FeatureInput:
    """A model input taken from a feature set: `<set>.<feature>` of the event's entity."""

    name: str  # "<set>.<feature>", the key in the input vector
    feature_set: str
    feature: str
    numeric: bool


@dataclass(frozen=True)
class ChallengerSpec:
    """A challenger trained on the same stream: started with the champion or after error drift."""

    kind: str
    params: dict[str, Any] = field(default_factory=dict, hash=False)
    start: str = "on_drift"


@dataclass(frozen=True)
class PromotionTestSet:
    """The promotion's sanity check: a challenger may not be worse than the champion by more
    than `margin` (in the model's metric: accuracy, or MAE) on the labelled events of `path`,
    a JSONL file (`features.models.fixed_test_set`)."""

    path: Path
    margin: float = 0.0


@dataclass(frozen=True)
class ModelSpec:
    """One `[[models]]` entry, checked against the schema."""

    name: str
    kind: str
    task: str  # "classification" or "regression"
    inputs: tuple[str, ...]  # every input in the vector: event fields, then feature inputs
    labels: LabelSpec
    params: dict[str, Any] = field(default_factory=dict, hash=False)
    preprocessing: Preprocessing = Preprocessing()
    segment_by: str | None = None
    metrics_window_ms: int = 300_000
    challenger: ChallengerSpec | None = None
    promotion_window: int = 500
    promotion_margin: float = 0.02
    promotion_test: PromotionTestSet | None = None  # `promotion.test_set` and `promotion.test_margin`
    snapshot_every_ms: int = 300_000
    adwin_delta: float = 0.002
    max_pending: int = 200_000
    topic: str = ""
    metrics_topic: str = "model.metrics"
    snapshots_topic: str = "model.snapshots"
    drift_topic: str = "drift.events"
    features: tuple[FeatureInput, ...] = ()  # the inputs read from feature sets
    order: str = "event_time"  # or "arrival" (docs/models.md, Order)
    placement: Placement = Placement()
    runbook: str | None = None  # what to do on error drift (text or URL), carried in its drift events

    @functools.cached_property  # read per event
    def field_inputs(self) -> tuple[str, ...]:
        """The inputs that are event fields."""
        from_sets = {f.name for f in self.features}
        return tuple(name for name in self.inputs if name not in from_sets)


def estimator_class(kind: str) -> type:
    """The River estimator class a kind names (a short name or an import path).

    >>> estimator_class("river.linear_model.LogisticRegression").__name__
    'LogisticRegression'
    """
    path = KINDS.get(kind, kind)
    module_name, _, class_name = path.rpartition(".")
    if not module_name:
        raise ValueError(f"{kind!r} is neither a known kind nor a module.Class import path")
    try:
        found = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"cannot import {path}: {exc}") from None
    if not isinstance(found, type):
        raise ValueError(f"{path} is not a class")
    return found


def build_estimator(kind: str, params: Mapping[str, Any]) -> Any:
    """A fresh estimator. Estimators with a `seed` parameter get seed 0 unless one is given,
    so a replay and a Kafka run train identical models.

    >>> build_estimator("hoeffding_adaptive_tree_classifier", {}).seed
    0
    """
    cls = estimator_class(kind)
    arguments = dict(params)
    if "seed" in inspect.signature(cls).parameters and "seed" not in arguments:
        arguments["seed"] = 0
    return cls(**arguments)


def task_of(estimator: Any) -> str | None:
    """"classification" or "regression" for a River estimator, None for anything else.

    >>> from river import tree
    >>> task_of(tree.HoeffdingTreeRegressor()), task_of(object())
    ('regression', None)
    """
    from river import base

    if isinstance(estimator, base.Classifier):
        return "classification"
    if isinstance(estimator, base.Regressor):
        return "regression"
    return None


def _estimator(table: Mapping[str, Any], prefix: str, default_kind: str | None = None,
               default_params: Mapping[str, Any] | None = None) -> tuple[str, dict[str, Any], str]:
    if "kind" in table or default_kind is None:  # a challenger without a kind copies the champion
        kind, params = read_str(table, "kind", prefix, example="hoeffding_tree_classifier"), {}
    else:
        kind, params = default_kind, dict(default_params or {})
    params.update(read_table(table, "params", prefix))
    try:
        estimator = build_estimator(kind, params)
    except ValueError as exc:
        raise ConfigError(join_key(prefix, "kind"), f"one of {', '.join(KINDS)} or a River import path", kind,
                          f"{exc}; check the spelling.") from None
    except TypeError as exc:
        raise ConfigError(join_key(prefix, "params"), f"parameters of {KINDS.get(kind, kind)}", params,
                          f"{exc}; see the estimator's River documentation.") from None
    task = task_of(estimator)
    if task is None:
        raise ConfigError(join_key(prefix, "kind"), "a River classifier or regressor", kind,
                          "name a class deriving from river.base.Classifier or river.base.Regressor.")
    return kind, params, task


def parse_labels(table: Mapping[str, Any], schema: EventSchema, prefix: str, source_topic: str) -> LabelSpec:
    """The `labels` table: topic, join key, label field, label time field, TTL."""
    reject_unknown_keys(table, {"topic", "key", "field", "time_field", "ttl"}, prefix)
    key = read_str(table, "key", prefix, example="ride_id")
    if key not in schema.field_names or schema.field(key).nullable:
        raise ConfigError(join_key(prefix, "key"), "a declared non-nullable event field", key,
                          "name the event field that labels carry too, e.g. key = \"ride_id\".")
    ttl = read_duration_ms(table, "ttl", prefix, default="10m")
    if ttl <= 0:
        raise ConfigError(join_key(prefix, "ttl"), "a duration above zero", ttl, 'write e.g. ttl = "10m".')
    return LabelSpec(topic=read_str(table, "topic", prefix, default=f"{source_topic}.labels"), key=key,
                     field=read_str(table, "field", prefix, example="cancelled"),
                     time_field=read_str(table, "time_field", prefix, default="ts"), ttl_ms=ttl)


def _inputs(table: Mapping[str, Any], prefix: str, schema: EventSchema,
            feature_sets: tuple[FeatureSet, ...]) -> tuple[tuple[str, ...], tuple[FeatureInput, ...]]:
    """The `inputs` list: event fields (in order), then `<set>.<feature>` inputs (in order).

    >>> from features.schema import parse_schema
    >>> from features.windows.config import parse_feature_set
    >>> schema = parse_schema({"entity": "area", "event_time": "ts", "fields": {"area": "string", "price": "float"}})
    >>> fs = parse_feature_set({"name": "a1m", "window": {"type": "tumbling", "length": "1m"},
    ...                         "features": [{"name": "rides", "agg": "count"}]}, schema, "feature_sets[0]")
    >>> names, features = _inputs({"inputs": ["a1m.rides", "price"]}, "models[0]", schema, (fs,))
    >>> names, features[0].feature_set, features[0].numeric
    (('price', 'a1m.rides'), 'a1m', True)
    """
    key = join_key(prefix, "inputs")
    names = read_str_list(table, "inputs", prefix, default=())
    if not names:
        raise ConfigError(key, "a non-empty list of event fields or <feature set>.<feature> names",
                          table.get("inputs"), 'write inputs = ["price", "eta_min"].')
    fields: list[str] = []
    features: list[FeatureInput] = []
    for name in names:
        if name in fields or name in (f.name for f in features):
            raise ConfigError(key, "each input once", name, f"remove the second {name!r}.")
        if name in schema.field_names:
            fields.append(name)
            continue
        found = [(fs, spec) for fs in feature_sets for spec in fs.features if name == f"{fs.name}.{spec.name}"]
        if not found:
            sets = ", ".join(fs.name for fs in feature_sets) or "none configured"
            raise ConfigError(key, f"declared fields ({', '.join(schema.field_names)}) or <feature set>.<feature> "
                              f"names (feature sets: {sets})", name,
                              f"declare `{name}` under [schema.fields], or name a feature as \"area_1m.rides\".")
        fs, spec = found[0]
        # Every aggregation is a number except first/last of a non-numeric field.
        numeric = spec.agg not in ("first", "last") or schema.field(spec.field or "").is_numeric
        features.append(FeatureInput(name, fs.name, spec.name, numeric))
    return tuple(fields) + tuple(f.name for f in features), tuple(features)


def parse_placement(table: Mapping[str, Any], prefix: str, segment_by: str | None,
                    base_dir: Path | None) -> Placement:
    """The `placement` key: `"hash"`, `"load"`, or `{ by, weights, weights_file }`.

    >>> parse_placement({"placement": {"by": "load", "weights": {"a": 3, "b": 1}}}, "models[0]", "area", None)
    Placement(by='load', weights=(('a', 3.0), ('b', 1.0)), weights_file=None)
    """
    raw = table.get("placement")
    key = join_key(prefix, "placement")
    if raw is None:
        return Placement()
    if isinstance(raw, str):
        raw = {"by": raw}
    if not isinstance(raw, dict):
        raise ConfigError(key, '"hash", "load" or a table { by, weights, weights_file }', raw,
                          'write placement = { by = "load", weights_file = "sample.jsonl" }.')
    reject_unknown_keys(raw, {"by", "weights", "weights_file"}, key)
    by = read_choice(raw, "by", key, PLACEMENTS, default="hash")
    weights_table = read_table(raw, "weights", key)
    weights = []
    for segment, weight in weights_table.items():
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not weight >= 0:
            raise ConfigError(join_key(key, f"weights.{segment}"), "a number at or above 0", weight,
                              "give each segment its share of the events, e.g. its event count.")
        weights.append((str(segment), float(weight)))
    path = raw.get("weights_file")
    weights_file = None
    if path is not None:
        weights_file = Path(read_str(raw, "weights_file", key))
        if not weights_file.is_absolute() and base_dir is not None:
            weights_file = base_dir / weights_file
    if by == "load" and segment_by is None:
        raise ConfigError(join_key(key, "by"), '"hash" for a model without segment_by', by,
                          "placement by load spreads segments over workers: set segment_by, or drop placement.")
    if by == "hash" and (weights or weights_file):
        raise ConfigError(join_key(key, "by"), '"load" when weights are given', by, 'write by = "load".')
    return Placement(by, tuple(weights), weights_file)


def parse_promotion_test(promotion: Mapping[str, Any], prefix: str, task: str, challenger: ChallengerSpec | None,
                         base_dir: Path | None) -> PromotionTestSet | None:
    """`promotion.test_set` (a path, relative to the config's directory) and `promotion.test_margin`
    (default 0: the challenger must do at least as well; accuracy margins are at most 1). The
    file itself is read when the model flow starts (`features.models.fixed_test_set`).

    >>> parse_promotion_test({"test_set": "/data/t.jsonl", "test_margin": 0.01}, "models[0].promotion",
    ...                      "classification", ChallengerSpec("hoeffding_tree_classifier"), None)
    PromotionTestSet(path=PosixPath('/data/t.jsonl'), margin=0.01)
    """
    if "test_set" not in promotion:
        if "test_margin" in promotion:
            raise ConfigError(join_key(prefix, "test_margin"), "a margin with a test set", promotion["test_margin"],
                              'name the test set too: promotion = { test_set = "test.jsonl", test_margin = 0.01 }, '
                              "or drop test_margin.")
        return None
    path = Path(read_str(promotion, "test_set", prefix, example="test.jsonl"))
    if challenger is None:
        raise ConfigError(join_key(prefix, "test_set"), "a test set for a model with a challenger", str(path),
                          'the test set checks a challenger before it replaces the champion: add challenger = '
                          '{ start = "on_drift" }, or drop promotion.test_set.')
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    high = 1.0 if task == "classification" else None  # accuracy is within [0, 1]; an MAE margin is in label units
    return PromotionTestSet(path, read_float(promotion, "test_margin", prefix, default=0.0, low=0.0, high=high))


def parse_model(table: Mapping[str, Any], schema: EventSchema, prefix: str, source_topic: str = "events",
                feature_sets: tuple[FeatureSet, ...] = (), base_dir: Path | None = None) -> ModelSpec:
    """One `[[models]]` entry."""
    reject_unknown_keys(table, _MODEL_KEYS, prefix)
    name = read_str(table, "name", prefix, example="cancel")
    if not _NAME.match(name):
        raise ConfigError(join_key(prefix, "name"), "letters, digits, _ . - (starting with a letter)", name,
                          "rename the model; the name is part of topic names and message ids.")
    kind, params, task = _estimator(table, prefix)
    inputs, features = _inputs(table, prefix, schema, feature_sets)
    pre_prefix = join_key(prefix, "preprocessing")
    pre_table = read_table(table, "preprocessing", prefix)
    reject_unknown_keys(pre_table, {"scale", "one_hot"}, pre_prefix)
    numeric_features = {f.name for f in features if f.numeric}
    numeric = tuple(n for n in inputs if n in numeric_features or (n in schema.field_names and schema.field(n).is_numeric))
    if isinstance(pre_table.get("scale"), bool):
        scale = numeric if read_bool(pre_table, "scale", pre_prefix) else ()
    else:
        scale = read_str_list(pre_table, "scale", pre_prefix, default=())
    one_hot = read_str_list(pre_table, "one_hot", pre_prefix, default=())
    for key, names in (("scale", scale), ("one_hot", one_hot)):
        stray = [n for n in names if n not in inputs]
        if stray:
            raise ConfigError(join_key(pre_prefix, key), "fields listed in inputs", stray, "add them to inputs.")
    if set(scale) - set(numeric):
        raise ConfigError(join_key(pre_prefix, "scale"), "numeric fields", sorted(set(scale) - set(numeric)),
                          "scale only float or int fields; one-hot encode categories.")
    segment_by = table.get("segment_by")
    if segment_by is not None:
        segment_by = read_str(table, "segment_by", prefix)
        if segment_by not in schema.field_names or schema.field(segment_by).nullable:
            raise ConfigError(join_key(prefix, "segment_by"), "a declared non-nullable field", segment_by,
                              "segment by an identifier such as the entity field.")
        entities = {fs.entity for fs in feature_sets if any(f.feature_set == fs.name for f in features)}
        if entities - {segment_by}:
            raise ConfigError(join_key(prefix, "segment_by"), f"the entity field of the feature sets the inputs read "
                              f"({', '.join(sorted(entities))})", segment_by,
                              "a segment's model must see every event of the entities whose features it reads: "
                              f"segment by {sorted(entities)[0]!r}, or drop segment_by.")
    challenger = None
    if "challenger" in table:
        c_prefix = join_key(prefix, "challenger")
        c_table = read_table(table, "challenger", prefix)
        reject_unknown_keys(c_table, {"kind", "params", "start"}, c_prefix)
        c_kind, c_params, c_task = _estimator(c_table, c_prefix, default_kind=kind, default_params=params)
        if c_task != task:
            raise ConfigError(join_key(c_prefix, "kind"), f"a {task} estimator like the champion", c_kind,
                              "pick an estimator for the same task.")
        challenger = ChallengerSpec(c_kind, c_params, read_choice(c_table, "start", c_prefix, CHALLENGER_STARTS,
                                                                  default="on_drift"))
    promo_prefix = join_key(prefix, "promotion")
    promotion = read_table(table, "promotion", prefix)
    reject_unknown_keys(promotion, {"window", "margin", "test_set", "test_margin"}, promo_prefix)
    durations = {}
    for key, default in (("metrics_window", "5m"), ("snapshot_every", "5m")):
        durations[key] = read_duration_ms(table, key, prefix, default=default)
        if durations[key] <= 0:
            raise ConfigError(join_key(prefix, key), "a duration above zero", durations[key], f'write {key} = "5m".')
    return ModelSpec(
        name=name, kind=kind, task=task, inputs=inputs,
        labels=parse_labels(read_table(table, "labels", prefix, required=True), schema,
                            join_key(prefix, "labels"), source_topic),
        params=params, preprocessing=Preprocessing(scale, one_hot), segment_by=segment_by,
        metrics_window_ms=durations["metrics_window"], challenger=challenger,
        promotion_window=read_int(promotion, "window", promo_prefix, default=500, minimum=1),
        promotion_margin=read_float(promotion, "margin", promo_prefix, default=0.02, low=0.0),
        promotion_test=parse_promotion_test(promotion, promo_prefix, task, challenger, base_dir),
        snapshot_every_ms=durations["snapshot_every"],
        adwin_delta=read_float(table, "adwin_delta", prefix, default=0.002, low=1e-12, high=1.0),
        max_pending=read_int(table, "max_pending", prefix, default=200_000, minimum=1),
        topic=read_str(table, "topic", prefix, default=f"predictions.{name}"),
        metrics_topic=read_str(table, "metrics_topic", prefix, default="model.metrics"),
        snapshots_topic=read_str(table, "snapshots_topic", prefix, default="model.snapshots"),
        drift_topic=read_str(table, "drift_topic", prefix, default="drift.events"),
        features=features,
        order=read_choice(table, "order", prefix, ORDERS, default="event_time"),
        placement=parse_placement(table, prefix, segment_by, base_dir),
        runbook=read_runbook(table, prefix),
    )


def parse_models(raw: Any, schema: EventSchema, source_topic: str,
                 feature_sets: tuple[FeatureSet, ...] = (), base_dir: Path | None = None) -> tuple[ModelSpec, ...]:
    """The `[[models]]` array (absent: no models)."""
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(t, dict) for t in raw):
        raise ConfigError("models", "an array of tables ([[models]])", raw, "write each model as a [[models]] section.")
    models = tuple(parse_model(t, schema, f"models[{i}]", source_topic, feature_sets, base_dir) for i, t in enumerate(raw))
    seen: set[str] = set()
    for i, model in enumerate(models):
        if model.name in seen:
            raise ConfigError(f"models[{i}].name", "a unique model name", model.name, "rename one of the two models.")
        if model.labels.topic == source_topic:
            raise ConfigError(f"models[{i}].labels.topic", "a topic other than the events topic", source_topic,
                              'labels arrive on their own topic, e.g. "<events topic>.labels".')
        seen.add(model.name)
    return models
