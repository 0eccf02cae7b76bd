"""The flows `driftline run` and `driftline replay` know, by name, and the topics each writes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bytewax.dataflow import Dataflow
from bytewax.inputs import Source
from bytewax.outputs import Sink

from dataflows.counters import FlowCounters
from dataflows.flows.drift import build_drift_flow
from dataflows.flows.features import build_features_flow
from dataflows.flows.ingest import build_ingest_flow
from dataflows.kafka.io import OutMessage
from dataflows.flows.model import build_model_flow, label_topics, model_output_topics
from features.config import Config

FlowBuilder = Callable[[Config, Source, Sink[OutMessage], FlowCounters], Dataflow]


@dataclass(frozen=True)
class FlowSpec:
    """A runnable flow: how to build it and which topics it writes."""

    name: str
    summary: str
    build: FlowBuilder
    output_topics: Callable[[Config], tuple[str, ...]]
    enabled: Callable[[Config], bool]
    # The topics it reads: the events topic, and for some flows more (the model flow's labels).
    input_topics: Callable[[Config], tuple[str, ...]] = lambda config: (config.source.topic,)
    # Whether `build` takes the cluster's total worker count (`workers=`): the model flow
    # places segments on workers by load.
    placed: bool = False
    # Whether its Kafka input and output should favour latency over batch size: the model
    # flow when a model predicts in arrival order (its predictions are meant to be acted on).
    low_latency: Callable[[Config], bool] = lambda config: False

    def build_for(self, config: Config, source: Source, sink: Sink[OutMessage], counters: FlowCounters,
                  workers: int = 1) -> Dataflow:
        """The flow, for a cluster of `workers` workers in all."""
        if self.placed:
            return self.build(config, source, sink, counters, workers=workers)  # type: ignore[call-arg]
        return self.build(config, source, sink, counters)


FLOWS: dict[str, FlowSpec] = {
    "ingest": FlowSpec(
        name="ingest",
        summary="decode the events topic, send rejected events to <topic>.dlq, count the rest",
        build=build_ingest_flow,
        output_topics=lambda config: (config.source.dead_letter_topic,),
        enabled=lambda config: True,
    ),
    "features": FlowSpec(
        name="features",
        summary="windowed features per entity to features.<set>, samples to samples.<set>; late events to <topic>.late",
        build=build_features_flow,
        output_topics=lambda config: (config.source.dead_letter_topic, config.source.late_topic,
                                      *(fs.topic for fs in config.feature_sets),
                                      *(s.topic for s in config.sample_sets)),
        enabled=lambda config: bool(config.feature_sets or config.sample_sets),
    ),
    "drift": FlowSpec(
        name="drift",
        summary="base-window summaries per monitored column to drift.summaries; drift alerts to drift.events",
        build=build_drift_flow,
        output_topics=lambda config: tuple(dict.fromkeys((
            config.source.dead_letter_topic, config.source.late_topic,
            *(t for m in config.monitors for t in (m.summaries_topic, m.events_topic))))),
        enabled=lambda config: bool(config.monitors),
    ),
    "model": FlowSpec(
        name="model",
        summary="online River models, predict then learn from delayed labels: predictions.<model>, "
                "model.metrics, model.snapshots, error drift to drift.events",
        build=build_model_flow,
        output_topics=model_output_topics,
        enabled=lambda config: bool(config.models),
        input_topics=lambda config: (config.source.topic, *label_topics(config)),
        placed=True,
        low_latency=lambda config: any(spec.order == "arrival" for spec in config.models),
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
        spec = FLOWS[name]
        topics.extend(t for t in (*spec.input_topics(config), *spec.output_topics(config)) if t not in topics)
    return tuple(topics)


def default_flows(config: Config) -> list[str]:
    """The flows the demo and replay run: every enabled flow (ingestion is part of each).

    >>> from features.config import parse_config
    >>> default_flows(parse_config({"source": {"topic": "rides"},
    ...     "schema": {"entity": "a", "event_time": "ts", "fields": {"a": "string"}}}))
    ['ingest']
    """
    chosen = [name for name, spec in FLOWS.items() if name != "ingest" and spec.enabled(config)]
    return chosen or ["ingest"]
