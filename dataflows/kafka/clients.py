"""Every Kafka client driftline makes gets its properties here, so security set once reaches all.

`client_config` merges driftline's per-client defaults, the user's `KafkaSettings` (the
config's `[kafka]` table and `DRIFTLINE_KAFKA_*` variables; they win over the defaults) and
the bootstrap servers. `new_client` builds a client and turns librdkafka's refusal of a
property into a `ConfigError` with every secret value redacted, so a bad `sasl.password`
never reaches a log or a terminal.

>>> from features.kafka_settings import KafkaSettings
>>> s = KafkaSettings((("security.protocol", "SASL_SSL"), ("linger.ms", "5")))
>>> {k: v for k, v in client_config("k:9092", s, {"linger.ms": 20, "acks": "all"}).items() if k != "logger"}
{'linger.ms': '5', 'acks': 'all', 'security.protocol': 'SASL_SSL', 'bootstrap.servers': 'k:9092'}
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from features.config_values import ConfigError
from features.kafka_settings import KafkaSettings, parse_kafka_settings

Client = TypeVar("Client")
KAFKA_LOGGER = logging.getLogger("driftline.kafka")


def client_config(bootstrap: str, settings: KafkaSettings, defaults: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The properties of one client: `defaults`, overridden by `settings`, and the bootstrap
    servers; librdkafka's log lines go to the `driftline.kafka` logger (JSON logs stay JSON)."""
    return {"logger": KAFKA_LOGGER, **(defaults or {}), **settings.as_dict(), "bootstrap.servers": bootstrap}


def new_client(factory: Callable[[dict[str, Any]], Client], config: dict[str, Any], settings: KafkaSettings) -> Client:
    """`factory(config)` (a Consumer, Producer or AdminClient); a property librdkafka refuses
    becomes a ConfigError whose text has the secret values redacted.

    >>> new_client(AdminClient, {"security.protocol": "bogus"}, KafkaSettings())
    Traceback (most recent call last):
    ...
    features.config_values.ConfigError: config key `kafka`: expected properties librdkafka accepts, found 'Invalid value "bogus" for configuration property "security.protocol"'. Fix: check the [kafka] table and the DRIFTLINE_KAFKA_* variables against librdkafka's CONFIGURATION.md.
    """
    try:
        return factory(config)
    except (KafkaException, ValueError, TypeError) as exc:
        error = exc.args[0] if isinstance(exc, KafkaException) and exc.args else exc
        text = error.str() if hasattr(error, "str") else str(error)
        raise ConfigError("kafka", "properties librdkafka accepts", settings.redact(text),
                          "check the [kafka] table and the DRIFTLINE_KAFKA_* variables against "
                          "librdkafka's CONFIGURATION.md.") from None


def admin_client(bootstrap: str, settings: KafkaSettings, defaults: Mapping[str, Any] | None = None) -> AdminClient:
    """An admin client (topic metadata, topic creation) with the user's properties."""
    return new_client(AdminClient, client_config(bootstrap, settings, defaults), settings)


def command_settings(config_path: Path | None) -> KafkaSettings:
    """The Kafka properties of a command whose config file is optional (`tail`, `produce`):
    the file's `[kafka]` table and the environment, or the environment alone.

    >>> command_settings(None) == parse_kafka_settings(None)
    True
    """
    if config_path is None:
        return parse_kafka_settings(None)
    from features.config import load_config

    return load_config(config_path).kafka
