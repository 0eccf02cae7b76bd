"""`driftline report`: the drift report of a run, from Kafka topics or from the files of
`driftline replay`, written as one self-contained HTML file (`dataflows.report.html`).

```sh
driftline report --replay-dir out/replay --config deploy/rides.toml --output report.html
driftline report --bootstrap 127.0.0.1:9092 --config deploy/rides.toml --output report.html \\
    --since 2026-01-01T00:00:00Z --until 2026-01-01T06:00:00Z
```
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson

from features.config import Config, load_config
from features.config_values import ConfigError
from features.monitors.reference import load_monitor_references
from features.report_data import Message, TopicNames, build_report, within

MODEL_METRICS_TOPIC = "model.metrics"


def add_report_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """The `report` subcommand's arguments."""
    report = sub.add_parser("report", help="write a self-contained HTML drift report of a run (Kafka or replay files)")
    source = report.add_mutually_exclusive_group(required=True)
    source.add_argument("--bootstrap", metavar="HOST:PORT", help="read the topics from Kafka")
    source.add_argument("--replay-dir", type=Path, help="read <dir>/<topic>.jsonl as `driftline replay` writes them")
    report.add_argument("--config", type=Path, required=True)
    report.add_argument("--output", type=Path, required=True, help="the HTML file to write")
    report.add_argument("--since", default=None, metavar="T", help="from this event time (ISO-8601 or epoch ms)")
    report.add_argument("--until", default=None, metavar="T", help="up to this event time (ISO-8601 or epoch ms)")
    report.add_argument("--model-metrics-topic", default=MODEL_METRICS_TOPIC,
                        help=f"the model flow's metrics topic (default {MODEL_METRICS_TOPIC})")


def parse_time(text: str | None, flag: str) -> int | None:
    """Epoch ms of a --since/--until value.

    >>> parse_time("2026-01-01T00:01:00Z", "--since"), parse_time("1767225660000", "--since")
    (1767225660000, 1767225660000)
    """
    if text is None:
        return None
    if text.isdigit():
        return int(text)
    try:
        stamp = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(flag, "an ISO-8601 time or epoch milliseconds", text,
                          "write e.g. 2026-01-01T06:00:00Z.") from None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=timezone.utc)
    return round(stamp.timestamp() * 1000)


def report_topics(config: Config, model_metrics_topic: str = MODEL_METRICS_TOPIC) -> TopicNames:
    """The topics a report reads besides the monitors' own."""
    return TopicNames(config.source.dead_letter_topic, config.source.late_topic, model_metrics_topic,
                      config.schema.event_time, config.schema.time_format)


def topic_list(config: Config, names: TopicNames) -> list[str]:
    """Every topic a report reads."""
    monitors = [t for m in config.monitors for t in (m.summaries_topic, m.events_topic)]
    return sorted({*monitors, names.dead_letters, names.late, names.model_metrics})


def write_report(config: Config, read: Callable[[str], list[Message]], output: Path,
                 since_ms: int | None = None, until_ms: int | None = None,
                 model_metrics_topic: str = MODEL_METRICS_TOPIC) -> Path:
    """Read every topic with `read` (topic -> its JSON messages; [] when it does not exist),
    build the report and write it to `output`."""
    from dataflows.report.html import render

    if not config.monitors:
        raise ConfigError("monitors", "at least one [[monitors]] entry", "none",
                          "a drift report shows the monitors' columns; add a monitor (docs/drift.md).")
    names = report_topics(config, model_metrics_topic)
    topics = {t: within(read(t), since_ms, until_ms) for t in topic_list(config, names)}
    references = {name: ref.summary for name, ref in load_monitor_references(config.monitors).items()}
    page = render(build_report(config.monitors, topics, names, references))
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(page, encoding="utf-8")
    return output


def replay_reader(directory: Path) -> Callable[[str], list[Message]]:
    """Reads `<directory>/<topic>.jsonl`."""
    def read(topic: str) -> list[Message]:
        path = directory / f"{topic}.jsonl"
        return [orjson.loads(line) for line in path.read_bytes().splitlines() if line] if path.is_file() else []
    return read


def kafka_reader(bootstrap: str, config: Config) -> Callable[[str], list[Message]]:
    """Reads a topic from the start to its end (nothing for a topic that does not exist)."""
    from dataflows.kafka.clients import admin_client
    from dataflows.kafka.tail import read_messages

    existing = set(admin_client(bootstrap, config.kafka).list_topics(timeout=10.0).topics)

    def read(topic: str) -> list[Message]:
        if topic not in existing:
            return []
        return _json_values(msg.value() for msg in read_messages(bootstrap, topic, settings=config.kafka))
    return read


def _json_values(values: Iterable[bytes | None]) -> list[Message]:
    out: list[Message] = []
    for value in values:
        try:
            doc: Any = orjson.loads(value or b"")
        except orjson.JSONDecodeError:
            continue  # a foreign message on the topic is not ours to report
        if isinstance(doc, Mapping):
            out.append(doc)
    return out


def demo_report(config: Config, bootstrap: str, out_dir: Path) -> Path | None:
    """The demo's report of its topics (`<out_dir>/report.html`; None without monitors)."""
    if not config.monitors:
        return None
    return write_report(config, kafka_reader(bootstrap, config), out_dir / "report.html")


def report_command(args: argparse.Namespace) -> int:
    """Run `driftline report`."""
    config = load_config(args.config)
    since, until = parse_time(args.since, "--since"), parse_time(args.until, "--until")
    if args.replay_dir is not None:
        if not args.replay_dir.is_dir():
            raise ConfigError("--replay-dir", "a directory written by `driftline replay`", str(args.replay_dir),
                              "run `driftline replay --output-dir DIR` first.")
        read = replay_reader(args.replay_dir)
    else:
        read = kafka_reader(args.bootstrap, config)
    path = write_report(config, read, args.output, since, until, args.model_metrics_topic)
    print(f"report written to {path}", file=sys.stderr)
    return 0
