"""The `driftline` command line."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING
from pathlib import Path

from dataflows.kafka.broker import BrokerError

if TYPE_CHECKING:
    from dataflows.flows.cluster_env import ClusterPosition
    from dataflows.flows.runner import Execution
    from features.config import Config

DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "deploy" / "rides.toml"


def _add_bootstrap(parser: argparse.ArgumentParser, required: bool = True) -> None:
    parser.add_argument("--bootstrap", required=required, metavar="HOST:PORT",
                        help="Kafka bootstrap servers, e.g. 127.0.0.1:9092")


def _add_kafka_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=None,
                        help="take Kafka client properties (security) from this config's [kafka] table; "
                             "DRIFTLINE_KAFKA_* variables apply either way")


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="driftline",
        description="Streaming features and drift monitoring on Kafka, built on Bytewax.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser("demo", help="run the whole pipeline on a synthetic ride stream, with a local broker")
    _add_bootstrap(demo, required=False)
    demo.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="config file (default: deploy/rides.toml)")
    demo.add_argument("--events", type=int, default=200_000, help="events to generate (default 200000)")
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--output-dir", type=Path, default=Path("out/demo"), help="where the summary is written")

    broker = sub.add_parser("broker", help="run a local Kafka-protocol broker (Tansu) in the foreground")
    broker.add_argument("--port", type=int, default=9092)
    broker.add_argument("--log", type=Path, default=None, metavar="FILE",
                        help="write the broker's log here and keep it (default: a temporary log, deleted on a "
                             "clean stop, kept when the broker fails)")

    run = sub.add_parser("run", help="run a dataflow")
    from dataflows.flows.registry import FLOWS

    run.add_argument("flow", choices=sorted(FLOWS), help="; ".join(f"{f.name}: {f.summary}" for f in FLOWS.values()))
    run.add_argument("--config", type=Path, required=True)
    _add_bootstrap(run)
    run.add_argument("--stop-at-end", action="store_true",
                     help="stop once every input partition reaches the end offset it had at start")
    run.add_argument("-w", "--workers", type=int, default=None,
                     help="worker threads in this process (default: $BYTEWAX_WORKERS_PER_PROCESS or 1)")
    run.add_argument("--recovery-dir", type=Path, default=None,
                     help="keep state snapshots here and resume from them (created when new)")
    run.add_argument("--snapshot-interval", default="10s", metavar="DURATION",
                     help="how often state is snapshotted, e.g. 10s (the Bytewax epoch; default 10s)")
    run.add_argument("--metrics-port", type=int, default=None,
                     help="serve Prometheus metrics at http://0.0.0.0:PORT/metrics")
    run.add_argument("-i", "--process-id", type=int, default=None,
                     help="this process's index in a cluster of processes (with --addresses; default from "
                          "BYTEWAX_PROCESS_ID or BYTEWAX_POD_NAME/BYTEWAX_STATEFULSET_NAME)")
    run.add_argument("--log-format", choices=("json", "text"), default=None,
                     help="log lines as JSON objects or text (default: json unless stderr is a terminal)")
    run.add_argument("--log-level", choices=("debug", "info", "warning", "error"), default="info",
                     help="the least severe log lines shown (default info); debug also shows the traceback "
                          "of an error")
    run.add_argument("-a", "--addresses", default=None, metavar="HOST:PORT;HOST:PORT",
                     help="every process's address, ';'-separated, the same list and order in each process "
                          "(default from BYTEWAX_ADDRESSES, BYTEWAX_HOSTFILE_PATH or BYTEWAX_REPLICAS)")
    run.add_argument("--online-store-url", default=None, metavar="URL",
                     help="features flow: the Redis URL of the online store (default: [online_store].url)")

    topics = sub.add_parser("topics", help="create the topics the flows read and write (existing ones are kept)")
    topics.add_argument("--config", type=Path, required=True)
    _add_bootstrap(topics)
    topics.add_argument("--flow", action="append", choices=sorted(FLOWS), default=None,
                        help="flows whose topics to create (default: every flow the config enables)")
    topics.add_argument("--topic", action="append", default=[], metavar="NAME",
                        help="one more topic to create, e.g. rides.labels (repeatable)")
    topics.add_argument("--partitions", type=int, default=None, help="default: the config's source.partitions")
    topics.add_argument("--replication-factor", type=int, default=1)

    replay = sub.add_parser("replay", help="run the flows over a JSONL file of events, writing <dir>/<topic>.jsonl")
    replay.add_argument("--config", type=Path, required=True)
    replay.add_argument("--input", type=Path, required=True, help="JSONL file of events, one per line")
    replay.add_argument("--output-dir", type=Path, required=True)
    replay.add_argument("--flow", action="append", choices=sorted(FLOWS), default=None,
                        help="flows to run (default: every flow the config enables)")
    replay.add_argument("--labels", type=Path, default=None, metavar="FILE",
                        help="JSONL file of labels for the model flow (its models' labels topic)")

    produce = sub.add_parser("produce", help="write the synthetic ride stream to Kafka or to files")
    _add_bootstrap(produce, required=False)
    produce.add_argument("--topic", default="rides")
    produce.add_argument("--labels-topic", default=None, help="default <topic>.labels")
    produce.add_argument("--events", type=int, required=True)
    produce.add_argument("--rate", type=float, default=None, help="events per second (default: as fast as possible)")
    produce.add_argument("--seed", type=int, default=0)
    produce.add_argument("--malformed-fraction", type=float, default=0.0)
    produce.add_argument("--change", action="append", default=[], metavar="SPEC",
                         help="plant a change, e.g. shift:price:start=300000:scale=1.3 (repeatable)")
    produce.add_argument("--partitions", type=int, default=3, help="partitions of topics this command creates")
    produce.add_argument("--output", type=Path, help="write events to this JSONL file instead of Kafka")
    produce.add_argument("--labels-output", type=Path, help="with --output: write labels to this JSONL file")
    _add_kafka_config(produce)

    from dataflows.cli.samples import add_samples_parser

    add_samples_parser(sub)

    from dataflows.cli.expectations import add_expectations_parser

    add_expectations_parser(sub)

    from dataflows.cli.report import add_report_parser

    add_report_parser(sub)

    from dataflows.cli.serving import add_serving_parsers

    add_serving_parsers(sub)

    from dataflows.cli.training_set import add_training_set_parser

    add_training_set_parser(sub)

    reference = sub.add_parser("reference", help="build a drift reference from a file of training events")
    reference_sub = reference.add_subparsers(dest="reference_command", required=True, metavar="ACTION")
    build = reference_sub.add_parser("build", help="summarise a JSONL file once for every monitor of the config")
    build.add_argument("--config", type=Path, required=True)
    build.add_argument("--input", type=Path, required=True, help="JSONL file of training events, one per line")
    build.add_argument("--output", type=Path, required=True, help="the reference file to write (JSON)")

    model = sub.add_parser("model", help="online models: export the latest snapshot")
    model_sub = model.add_subparsers(dest="model_command", required=True, metavar="ACTION")
    export = model_sub.add_parser("export", help="write a model's latest snapshot to a pickle file")
    _add_bootstrap(export)
    export.add_argument("--topic", default="model.snapshots", help="snapshots topic (default model.snapshots)")
    export.add_argument("--model", required=True, help="the model's name in the config")
    export.add_argument("--segment", default=None, help="the segment, for a model with segment_by")
    export.add_argument("--output", type=Path, required=True, help="pickle file to write, e.g. model.pkl")

    tail = sub.add_parser("tail", help="print a topic's messages")
    tail.add_argument("topic")
    _add_bootstrap(tail)
    tail.add_argument("--follow", "-f", action="store_true", help="keep waiting for new messages")
    tail.add_argument("--max", type=int, default=None, dest="max_messages", help="stop after N messages")
    tail.add_argument("--compact", action="store_true", help="one line per message")
    _add_kafka_config(tail)
    return parser


def _cmd_broker(args: argparse.Namespace) -> int:
    from dataflows.kafka.broker import local_broker

    try:
        with local_broker(port=args.port, log_path=args.log) as broker:
            print(f"driftline: local broker (Tansu) at {broker.bootstrap}; log: {broker.log_path}; Ctrl-C, "
                  "SIGTERM or SIGHUP stops it", flush=True)
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM/SIGHUP (BrokerStopped): the broker stopped in order
        pass
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from dataflows.counters import FlowCounters
    from dataflows.flows.registry import FLOWS
    from dataflows.kafka.clients import admin_client
    from dataflows.kafka.io import KafkaInput, KafkaOutput
    from dataflows.cli.logs import configure_logging
    from dataflows.cli.run_log import RunLog
    from dataflows.flows.runner import run_flow, stop_on_sigterm
    from dataflows.kafka.topic_check import require_topics
    from features.config import load_config

    log_format = configure_logging(args.log_format, level=getattr(logging, args.log_level.upper()))
    config = load_config(args.config)
    position = _cluster(args)
    execution = _execution(args, position)
    admin_client(args.bootstrap, config.kafka)  # a property librdkafka refuses stops here, not inside the flow
    require_topics(args.bootstrap, _input_topic_keys(config, FLOWS[args.flow].input_topics(config)), config.kafka,
                   args.config)  # a typo in a topic name stops here; nothing creates the flow's input
    counters = FlowCounters()
    low_latency = FLOWS[args.flow].low_latency(config)
    source = KafkaInput(args.bootstrap, FLOWS[args.flow].input_topics(config), stop_at_end=args.stop_at_end,
                        counters=counters, settings=config.kafka, low_latency=low_latency)
    if args.metrics_port is not None:
        from dataflows.flows.metrics import known_counters, serve_metrics

        counters.declare(known_counters(args.flow, config))  # exported at 0 until counted
        serve_metrics(counters, args.metrics_port)
    sink = KafkaOutput(args.bootstrap, config.kafka, flush_each_batch=args.recovery_dir is not None,
                       low_latency=low_latency)
    if args.flow == "features":
        from dataflows.cli.serving import with_online_store

        sink = with_online_store(config, sink, counters, args.online_store_url)
    flow = FLOWS[args.flow].build_for(config, source, sink, counters, workers=execution.total_workers)
    with RunLog(args.flow, config, args.bootstrap, execution, position.origin, counters, args.metrics_port,
                log_format), stop_on_sigterm():
        run_flow(flow, execution)
    return 0


def _input_topic_keys(config: Config, topics: tuple[str, ...]) -> dict[str, str]:
    """The config key that names each input topic (the events topic, each model's labels topic)."""
    keys = {config.source.topic: "source.topic"}
    for i, spec in enumerate(config.models):
        keys.setdefault(spec.labels.topic, f"models[{i}].labels.topic")
    return {keys.get(topic, "source.topic"): topic for topic in topics}


def _cluster(args: argparse.Namespace) -> ClusterPosition:
    from dataflows.flows.cluster_env import cluster_position

    return cluster_position(args.workers, args.process_id, args.addresses, os.environ)


def _execution(args: argparse.Namespace, position: ClusterPosition) -> Execution:
    from dataflows.flows.runner import Execution
    from features.config_values import ConfigError, parse_duration_ms

    workers, process_id, addresses = position.workers, position.process_id, position.addresses
    if workers < 1:
        raise ConfigError("--workers", "a positive number of worker threads", workers, "pass -w 1 or more.")
    if (addresses is None) != (process_id is None):
        raise ConfigError("--process-id/--addresses", "both or neither", f"{process_id!r}/{addresses!r}",
                          "pass --process-id N and --addresses with every process's host:port.")
    if addresses is not None and not 0 <= process_id < len(addresses):
        raise ConfigError("--process-id", f"an index into the {len(addresses)} addresses", process_id,
                          "number the processes 0, 1, ... in the order of --addresses.")
    try:
        interval_ms = parse_duration_ms(args.snapshot_interval)
    except ValueError as exc:
        raise ConfigError("--snapshot-interval", "a duration such as 500ms, 10s or 1m", args.snapshot_interval,
                          str(exc)) from None
    if interval_ms <= 0:
        raise ConfigError("--snapshot-interval", "a positive duration", args.snapshot_interval, "pass e.g. 10s.")
    return Execution(workers=workers, process_id=process_id, addresses=addresses,
                     epoch_interval_s=interval_ms / 1000, recovery_dir=args.recovery_dir)


def _cmd_topics(args: argparse.Namespace) -> int:
    from dataflows.kafka.broker import create_topics
    from dataflows.flows.registry import default_flows, topics_for
    from features.config import load_config

    config = load_config(args.config)
    names = list(dict.fromkeys((*topics_for(config, args.flow or default_flows(config)), *args.topic)))
    create_topics(args.bootstrap, names, partitions=args.partitions or config.source.partitions,
                  settings=config.kafka, replication_factor=args.replication_factor)
    print(f"driftline: topics ready at {args.bootstrap}: {', '.join(names)}")
    return 0


def _cmd_replay(args: argparse.Namespace) -> int:
    from dataflows.cli.replay import replay

    replay(args.config, args.input, args.output_dir, args.flow, labels_path=args.labels)
    return 0


def _cmd_produce(args: argparse.Namespace) -> int:
    from dataflows.cli.produce import produce_command

    return produce_command(args)


def _cmd_tail(args: argparse.Namespace) -> int:
    from dataflows.kafka.clients import command_settings
    from dataflows.kafka.tail import tail

    tail(args.bootstrap, args.topic, follow=args.follow, max_messages=args.max_messages, compact=args.compact,
         settings=command_settings(args.config))
    return 0


def _cmd_samples(args: argparse.Namespace) -> int:
    from dataflows.cli.samples import samples_command

    return samples_command(args)


def _cmd_reference(args: argparse.Namespace) -> int:
    from dataflows.cli.reference import build_reference_file

    build_reference_file(args.config, args.input, args.output)
    return 0


def _cmd_model(args: argparse.Namespace) -> int:
    from dataflows.kafka.clients import command_settings
    from dataflows.cli.model_export import ExportError, export_model

    try:
        snapshot = export_model(args.bootstrap, args.topic, args.model, args.output, args.segment,
                                command_settings(None))
    except (ExportError, RuntimeError) as exc:
        print(f"driftline: {exc}", file=sys.stderr)
        return 1
    segment = f" segment {snapshot['segment']}" if snapshot["segment"] is not None else ""
    print(f"wrote {args.output}: model {args.model}{segment} version {snapshot['version']} ({snapshot['kind']}), "
          f"{snapshot['examples_learned']:,} examples learned, as of {snapshot['as_of']}, "
          f"River {snapshot['river_version']}")
    return 0


def _cmd_expectations(args: argparse.Namespace) -> int:
    from dataflows.cli.expectations import expectations_command

    return expectations_command(args)


def _cmd_report(args: argparse.Namespace) -> int:
    from dataflows.cli.report import report_command

    return report_command(args)


def _cmd_serve_check(args: argparse.Namespace) -> int:
    from dataflows.cli.serving import cmd_serve_check

    return cmd_serve_check(args)


def _cmd_training_set(args: argparse.Namespace) -> int:
    from dataflows.cli.training_set import cmd_training_set

    return cmd_training_set(args)


def _cmd_demo(args: argparse.Namespace) -> int:
    from dataflows.cli.demo import run_demo

    return run_demo(args)


_COMMANDS = {"broker": _cmd_broker, "run": _cmd_run, "replay": _cmd_replay, "produce": _cmd_produce, "tail": _cmd_tail,
             "demo": _cmd_demo, "samples": _cmd_samples, "topics": _cmd_topics, "reference": _cmd_reference,
             "model": _cmd_model, "expectations": _cmd_expectations, "report": _cmd_report,
             "serve-check": _cmd_serve_check, "training-set": _cmd_training_set}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `driftline` console script."""
    from dataflows.flows.runner import Terminated
    from dataflows.kafka.topic_check import KafkaUnreachable
    from dataflows.serving.writer import OnlineStoreError
    from features.config_values import ConfigError

    args = _build_parser().parse_args(argv)
    try:
        return _COMMANDS[args.command](args)
    except (ConfigError, BrokerError, OnlineStoreError) as exc:
        _report("error", str(exc))
        return 2
    except Terminated:
        _report("terminated", "stopped by SIGTERM; a restart with the same --recovery-dir resumes from the last snapshot")
        return 0
    except KeyboardInterrupt:
        _report("interrupted", "interrupted")
        return 130
    except KafkaUnreachable as exc:  # an operating problem: the message; the traceback only at debug level
        _report("error", str(exc), exc if _debug(args) else None)
        return 1
    except Exception as exc:
        from dataflows.cli.logs import is_configured

        if not is_configured():
            raise
        _report("crashed", f"{type(exc).__name__}: {exc}", exc)  # the traceback as a field of one JSON line
        return 1


def _debug(args: argparse.Namespace) -> bool:
    return getattr(args, "log_level", "info") == "debug"


def _report(event: str, message: str, exc: BaseException | None = None) -> None:
    """An error or stop: a log record once `run` has set up logging (JSON lines stay JSON), else a line on stderr."""
    from dataflows.cli.logs import is_configured, log_event

    if is_configured():
        log_event(logging.getLogger("driftline.cli"), event, message,
                  level=logging.WARNING if event in ("terminated", "interrupted") else logging.ERROR, exc=exc)
    else:
        print(f"driftline: {message}", file=sys.stderr)

