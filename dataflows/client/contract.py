"""Checking a message's `schema` ("<name>/<major>[.<minor>]") before a client reads it.

A client understands one major version of a message kind: minor versions only add fields,
which it ignores, while a new major version may change what fields mean, so it is refused
with an error that says what to do.

>>> require_schema({"schema": "driftline.drift_event/1.2"}, "driftline.drift_event", 1)
>>> require_schema({"schema": "driftline.drift_event/2"}, "driftline.drift_event", 1)
Traceback (most recent call last):
...
dataflows.client.contract.SchemaVersionError: message schema 'driftline.drift_event/2' has major version 2; this client reads driftline.drift_event/1. Upgrade driftline on the reading side, or keep the producers on version 1.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class SchemaVersionError(ValueError):
    """A message of a major version (or kind) this client does not understand."""


def require_schema(message: Mapping[str, Any], name: str, major: int) -> None:
    """Raise SchemaVersionError unless `message["schema"]` is `name/<major>[.<minor>]`."""
    schema = message.get("schema")
    kind, _, version = str(schema).partition("/")
    if kind != name:
        raise SchemaVersionError(f"message schema {schema!r} is not {name}; this topic carries other messages. "
                                 f"Point the client at a topic of {name} messages.")
    found = version.split(".")[0]
    if found != str(major):
        raise SchemaVersionError(f"message schema {schema!r} has major version {found}; this client reads "
                                 f"{name}/{major}. Upgrade driftline on the reading side, or keep the producers "
                                 f"on version {major}.")
