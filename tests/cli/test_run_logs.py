"""`driftline run` logs JSON lines (start with a redacted config summary, progress, end) or text."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from dataflows.kafka.broker import RunningBroker, create_topics
from dataflows.counters import FlowCounters
from dataflows.cli.logs import choose_format, configure_logging, log_event
from dataflows.cli.run_log import RunLog
from dataflows.flows.runner import Execution
from features.config import parse_config
from tests.flow_fixtures import event_lines, make_config, to_toml
from tests.kafka_helpers import consume_json, produce

SECRET = "hunter2-logs"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def restore_logging():
    logger = logging.getLogger("driftline")
    saved = (list(logger.handlers), logger.level, logger.propagate)
    yield
    logger.handlers[:], logger.level, logger.propagate = saved[0], saved[1], saved[2]


def test_json_unless_a_terminal_and_both_formats_carry_the_fields(restore_logging) -> None:
    assert choose_format(None, io.StringIO()) == "json"
    assert choose_format(None, _Terminal()) == "text"
    assert choose_format("json", _Terminal()) == "json"
    for fmt in ("json", "text"):
        out = io.StringIO()
        configure_logging(fmt, stream=out)
        log_event(logging.getLogger("driftline.test"), "lag", "behind", partition=2, topic="rides")
        line = out.getvalue().strip()
        if fmt == "json":
            record = orjson.loads(line)
            assert (record["event"], record["message"], record["partition"], record["topic"]) == \
                ("lag", "behind", 2, "rides")
            assert record["time"].endswith("Z") and record["level"] == "info" and record["logger"] == "driftline.test"
        else:
            assert line.endswith("info behind partition=2 topic=rides")


def test_progress_records_while_a_run_goes_and_the_end_counts(restore_logging) -> None:
    out = io.StringIO()
    configure_logging("json", stream=out)
    config = parse_config({**make_config("p-"), "kafka": {"sasl.password": SECRET}})
    counters = FlowCounters()
    with RunLog("features", config, "k:9092", Execution(epoch_interval_s=0.01), "flags", counters,
                log_format="json", stream=out, min_progress_interval_s=0.01):
        counters.add({"events_in": 7, "valid": 6, "rejected.not_json": 1})
        deadline = time.monotonic() + 30
        while '"progress"' not in out.getvalue() and time.monotonic() < deadline:
            time.sleep(0.01)
    records = [orjson.loads(line) for line in out.getvalue().splitlines()]
    assert records[0]["event"] == "run_start" and records[-1]["event"] == "run_end"
    assert records[0]["kafka"] == {"sasl.password": "<redacted>"} and SECRET not in out.getvalue()
    progress = [r for r in records if r["event"] == "progress"]
    assert progress and progress[-1]["events_in"] == 7 and progress[-1]["rejected"] == 1
    assert records[-1]["counters"]["valid"] == 6 and records[-1]["outcome"] == "finished"


def test_text_on_a_terminal_keeps_the_live_line_and_prints_the_summary(restore_logging) -> None:
    terminal = _Terminal()
    configure_logging("text", stream=terminal)
    counters = FlowCounters()
    counters.add({"events_in": 3, "valid": 3})
    with RunLog("features", parse_config(make_config("q-")), "k:9092", Execution(), "flags", counters,
                log_format="text", stream=terminal):
        pass
    shown = terminal.getvalue()
    assert "\r\x1b[K" in shown and "events/s" in shown  # the updating progress line
    assert "flow 'features' finished\nprocessed 3 events" in shown


@pytest.mark.integration
def test_a_run_writes_only_json_lines_to_a_pipe(broker: RunningBroker, topic_prefix: str, tmp_path: Path) -> None:
    document = make_config(topic_prefix)
    config = parse_config(document)
    path = tmp_path / "config.toml"
    path.write_text(to_toml(document) + f'[kafka]\n"sasl.password" = "{SECRET}"\n')
    create_topics(broker.bootstrap, [config.source.topic, config.source.dead_letter_topic, config.source.late_topic,
                                     *(fs.topic for fs in config.feature_sets)], partitions=3)
    produce(broker.bootstrap, config.source.topic, event_lines(4_000, seed=43))
    done = subprocess.run([sys.executable, "-m", "dataflows.cli", "run", "features", "--config", str(path),
                           "--bootstrap", broker.bootstrap, "--stop-at-end"], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "BYTEWAX_WORKERS_PER_PROCESS": "2"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert SECRET not in done.stderr + done.stdout
    records = [orjson.loads(line) for line in done.stderr.splitlines()]  # every line is JSON
    start, end = records[0], records[-1]
    assert start["event"] == "run_start" and start["workers"] == 2 and start["input_topic"] == config.source.topic
    assert start["output_topics"][2:] == [fs.topic for fs in config.feature_sets]
    assert end["event"] == "run_end" and end["counters"]["events_in"] == 4_000
    assert end["counters"]["late"] == len(consume_json(broker.bootstrap, config.source.late_topic))


def test_an_unreachable_broker_ends_the_run_with_one_json_error_line(tmp_path: Path) -> None:
    from dataflows.kafka.broker import free_port

    path = tmp_path / "config.toml"
    path.write_text(to_toml(make_config("gone-")))
    done = subprocess.run([sys.executable, "-m", "dataflows.cli", "run", "features", "--config", str(path),
                           "--bootstrap", f"127.0.0.1:{free_port()}", "--stop-at-end"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 1
    records = [orjson.loads(line) for line in done.stderr.splitlines()]  # still only JSON lines
    assert records[-1]["event"] == "error" and records[-1]["level"] == "error"
    assert "cannot reach Kafka" in records[-1]["message"] and "Traceback" not in done.stderr  # --log-level debug


def test_the_summary_says_where_late_events_went() -> None:
    from dataflows.cli.status_lines import flow_summary

    counters = FlowCounters()
    counters.add({"events_in": 5, "valid": 5, "features_out": 3, "late": 2})
    summary = flow_summary(counters, late_topic="rides.late")
    assert "late events (to rides.late)" in summary and "(kept)" not in summary


def test_run_start_says_whether_it_resumes_from_a_snapshot(restore_logging, tmp_path: Path) -> None:
    import bytewax.operators as op
    from bytewax.dataflow import Dataflow
    from bytewax.testing import TestingSink, TestingSource

    from dataflows.flows.runner import run_flow

    def start_record(execution: Execution) -> dict:
        out = io.StringIO()
        configure_logging("json", stream=out)
        with RunLog("features", parse_config(make_config("r-")), "k:9092", execution, "flags", stream=out):
            pass
        return orjson.loads(out.getvalue().splitlines()[0])

    execution = Execution(recovery_dir=tmp_path / "recovery")
    fresh = start_record(execution)
    assert fresh["resumed_from_epoch"] is None and "fresh start" in fresh["message"]
    flow = Dataflow("resume")
    op.output("out", op.input("in", flow, TestingSource(range(10))), TestingSink([]))
    run_flow(flow, execution)
    resumed = start_record(execution)
    assert isinstance(resumed["resumed_from_epoch"], int) and resumed["resumed_from_epoch"] >= 1
    assert f"resuming from the snapshot of epoch {resumed['resumed_from_epoch']}" in resumed["message"]
