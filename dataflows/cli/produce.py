"""`driftline produce`: the synthetic ride stream to Kafka topics or to JSONL files.

    driftline produce --bootstrap 127.0.0.1:9092 --events 1000000 --malformed-fraction 0.01 \\
        --change shift:price:start=600000:scale=1.3
    driftline produce --events 100000 --output rides.jsonl --labels-output labels.jsonl
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import TextIO

from confluent_kafka import KafkaException

from dataflows.synth.generator import StreamSpec
from dataflows.synth.planted_changes import CHANGE_FORMS, parse_change
from dataflows.synth.produce import ProduceProgress, ProduceStats, produce_to_kafka, write_jsonl


def spec_from_args(args: argparse.Namespace) -> StreamSpec:
    """The stream the arguments ask for; ValueError naming the bad argument otherwise.

    >>> spec = spec_from_args(argparse.Namespace(events=10, seed=3, malformed_fraction=0.1, change=["concept:start=5"]))
    >>> spec.malformed, spec.changes
    (1, (ConceptDrift(start=5),))
    """
    changes = tuple(parse_change(text) for text in (args.change or ()))
    try:
        return StreamSpec(events=args.events, seed=args.seed, malformed_fraction=args.malformed_fraction,
                          changes=changes)
    except ValueError as exc:
        raise ValueError(f"{exc} (check --events, --seed and --malformed-fraction)") from None


class ProgressLine:
    """Prints produce progress to `stream`: one updating line on a terminal, else a line
    every `every_s` seconds (CI logs)."""

    def __init__(self, stream: TextIO | None = None, every_s: float = 5.0) -> None:
        self._stream = stream or sys.stderr
        self._tty = self._stream.isatty()
        self._every = 0.0 if self._tty else every_s
        self._last = time.monotonic()
        self._shown = False

    def __call__(self, progress: ProduceProgress) -> None:
        now = time.monotonic()
        if now - self._last < self._every:
            return
        self._last = now
        line = f"  produced {progress.events:,} events, {progress.labels:,} labels ({progress.rate:,.0f} events/s)"
        self._stream.write(f"\r\x1b[K{line}" if self._tty else line + "\n")
        self._stream.flush()
        self._shown = True

    def close(self) -> None:
        """End the updating line, if one was shown."""
        if self._tty and self._shown:
            self._stream.write("\n")
            self._stream.flush()


def summary_line(stats: ProduceStats, where: str, seconds: float) -> str:
    """The final line: counts, malformed by reason, destination and speed.

    >>> summary_line(ProduceStats(1000, 990, 10, {"not_json": 10}), "'rides'", 0.5)
    "produced 1,000 events (10 malformed: not_json 10) and 990 labels to 'rides' in 0.50 s (2,000 events/s)"
    """
    reasons = ", ".join(f"{reason} {count:,}" for reason, count in stats.by_reason.items())
    malformed = f"{stats.malformed:,} malformed" + (f": {reasons}" if reasons else "")
    rate = stats.events / seconds if seconds > 0 else 0.0
    return (f"produced {stats.events:,} events ({malformed}) and {stats.labels:,} labels to {where} "
            f"in {seconds:.2f} s ({rate:,.0f} events/s)")


def _fail(message: str) -> int:
    print(f"driftline produce: {message}", file=sys.stderr)
    return 2


def produce_command(args: argparse.Namespace) -> int:
    """Run `driftline produce`; returns the exit code (2 for bad arguments)."""
    try:
        spec = spec_from_args(args)
    except ValueError as exc:
        return _fail(f"{exc}. Change forms: {'; '.join(CHANGE_FORMS.values())}")
    if args.rate is not None and not args.rate > 0:
        return _fail(f"--rate must be a positive number of events per second, found {args.rate}")
    if args.labels_output is not None and args.output is None:
        return _fail("--labels-output needs --output (labels go to the labels topic when writing to Kafka)")
    if args.partitions < 1:
        return _fail(f"--partitions must be at least 1, found {args.partitions}")
    progress = ProgressLine()
    started = time.monotonic()
    try:
        if args.output is not None:
            if args.rate is not None:
                print("driftline produce: --rate applies to Kafka only; files are written at full speed",
                      file=sys.stderr)
            stats = write_jsonl(spec, args.output, args.labels_output, progress=progress)
            where = str(args.output) + (f" and {args.labels_output}" if args.labels_output else " (labels not kept)")
        else:
            if not args.bootstrap:
                return _fail("pass --bootstrap HOST:PORT to write to Kafka (`driftline broker` runs a local one), "
                             "or --output FILE to write JSONL")
            stats, where = _to_kafka(args, spec, progress)
    except (KafkaException, RuntimeError, OSError) as exc:
        progress.close()
        print(f"driftline produce: {exc}", file=sys.stderr)
        return 1
    progress.close()
    print(summary_line(stats, where, time.monotonic() - started))
    return 0


def _to_kafka(args: argparse.Namespace, spec: StreamSpec, progress: ProgressLine) -> tuple[ProduceStats, str]:
    from dataflows.kafka.broker import create_topics
    from dataflows.kafka.clients import command_settings

    settings = command_settings(args.config)
    labels_topic = args.labels_topic or f"{args.topic}.labels"
    create_topics(args.bootstrap, [args.topic, labels_topic], partitions=args.partitions, settings=settings)
    stats = produce_to_kafka(spec, args.bootstrap, args.topic, labels_topic, rate=args.rate, progress=progress,
                             settings=settings)
    return stats, f"{args.topic!r} and {labels_topic!r} at {args.bootstrap}"
