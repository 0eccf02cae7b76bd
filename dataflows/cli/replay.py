"""`driftline replay`: the Kafka flows, unchanged, over a JSONL file of events.

Only the source and the sink differ from `driftline run`: the file is read as a
one-partition topic and every output topic is written to `<output dir>/<topic>.jsonl`.
This is how features are backfilled for training with the definitions used in serving.
"""

from __future__ import annotations

import sys
from pathlib import Path

from dataflows.counters import FlowCounters
from dataflows.kafka.file_io import JsonlTopics, TopicFiles
from dataflows.flows.registry import FLOWS, default_flows
from dataflows.flows.ingest import combined_counters
from dataflows.cli.progress import ProgressPrinter
from dataflows.flows.runner import run_flow
from dataflows.cli.status_lines import flow_progress, flow_summary
from features.config import load_config


def replay(config_path: Path, input_path: Path, output_dir: Path, flows: list[str] | None = None,
           quiet: bool = False, labels_path: Path | None = None) -> FlowCounters:
    """Run the flows over `input_path`; returns the counters. Output files are replaced.

    `labels_path` is read as the labels topic of the flows that read one (the model flow).
    """
    config = load_config(config_path)
    if not input_path.is_file():
        raise FileNotFoundError(f"replay input {input_path} does not exist")
    if labels_path is not None and not labels_path.is_file():
        raise FileNotFoundError(f"replay labels {labels_path} do not exist")
    names = flows or default_flows(config)
    output_dir.mkdir(parents=True, exist_ok=True)
    for name in names:
        for topic in FLOWS[name].output_topics(config):
            (output_dir / f"{topic}.jsonl").unlink(missing_ok=True)
    per_flow = []
    for name in names:
        counters = FlowCounters()  # per flow: each flow decodes (and counts) the same events
        per_flow.append(counters)
        files = {config.source.topic: input_path}
        if labels_path is not None:
            files.update((topic, labels_path) for topic in FLOWS[name].input_topics(config)[1:])
        flow = FLOWS[name].build(config, JsonlTopics(files), TopicFiles(output_dir), counters)
        if quiet:
            run_flow(flow)
        else:
            with ProgressPrinter(flow_progress(counters)):
                run_flow(flow)
    counters = combined_counters(per_flow)
    if not quiet:
        print(flow_summary(counters, late_topic=f"{config.source.late_topic}.jsonl"))
        print(f"outputs written to {output_dir}/", file=sys.stderr)
    return counters
