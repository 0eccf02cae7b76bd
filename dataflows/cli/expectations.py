"""`driftline expectations suggest`: a starting set of expectations from a file of training
events (`features.expectations.suggest`), written as TOML for a person to review."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dataflows.cli.reference import _events
from features.config import load_config
from features.config_values import ConfigError
from features.monitors.reference import build_references
from features.expectations.suggest import suggest_toml


def add_expectations_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """The `expectations` command and its `suggest` action."""
    parser = sub.add_parser("expectations", help="data expectations for the drift monitors")
    actions = parser.add_subparsers(dest="expectations_command", required=True, metavar="ACTION")
    suggest = actions.add_parser("suggest", help="suggest expectations from a JSONL file of training events")
    suggest.add_argument("--config", type=Path, required=True)
    suggest.add_argument("--input", type=Path, required=True, help="JSONL file of training events, one per line")
    suggest.add_argument("--output", type=Path, help="the TOML file to write (default: standard output)")


def suggest_expectations(config_path: Path, input_path: Path, output_path: Path | None = None) -> str:
    """Summarise `input_path` for every monitor of the config and suggest its expectations;
    writes the TOML to `output_path` (or returns it only). Invalid events are skipped."""
    config = load_config(config_path)
    if not config.monitors:
        raise ConfigError("monitors", "at least one [[monitors]] entry", None,
                          "add a monitor (see docs/drift.md) to suggest its expectations.")
    if not input_path.is_file():
        raise FileNotFoundError(f"input {input_path} does not exist")
    rejected = [0]
    references = build_references(config.monitors, _events(config, input_path, rejected))
    text = suggest_toml({m.name: (references[m.name].summary, m.numeric, m.categorical) for m in config.monitors},
                        f"{input_path.name} ({rejected[0]:,} invalid events skipped)")
    if output_path is not None:
        output_path.write_text(text, encoding="utf-8")
    return text


def expectations_command(args: argparse.Namespace) -> int:
    """Run `driftline expectations suggest`."""
    text = suggest_expectations(args.config, args.input, args.output)
    if args.output is None:
        sys.stdout.write(text)
    else:
        print(f"wrote suggested expectations to {args.output}", file=sys.stderr)
    return 0
