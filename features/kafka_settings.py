"""Kafka client properties (security and tuning) from the config's `[kafka]` table and the environment.

Every Kafka client driftline makes (consumers, producers, admin) gets these properties, so
SASL/SSL set once reaches all of them. Names are librdkafka's (`security.protocol`,
`sasl.mechanism`, `sasl.username`, `sasl.password`, `ssl.ca.location`, ...). The
environment wins over the file, so secrets can stay out of it: `DRIFTLINE_KAFKA_SASL_PASSWORD`
sets `sasl.password` (drop the prefix, lowercase, `_` becomes `.`). Values of secret
properties never appear in `repr`, logs or error messages.

>>> s = parse_kafka_settings({"security.protocol": "SASL_SSL", "sasl.username": "svc"},
...                          environ={"DRIFTLINE_KAFKA_SASL_PASSWORD": "hunter2"})
>>> s.as_dict()["sasl.password"], s
('hunter2', KafkaSettings(security.protocol='SASL_SSL', sasl.username='svc', sasl.password=<redacted>))
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from features.config_values import ConfigError

ENV_PREFIX = "DRIFTLINE_KAFKA_"
# driftline sets these itself, per client: a config file must not.
_RESERVED = {"bootstrap.servers", "group.id", "enable.auto.commit", "enable.partition.eof"}
_NAME = re.compile(r"^[a-z][a-z0-9]*(\.[a-z0-9]+)*$")
_SECRET_WORDS = ("password", "secret", "key", "token", "jaas")


def is_secret(name: str) -> bool:
    """True for properties whose values must never be shown.

    >>> is_secret("sasl.password"), is_secret("ssl.key.location"), is_secret("security.protocol")
    (True, True, False)
    """
    return any(word in name for word in _SECRET_WORDS)


@dataclass(frozen=True)
class KafkaSettings:
    """Client properties for every Kafka client, as sorted (name, value) pairs."""

    properties: tuple[tuple[str, str], ...] = ()

    def as_dict(self) -> dict[str, str]:
        """The properties to pass to a client."""
        return dict(self.properties)

    def shown(self) -> dict[str, str]:
        """The properties with secret values replaced, for logs and summaries.

        >>> KafkaSettings((("sasl.username", "svc"), ("sasl.password", "pw"))).shown()
        {'sasl.username': 'svc', 'sasl.password': '<redacted>'}
        """
        return {k: "<redacted>" if is_secret(k) else v for k, v in self.properties}

    def redact(self, text: str) -> str:
        """`text` with every secret value replaced by `<redacted>` (for client error messages).

        >>> KafkaSettings((("sasl.password", "hunter2"),)).redact("auth failed for hunter2")
        'auth failed for <redacted>'
        """
        for name, value in self.properties:
            if value and is_secret(name):
                text = text.replace(value, "<redacted>")
        return text

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={'<redacted>' if is_secret(k) else repr(v)}" for k, v in self.properties)
        return f"KafkaSettings({shown})"


def parse_kafka_settings(table: Mapping[str, Any] | None, prefix: str = "kafka",
                         environ: Mapping[str, str] | None = None) -> KafkaSettings:
    """The `[kafka]` table (may be absent) merged with `DRIFTLINE_KAFKA_*` variables."""
    merged: dict[str, str] = {}
    for name, value in (table or {}).items():
        merged[_check_name(name, f"{prefix}.{name}")] = _as_text(value, f"{prefix}.{name}", name)
    for variable, value in (os.environ if environ is None else environ).items():
        if variable.startswith(ENV_PREFIX) and len(variable) > len(ENV_PREFIX):
            name = variable[len(ENV_PREFIX):].lower().replace("_", ".")
            merged[_check_name(name, variable)] = value
    return KafkaSettings(tuple(merged.items()))  # file order, then the environment's


def _check_name(name: str, key: str) -> str:
    if not _NAME.match(name):
        raise ConfigError(key, "a librdkafka property name such as sasl.mechanism", name,
                          "use the dotted lowercase names of librdkafka's CONFIGURATION.md.")
    if name in _RESERVED:
        raise ConfigError(key, "a property driftline does not set itself", name,
                          "remove it: bootstrap servers come from --bootstrap, the rest is set per client.")
    return name


def _as_text(value: Any, key: str, name: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    found = "<redacted>" if is_secret(name) else type(value).__name__
    raise ConfigError(key, "a string, number or boolean", found, "write the value as librdkafka expects it.")
