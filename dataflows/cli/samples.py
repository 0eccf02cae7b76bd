"""`driftline samples merge`: merge a sample set's window samples into the sample of a longer range.

Inputs are replay outputs (a directory of `<topic>.jsonl` files, or one such file) or topics
(with `--bootstrap`). The messages of the set whose windows lie in [--from, --to) are merged
(`features.samples.messages.merge_samples`): the result is the sample of the whole range,
exactly as if it had been one window.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from features.config_values import ConfigError
from features.events import parse_time_ms
from features.samples.messages import merge_samples, select_windows


def add_samples_parser(sub: Any) -> None:
    """The `samples` command and its `merge` subcommand, on the CLI's subparsers."""
    samples = sub.add_parser("samples", help="work with reservoir samples (samples.<set> topics or replay files)")
    actions = samples.add_subparsers(dest="samples_command", required=True, metavar="ACTION")
    merge = actions.add_parser("merge", help="merge window samples into the sample of a longer time range")
    merge.add_argument("--input", action="append", required=True, metavar="DIR|FILE|TOPIC",
                       help="a replay output directory or .jsonl file, or a topic with --bootstrap (repeatable)")
    merge.add_argument("--set", required=True, dest="sample_set", help="the sample set's name")
    merge.add_argument("--from", dest="start", default=None, metavar="TIME",
                       help="range start: epoch ms or ISO-8601 (default: the earliest window's start)")
    merge.add_argument("--to", dest="end", default=None, metavar="TIME",
                       help="range end, exclusive (default: the latest window's end)")
    merge.add_argument("--bootstrap", default=None, metavar="HOST:PORT", help="read topic inputs from this broker")
    merge.add_argument("--output", type=Path, default=None, help="write the merged messages to this JSONL file")


def _time(text: str | None, flag: str) -> int | None:
    if text is None:
        return None
    try:
        return parse_time_ms(int(text) if text.isdigit() else text, "auto")
    except ValueError:
        raise ConfigError(flag, "epoch milliseconds or an ISO-8601 time", text,
                          "write e.g. 2026-01-01T00:00:00Z or 1767225600000.") from None


def _read(source: str, bootstrap: str | None) -> Iterator[dict[str, Any]]:
    path = Path(source)
    if path.is_dir():
        files = sorted(path.glob("*.jsonl"))
    elif path.is_file():
        files = [path]
    elif bootstrap is not None:
        from dataflows.kafka.clients import command_settings
        from dataflows.kafka.tail import read_messages

        for msg in read_messages(bootstrap, source, settings=command_settings(None)):
            if msg.value() is not None:
                yield orjson.loads(msg.value())
        return
    else:
        raise ConfigError("--input", "a directory, a .jsonl file, or a topic with --bootstrap", source,
                          "check the path, or pass --bootstrap HOST:PORT to read a topic.")
    for file in files:
        for line in file.read_bytes().splitlines():
            if line.strip():
                yield orjson.loads(line)


def samples_command(args: argparse.Namespace) -> int:
    """Run `driftline samples merge`; returns the exit code."""
    start, end = _time(args.start, "--from"), _time(args.end, "--to")
    if start is not None and end is not None and end <= start:
        raise ConfigError("--to", f"a time after --from ({start})", end, "swap or correct the times.")
    chosen = select_windows((m for source in args.input for m in _read(source, args.bootstrap)),
                            args.sample_set, start, end)
    if not chosen:
        print(f"driftline: no samples of set {args.sample_set!r} in the inputs and range given", file=sys.stderr)
        return 1
    try:
        merged = merge_samples(chosen, start, end)
    except ValueError as exc:
        print(f"driftline: cannot merge: {exc}", file=sys.stderr)
        return 1
    lines = b"".join(orjson.dumps(m) + b"\n" for m in merged)
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_bytes(lines)
    else:
        sys.stdout.write(lines.decode())
    first = merged[0]
    items = sum(len(m["items"]) for m in merged)
    print(f"merged {first['merged_windows']} windows of {args.sample_set!r} into [{first['window']['start']}, "
          f"{first['window']['end']}): {first['window_seen']:,} events, {len(merged)} message(s), {items} items"
          + (f"; written to {args.output}" if args.output else ""), file=sys.stderr)
    return 0
