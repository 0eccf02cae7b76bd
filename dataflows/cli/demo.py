"""`driftline demo`: the whole pipeline on a synthetic ride stream, end to end.

It starts the local broker (unless --bootstrap is given), creates the topics, writes the
generated stream with planted changes and malformed events, runs every flow that exists
with live progress, and ends with a summary (also written as JSON to the output dir).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path

import orjson

from dataflows.kafka.broker import create_topics, local_broker
from dataflows.counters import FlowCounters
from dataflows.report.drift_findings import demo_drift_lines
from dataflows.flows.registry import FLOWS, default_flows, topics_for
from dataflows.kafka.io import KafkaInput, KafkaOutput
from dataflows.synth.generator import StreamSpec
from dataflows.flows.ingest import combined_counters
from dataflows.report.model_findings import demo_model_report
from dataflows.synth.planted_changes import ConceptDrift, parse_change
from dataflows.synth.produce import produce_to_kafka
from dataflows.cli.progress import ProgressPrinter
from dataflows.cli.report import demo_report
from dataflows.flows.runner import run_flow
from dataflows.flows.samples import samples_summary
from dataflows.cli.status_lines import flow_progress, flow_summary
from features.config import load_config

# Planted changes, as fractions of the stream: a concept drift in what makes riders cancel
# (for the online model), a price shift, a new payment category, and a stretch where distance
# is reported in metres instead of kilometres.
DEMO_CHANGES = (
    ("concept:start={:d}", 0.25),
    ("shift:price:start={:d}:scale=1.3", 0.60),
    ("category:payment:crypto:share=0.1:start={:d}", 0.70),
    ("unit:distance_km:factor=1000:start={:d}:end={end:d}", 0.80),
)


def demo_spec(events: int, seed: int) -> StreamSpec:
    """The demo's stream: 1% malformed events and the planted changes above.

    >>> demo_spec(1000, 7).malformed_fraction
    0.01
    """
    changes = tuple(
        parse_change(template.format(int(events * at), end=int(events * (at + 0.05))))
        for template, at in DEMO_CHANGES
    )
    return StreamSpec(events=events, seed=seed, malformed_fraction=0.01, changes=changes)


def concept_drift_ms(spec: StreamSpec) -> tuple[int, int | None]:
    """About when (event time, from event indices at the stream's rate) the planted concept drift
    starts, and the next planted change after it.

    >>> [t - demo_spec(1000, 7).start_ms for t in concept_drift_ms(demo_spec(1000, 7))]
    [1250, 3000]
    """
    start = min((c.start for c in spec.changes if isinstance(c, ConceptDrift)), default=spec.events)
    later = [c.start for c in spec.changes if c.start > start]

    def at(index: int) -> int:
        return spec.start_ms + int(index * 1000 / spec.rate_per_s)

    return at(start), (at(min(later)) if later else None)


@contextlib.contextmanager
def _broker(bootstrap: str | None) -> Iterator[str]:
    if bootstrap:
        yield bootstrap
        return
    with local_broker() as broker:
        print(f"started the local broker (Tansu) at {broker.bootstrap}", file=sys.stderr)
        yield broker.bootstrap


def run_demo(args: argparse.Namespace) -> int:
    """Run the demo; returns the process exit code."""
    config = load_config(args.config)
    flows = default_flows(config)
    labels_topic = f"{config.source.topic}.labels"
    spec = demo_spec(args.events, args.seed)
    out_dir: Path = args.output_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    with _broker(args.bootstrap) as bootstrap:
        create_topics(bootstrap, (*topics_for(config, flows), labels_topic),
                      partitions=config.source.partitions, settings=config.kafka)
        print(f"writing {spec.events:,} ride events (1% malformed, with planted drift) to {config.source.topic!r}",
              file=sys.stderr)
        stats = produce_to_kafka(spec, bootstrap, config.source.topic, labels_topic, rate=None,
                                 progress=_produce_progress, settings=config.kafka)
        print(file=sys.stderr)
        per_flow = []
        for name in flows:
            counters = FlowCounters()  # per flow: each flow decodes (and counts) the same events
            per_flow.append(counters)
            print(f"running flow {name!r}: {FLOWS[name].summary}", file=sys.stderr)
            source = KafkaInput(bootstrap, FLOWS[name].input_topics(config), stop_at_end=True, settings=config.kafka)
            flow = FLOWS[name].build(config, source, KafkaOutput(bootstrap, config.kafka, flush_each_batch=False), counters)
            with ProgressPrinter(flow_progress(counters)):
                run_flow(flow)
        counters = combined_counters(per_flow)
        summary = "\n".join(filter(None, (flow_summary(counters, config.source.late_topic), samples_summary(counters))))
        print("\n" + summary)
        model_lines, model_stories = demo_model_report(bootstrap, config, *concept_drift_ms(spec))
        if model_lines:
            print("\n" + "\n".join(model_lines))
        produced = stats.events
        accounted = counters.get("valid") + counters.total("rejected.")
        print(f"\nproduced {produced:,} events; valid + rejected = {accounted:,}"
              f" ({'nothing lost' if accounted == produced else 'MISMATCH'})")
        drift = demo_drift_lines(bootstrap, [m.events_topic for m in config.monitors], spec,
                                 config.kafka) if "drift" in flows else []
        if drift:
            print("\n" + "\n".join(drift))
        (out_dir / "summary.json").write_bytes(orjson.dumps(
            {"produced": produced, "labels": stats.labels, "counters": counters.snapshot(), "drift": drift,
             "models": model_stories},
            option=orjson.OPT_INDENT_2,
        ))
        print(f"summary written to {out_dir / 'summary.json'}")
        report = demo_report(config, bootstrap, out_dir)
        if report is not None:
            print(f"drift report written to {report} (open it in a browser)")
        return 0 if accounted == produced else 1


def _produce_progress(progress: object) -> None:
    sent = getattr(progress, "events", 0)
    rate = getattr(progress, "rate", 0.0)
    print(f"\r  produced {sent:,} events ({rate:,.0f}/s)", end="", file=sys.stderr, flush=True)
