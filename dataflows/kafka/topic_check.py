"""Checks before a flow starts: Kafka answers, and every topic the flow reads exists.

A flow never creates its input topic. Asking a broker for one topic's metadata may create it
(the local broker does, as do brokers with `auto.create.topics.enable`), so a typo in
`[source] topic` used to run, read nothing and report success. Here the broker is asked for
the list of every topic instead, which creates nothing.
"""

from __future__ import annotations

import difflib
import socket
from collections.abc import Iterable, Mapping

from confluent_kafka import KafkaException

from dataflows.kafka.clients import admin_client
from features.config_values import ConfigError
from features.kafka_settings import KafkaSettings


class KafkaUnreachable(RuntimeError):
    """Kafka did not answer at the bootstrap address: an operating problem, not a bug (no traceback)."""


def closest_first(name: str, candidates: Iterable[str]) -> list[str]:
    """`candidates` ordered by their likeness to `name`, the most alike first (ties by name).

    >>> closest_first("ridse", ["zeta", "rides", "rides.late"])
    ['rides', 'rides.late', 'zeta']
    """
    return sorted(candidates, key=lambda c: (-difflib.SequenceMatcher(None, name, c).ratio(), c))


def all_refused(bootstrap: str) -> bool:
    """Whether every bootstrap address refuses a TCP connection (nothing listens there): then
    waiting out the client's timeout cannot help. Anything else (a timeout, a name that does
    not resolve, a connection) is left to the Kafka client to judge.

    >>> from dataflows.kafka.broker import free_port
    >>> all_refused(f"127.0.0.1:{free_port()}"), all_refused("not-an-address")
    (True, False)
    """
    for address in bootstrap.split(","):
        host, _, port = address.strip().rpartition(":")
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=1.0).close()
        except ConnectionRefusedError:
            continue
        except (OSError, ValueError):  # no answer in time, no such name, no port: the client decides
            pass
        return False
    return True


def existing_topics(bootstrap: str, settings: KafkaSettings, timeout_s: float = 10.0) -> set[str]:
    """The names of the topics on the cluster (internal `__` topics left out); creates nothing.
    Raises `KafkaUnreachable` at once when nothing listens at the bootstrap addresses, else
    after `timeout_s` without an answer."""
    if all_refused(bootstrap):
        raise _unreachable(bootstrap, "connection refused at every bootstrap address")
    admin = admin_client(bootstrap, settings)
    try:
        topics = admin.list_topics(timeout=timeout_s).topics
    except KafkaException as exc:
        raise _unreachable(bootstrap, settings.redact(exc.args[0].str() if exc.args else str(exc))) from None
    return {name for name in topics if not name.startswith("__")}


def _unreachable(bootstrap: str, reason: str) -> KafkaUnreachable:
    return KafkaUnreachable(f"cannot reach Kafka at {bootstrap}: {reason}. Check --bootstrap, that the brokers "
                            "run, and the Kafka security properties.")


def require_topics(bootstrap: str, topics: Mapping[str, str], settings: KafkaSettings,
                   config_path: object = None) -> None:
    """Raise ConfigError for the first of `topics` (config key -> topic) missing on the cluster.

    The message names the key, the topic, the topics that exist (closest first) and the fix.
    """
    present = existing_topics(bootstrap, settings)
    for key, topic in topics.items():
        if topic in present:
            continue
        nearest = closest_first(topic, present)[:5]
        shown = f"existing topics, closest first: {', '.join(nearest)}" if nearest else "the cluster has no topics"
        where = f" --config {config_path}" if config_path else ""
        raise ConfigError(key, f"a topic that exists at {bootstrap} (a flow never creates its input)", topic,
                          f"{shown}. Correct `{key}`, or create the topics with "
                          f"`driftline topics{where} --bootstrap {bootstrap}`.")
