"""The flows `driftline run` knows, by name, and the topics each one writes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bytewax.dataflow import Dataflow

from dataflows.counters import FlowCounters
from dataflows.ingest import ingest_flow
from features.config import Config

FlowBuilder = Callable[[Config, str, FlowCounters, bool], Dataflow]


@dataclass(frozen=True)
class FlowSpec:
    """A runnable flow: how to build it and which topics it needs to exist."""

    name: str
    summary: str
    build: FlowBuilder
    output_topics: Callable[[Config], tuple[str, ...]]


FLOWS: dict[str, FlowSpec] = {
    "ingest": FlowSpec(
        name="ingest",
        summary="decode the events topic, send rejected events to <topic>.dlq, count the rest",
        build=ingest_flow,
        output_topics=lambda config: (config.source.dead_letter_topic,),
    ),
}


def topics_for(config: Config, flows: list[str]) -> tuple[str, ...]:
    """Every topic the given flows read or write, in a stable order.

    >>> from features.config import parse_config
    >>> config = parse_config({"source": {"topic": "rides"},
    ...     "schema": {"entity": "a", "event_time": "ts", "fields": {"a": "string"}}})
    >>> topics_for(config, ["ingest"])
    ('rides', 'rides.dlq')
    """
    topics = [config.source.topic]
    for name in flows:
        topics.extend(t for t in FLOWS[name].output_topics(config) if t not in topics)
    return tuple(topics)
