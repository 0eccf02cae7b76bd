"""`driftline training-set`: a point-in-time training set from files of events and labels.

The files are read as `driftline replay --flow model --labels` reads them (each a
one-partition topic, in batches), decoded by the model flow's own decoder, late events and
labels left out by the same per-partition watermark, and turned into rows by
`features.models.training_set.TrainingSet`, which runs the flow's input code in the flow's
order. Every row's inputs are the ones the model flow logs for that event in
`predictions.<model>` (tested).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from dataflows.kafka.io import RawMessage

BATCH = 2000  # lines per decoder call, as the replay's file source reads them


def add_training_set_parser(sub: Any) -> None:
    """The `training-set` subcommand."""
    p = sub.add_parser("training-set", help="labelled events with the exact inputs the model flow used "
                                            "(point-in-time feature inputs), to Parquet or JSONL")
    p.add_argument("--config", type=Path, required=True)
    p.add_argument("--events", type=Path, required=True, help="JSONL file of events, one per line")
    p.add_argument("--labels", type=Path, required=True, help="JSONL file of labels, one per line")
    p.add_argument("--model", required=True, help="the model's name in the config ([[models]] name)")
    p.add_argument("--output", type=Path, required=True, help="train.parquet or train.jsonl (by the suffix)")


def _lines(path: Path, topic: str) -> Iterator[list[RawMessage]]:
    with path.open("rb") as handle:
        batch: list[RawMessage] = []
        for offset, line in enumerate(handle):
            batch.append(RawMessage(topic, 0, offset, 0, None, line.rstrip(b"\n")))
            if len(batch) == BATCH:
                yield batch
                batch = []
        if batch:
            yield batch


def build_training_set(config_path: Path, events_path: Path, labels_path: Path, model: str) -> tuple[Any, list[Any],
                                                                                                    dict[str, int]]:
    """(the model's spec, its `TrainingRow`s, counts) for the files."""
    from dataflows.counters import FlowCounters
    from dataflows.flows.ingest import wall_clock_ms
    from dataflows.flows.model_inputs import EventPart, input_decoder
    from features.config import load_config
    from features.config_values import ConfigError
    from features.events import Event
    from features.models.training_set import TrainingSet
    from features.windows.engine import PartitionClocks

    config = load_config(config_path)
    specs = {spec.name: spec for spec in config.models}
    if model not in specs:
        raise ConfigError("--model", f"a [[models]] name of {config_path} ({', '.join(specs) or 'none'})", model,
                          "pass one of those names.")
    for path, what in ((events_path, "events"), (labels_path, "labels")):
        if not path.is_file():
            raise FileNotFoundError(f"training-set {what} file {path} does not exist")
    spec = specs[model]
    counters = FlowCounters()
    decode = input_decoder(config, counters, wall_clock_ms)
    events: list[Event] = []
    labels: list[Any] = []
    late = {"events": 0, "labels": 0}
    for path, topic, out, kind in ((events_path, config.source.topic, events, "events"),
                                   (labels_path, spec.labels.topic, labels, "labels")):
        clocks = PartitionClocks(config.source.lateness_ms)  # one per input partition, as in the flow
        for batch in _lines(path, topic):
            for part, payload in decode(batch):
                if not part:
                    continue  # a dead letter
                items = payload[1].events() if isinstance(payload[1], EventPart) else payload[1]
                for item in items:
                    if clocks.behind(item) is None:
                        out.append(item)
                    else:
                        late[kind] += 1
    builder = TrainingSet(spec, config.feature_sets, config.schema)
    rows = builder.rows(events, labels)
    counts = {"events": builder.events, "labels": len(labels), "rows": len(rows),
              "late_events": late["events"], "late_labels": late["labels"],
              "rejected_events": counters.total("rejected."), "rejected_labels": counters.total("model.labels_rejected"),
              "unmatched_labels": builder.unmatched_labels, "expired_labels": builder.late_labels}
    return spec, rows, counts


def write_table(spec: Any, rows: list[Any], output: Path) -> None:
    """Write rows as Parquet (`.parquet`) or JSONL (anything else), columns per `table_columns`."""
    from features.models.training_set import table_columns, table_row

    output.parent.mkdir(parents=True, exist_ok=True)
    records = [table_row(spec, row) for row in rows]
    if output.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        columns = table_columns(spec)
        table = pa.Table.from_pydict({name: [r[name] for r in records] for name in columns})
        pq.write_table(table, output)
        return
    with output.open("wb") as handle:
        for record in records:
            handle.write(orjson.dumps(record) + b"\n")


def cmd_training_set(args: argparse.Namespace) -> int:
    spec, rows, counts = build_training_set(args.config, args.events, args.labels, args.model)
    write_table(spec, rows, args.output)
    print(f"driftline: {counts['rows']} rows for model {spec.name!r} to {args.output} "
          f"({', '.join(f'{k} {v}' for k, v in counts.items() if k != 'rows')})", file=sys.stderr)
    return 0
