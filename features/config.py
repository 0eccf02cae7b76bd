"""The driftline config file: one TOML file for the input topic, its schema, and the flows.

>>> config = parse_config({
...     "source": {"topic": "rides"},
...     "schema": {"entity": "area", "event_time": "ts",
...                "fields": {"area": "string", "price": "float"}},
... })
>>> config.source.dead_letter_topic, config.source.late_topic
('rides.dlq', 'rides.late')
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from features.config_values import (
    ConfigError,
    read_duration_ms,
    read_int,
    read_str,
    read_table,
    reject_unknown_keys,
)
from features.events import DecodeLimits
from features.windows.config import FeatureSet, parse_feature_sets
from features.kafka_settings import KafkaSettings, parse_kafka_settings
from features.samples.config import SampleSet, parse_sample_sets
from features.monitors.config import Monitor, parse_monitors
from features.models.config import ModelSpec, parse_models
from features.online_store import OnlineStoreConfig, parse_online_store
from features.schema import EventSchema, parse_schema


@dataclass(frozen=True)
class SourceConfig:
    """The input topic and what happens to events that cannot be used."""

    topic: str
    dead_letter_topic: str
    late_topic: str
    partitions: int
    limits: DecodeLimits
    lateness_ms: int


@dataclass(frozen=True)
class Config:
    """A whole config file."""

    source: SourceConfig
    schema: EventSchema
    feature_sets: tuple[FeatureSet, ...] = ()
    path: Path | None = None
    kafka: KafkaSettings = KafkaSettings()
    sample_sets: tuple[SampleSet, ...] = ()
    monitors: tuple[Monitor, ...] = ()
    models: tuple[ModelSpec, ...] = ()
    online_store: OnlineStoreConfig | None = None  # the latest vectors in Redis, when configured

    @property
    def dead_letter_flow(self) -> str:
        """The one flow that writes `<topic>.dlq`: every flow decodes the events topic, but
        a rejected event must be dead-lettered once, not once per flow. The first enabled
        flow in the order features, drift, model owns it; `ingest` when none is.

        >>> parse_config({"source": {"topic": "rides"},
        ...     "schema": {"entity": "a", "event_time": "ts", "fields": {"a": "string"}}}).dead_letter_flow
        'ingest'
        """
        if self.feature_sets or self.sample_sets:
            return "features"
        if self.monitors:
            return "drift"
        if self.models:
            return "model"
        return "ingest"


_TOP_KEYS = {"source", "schema", "feature_sets", "kafka", "sample_sets", "monitors", "models", "online_store"}
_SOURCE_KEYS = {"topic", "dead_letter_topic", "late_topic", "partitions", "max_event_bytes", "max_future", "lateness"}


def parse_source(table: Mapping[str, Any], prefix: str = "source") -> SourceConfig:
    """The `[source]` table.

    >>> parse_source({"topic": "rides", "lateness": "30s"}).lateness_ms
    30000
    """
    reject_unknown_keys(table, _SOURCE_KEYS, prefix)
    topic = read_str(table, "topic", prefix, example="rides")
    return SourceConfig(
        topic=topic,
        dead_letter_topic=read_str(table, "dead_letter_topic", prefix, default=f"{topic}.dlq"),
        late_topic=read_str(table, "late_topic", prefix, default=f"{topic}.late"),
        partitions=read_int(table, "partitions", prefix, default=3, minimum=1),
        limits=DecodeLimits(
            max_event_bytes=read_int(table, "max_event_bytes", prefix, default=65_536, minimum=64),
            max_future_ms=read_duration_ms(table, "max_future", prefix, default="1d"),
        ),
        lateness_ms=read_duration_ms(table, "lateness", prefix, default="10s"),
    )


def parse_config(document: Mapping[str, Any], path: Path | None = None) -> Config:
    """A parsed TOML document as a Config; raises ConfigError naming the key on a problem."""
    reject_unknown_keys(document, _TOP_KEYS, "")
    schema = parse_schema(read_table(document, "schema", "", required=True))
    base_dir = path.parent if path is not None else None
    source = parse_source(read_table(document, "source", "", required=True))
    feature_sets = parse_feature_sets(document.get("feature_sets"), schema, base_dir)
    return Config(
        source=source,
        schema=schema,
        feature_sets=feature_sets,
        path=path,
        kafka=parse_kafka_settings(read_table(document, "kafka", "", required=False)),
        sample_sets=parse_sample_sets(document.get("sample_sets"), schema),
        monitors=parse_monitors(document.get("monitors"), schema, base_dir),
        models=parse_models(document.get("models"), schema, source.topic, feature_sets, base_dir),
        online_store=parse_online_store(document.get("online_store"), feature_sets),
    )


def load_config(path: str | Path) -> Config:
    """Read and check a config file.

    >>> load_config("deploy/rides.toml").source.topic   # doctest: +SKIP
    'rides'
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError("(file)", "a readable TOML file", str(path), f"check the path: {exc.strerror}.") from None
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("(file)", "valid TOML", f"{path}: {exc}", "correct the TOML syntax at that line.") from None
    return parse_config(document, path)
