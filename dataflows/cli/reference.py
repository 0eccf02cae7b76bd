"""`driftline reference build`: summarise a file of training events once, as the reference
that monitors with `reference = { type = "file", path = ... }` compare their windows with."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

from dataflows.flows.ingest import wall_clock_ms
from features.config import Config, load_config
from features.monitors.reference import build_references, write_references
from features.events import Event, EventDecoder


def _events(config: Config, path: Path, rejected: list[int]) -> Iterator[Event]:
    decoder = EventDecoder(config.schema, config.source.limits)
    now = wall_clock_ms()
    with path.open("rb") as lines:
        for offset, line in enumerate(lines):
            if not line.strip():
                continue
            result = decoder.decode(line.rstrip(b"\n"), now, 0, offset)
            if type(result) is Event:
                yield result
            else:
                rejected[0] += 1


def build_reference_file(config_path: Path, input_path: Path, output_path: Path, quiet: bool = False) -> int:
    """Summarise `input_path` (JSONL events) for every monitor of the config into
    `output_path`; returns the number of events summarised. Invalid events are skipped
    and counted, as the flows would dead-letter them."""
    config = load_config(config_path)
    if not config.monitors:
        from features.config_values import ConfigError

        raise ConfigError("monitors", "at least one [[monitors]] entry", None,
                          "add a monitor (see docs/drift.md) before building its reference.")
    if not input_path.is_file():
        raise FileNotFoundError(f"reference input {input_path} does not exist")
    rejected = [0]
    references = build_references(config.monitors, _events(config, input_path, rejected))
    write_references(output_path, references)
    count = next(iter(references.values())).summary.event_count
    if not quiet:
        names = ", ".join(f"{m.name} ({len(m.columns)} columns)" for m in config.monitors)
        print(f"summarised {count:,} events ({rejected[0]:,} invalid, skipped) for {names} into {output_path}",
              file=sys.stderr)
    return count
