"""Kafka and file I/O: the Bytewax input and output, client properties, reading a topic, the
local broker (Tansu) for the demo and tests, and the JSONL files `driftline replay` reads.
"""

from dataflows.kafka.io import KafkaInput, KafkaOutput, OutMessage, RawMessage, list_partitions
from dataflows.kafka.clients import client_config, new_client
from dataflows.kafka.broker import RunningBroker, create_topics, local_broker
from dataflows.kafka.tail import read_json, read_messages
from dataflows.kafka.file_io import JsonlInput, TopicFiles

__all__ = [
    "JsonlInput",
    "KafkaInput",
    "KafkaOutput",
    "OutMessage",
    "RawMessage",
    "RunningBroker",
    "TopicFiles",
    "client_config",
    "create_topics",
    "list_partitions",
    "local_broker",
    "new_client",
    "read_json",
    "read_messages",
]
