"""Prediction latency of the model flow: an event's append to the events topic -> its prediction's
append to `predictions.<model>`, in the event-time and the arrival order, at steady rates.

Usage: .venv/bin/python bench/bench_model_latency.py [--rates 1000,10000] [--orders event_time,arrival]
       [--seconds 8] [--lateness 10s] [--repeat 1]

A local broker (Tansu), topics of 2 partitions; `driftline run model` (one process, one worker,
a Hoeffding tree on 5 inputs, started through bench/latency_flow.py, which times its reads),
started and reading (its metrics endpoint counts a warm-up event and label on every partition)
before the clock starts; a producer writes ride events at the given rate with `ts` = the wall
clock, and each ride's label 2 s later. Latency is the prediction message's Kafka timestamp
(set when the flow produced it) minus the event's (set when the bench produced it), over the
events of the measured seconds, in steady state: the first 3 s are warm-up (in the arrival
order a prediction waits until every input partition has passed it, so until the first labels
come, 2 s in, predictions wait for them; see docs/models.md). "e2e" runs until the bench's
consumer, reading the predictions during the run, has the prediction. p50 and p99 per order
and rate; each case runs `--repeat` times (interleaved: a shared machine is noisy), every run
printed with the load average, then a breakdown per stage (STAGE_HELP) and the flow's full
garbage collections.

The bench's own clients are part of what it measures, so they are set as a service's would
be and their share is shown: the producer uses librdkafka's default `linger.ms` (5; see
PRODUCER_LINGER_MS) and its produce -> acknowledgement is the first stage; the consumer's
fetches wait at most as long as the flow's (Tansu holds every fetch that long, so `ack>bench`
is the broker's part of `ack>flow`). "sent/s" and "behind ms" say whether the bench's
generator kept to the rate. The flow's producer keeps its own settings (`linger.ms` 20 in the
event-time order, 5 in the arrival order: the Kafka timestamp is taken when a message is
produced, so that linger is only in e2e).
"""

from __future__ import annotations

import argparse
import os
import bisect
import collections
import random
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import orjson

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from bench_model import config_text  # noqa: E402

LABEL_DELAY_MS = 2000  # each ride's label comes this long after it
WARM_UP_S = 3.0  # produced before the measured events: labels flow by then
# The bench's producer, as a service's would be: librdkafka's default linger. Shorter, Tansu
# spends its CPU on requests of a few messages: at 1 ms (events and labels, 2k messages/s) it
# fell behind by seconds on the loaded 2-core machine, at 0 by more, and the bench measured
# that backlog rather than the flow. The breakdown shows the producer's part (produce>ack).
PRODUCER_LINGER_MS = 5
FETCH_WAIT_MS = 20  # the bench's consumer holds Tansu's fetches as long as the flow's (Tansu holds each one that long)
# The breakdown of a measured event's way, each the difference of two wall clocks of this machine.
STAGE_HELP = {
    "produce>ack": "the bench's producer: produce() -> the broker's acknowledgement",
    "ack>bench": "acknowledged -> a consumer doing nothing else (the bench's) has it: the reference for ack>flow",
    "ack>flow": "acknowledged -> the flow's read returned it",
    "flow>model": "the flow's read -> the model step began its batch (decode, route, join, wait for the order)",
    "model>out": "the model step began -> the prediction produced (its Kafka timestamp)",
    "out>bench": "the prediction produced -> the bench's consumer has it (the flow's linger, broker, fetch)",
    "ack>out": "acknowledged -> the prediction produced: the flow's share (with the broker's fetch)",
}
STAGES = tuple(STAGE_HELP)


def produce(producer: Any, topic: str, value: bytes, key: bytes, timestamp: int,
            on_delivery: Any = None) -> None:
    """Produce, waiting for deliveries while the local queue is full (the broker lags)."""
    while True:
        try:
            if on_delivery is None:
                producer.produce(topic, value, key, timestamp=timestamp)
            else:
                producer.produce(topic, value, key, timestamp=timestamp, on_delivery=on_delivery)
            return
        except BufferError:
            producer.poll(0.05)


def wait_until_reading(port: int, producer: Any, prefix: str, partitions: int = 2,
                       timeout_s: float = 120.0) -> None:
    """Write a warm-up event to each events partition and its label to each labels partition,
    and wait until the flow's metrics endpoint counts them all read. The arrival order waits
    for every input partition's first message (see docs/models.md): without this, the first
    second of measured events would wait for the first labels."""
    t_ms = int(time.time() * 1000)
    for p in range(partitions):
        ride = f"warm-up-{p}"
        event = {"ride_id": ride, "area": "a0", "price": 10.0, "distance_km": 2.0, "surge": None,
                 "eta_min": 5.0, "payment": "card", "ts": t_ms}
        producer.produce(f"{prefix}rides", orjson.dumps(event), b"a0", partition=p, timestamp=t_ms)
        label = {"ride_id": ride, "cancelled": False, "ts": t_ms}
        producer.produce(f"{prefix}rides.labels", orjson.dumps(label), ride.encode(), partition=p, timestamp=t_ms)
    producer.flush(10)
    wanted = {"driftline_events_in_total": partitions, 'driftline_model_events_total{event="labels_in"}': partitions}
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        try:
            text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
        except OSError:
            text = ""
        seen = {name: float(value) for name, value in (line.rsplit(" ", 1) for line in text.splitlines()
                                                        if line and not line.startswith("#"))}
        if all(seen.get(name, 0) >= count for name, count in wanted.items()):
            return
        time.sleep(0.2)
    raise RuntimeError(f"the model flow did not read its warm-up messages within {timeout_s:.0f} s")


class Collector:
    """The bench's consumer, in a thread: the predictions as they arrive (to time the flow's
    output as a service would see it) and the events (the broker's delivery to a consumer that
    does nothing else: the reference for the flow's read). Stores what it gets; the bench
    decodes it after the run."""

    def __init__(self, bootstrap: str, prefix: str, partitions: int = 2) -> None:
        from confluent_kafka import Consumer, TopicPartition

        self.predictions: list[tuple[bytes, bytes, int, int]] = []  # key, value, Kafka timestamp, received ms
        self.events: dict[tuple[int, int], int] = {}  # (partition, offset) -> received ms
        self._events_topic = f"{prefix}rides"
        self._consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"lat-{prefix}",
                                   "enable.auto.commit": False, "fetch.wait.max.ms": FETCH_WAIT_MS})
        self._consumer.assign([TopicPartition(topic, p, 0) for topic in (self._events_topic, f"{prefix}predictions")
                               for p in range(partitions)])
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        events, predictions, events_topic = self.events, self.predictions, self._events_topic
        consumer = self._consumer
        while not self._stop.is_set():
            # poll() returns with the first message; consume(n, timeout) would wait the whole
            # timeout for n messages. Then what else is there, without waiting.
            first = consumer.poll(0.05)
            if first is None:
                continue
            messages = [first, *consumer.consume(10000, 0)]
            now = int(time.time() * 1000)
            for msg in messages:
                if msg.error() is not None:
                    continue
                if msg.topic() == events_topic:
                    events[(msg.partition(), msg.offset())] = now
                else:
                    predictions.append((msg.key(), msg.value(), msg.timestamp()[1], now))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self._consumer.close()


@dataclass
class Sent:
    """One measured event as the bench produced it."""

    created: int  # its Kafka timestamp (ms): when the bench produced it
    acked: int = 0  # when the bench's producer got the broker's acknowledgement
    partition: int = -1
    offset: int = -1


@dataclass
class Case:
    """What one run of an order and rate measured."""

    latencies: list[float]  # event append -> prediction append (Kafka timestamps), per measured event
    end_to_end: list[float]  # event append -> the bench's consumer has the prediction
    stages: dict[str, list[float]]  # per STAGES name, per measured event that has every timestamp
    sent: int  # measured events
    behind_ms: float  # how far the bench's producer fell behind its schedule, at most
    produced_per_s: float  # events produced per second over the run
    full_collections_ms: list[float] = field(default_factory=list)  # the flow's full collections, measured part


def run_case(bootstrap: str, directory: Path, order: str, rate: int, seconds: float, lateness: str,
             run: int = 0) -> Case:
    from confluent_kafka import Producer

    from dataflows.kafka.broker import create_topics, free_port

    prefix = f"{order}-{rate}-{run}-"
    text = config_text(False, "hoeffding_tree_classifier", {"grace_period": 100})
    text = text.replace('topic = "rides"', f'topic = "{prefix}rides"').replace('lateness = "10s"', f'lateness = "{lateness}"')
    text = text.replace('topic = "rides.labels"', f'topic = "{prefix}rides.labels"')
    text = text.replace('snapshot_every = "5m"', f'snapshot_every = "5m"\norder = "{order}"\ntopic = "{prefix}predictions"')
    config = directory / f"{prefix}config.toml"
    config.write_text(text)
    topics = [f"{prefix}{t}" for t in ("rides", "rides.labels", "predictions", "rides.dlq", "rides.labels.dlq")]
    create_topics(bootstrap, topics + ["model.metrics", "model.snapshots", "drift.events"], partitions=2)
    log = (directory / f"{prefix}flow.log").open("wb")
    reads_file = directory / f"{prefix}reads.jsonl"
    port = free_port()
    flow = subprocess.Popen([sys.executable, str(HERE / "latency_flow.py"), str(reads_file), "run", "model",
                             "--config", str(config), "--bootstrap", bootstrap, "--metrics-port", str(port)],
                            stdout=log, stderr=subprocess.STDOUT)
    collector = Collector(bootstrap, prefix)
    sent: dict[str, Sent] = {}

    def acked(ride: str, err: object, msg: Any) -> None:
        if err is None:
            entry = sent[ride]
            entry.acked, entry.partition, entry.offset = int(time.time() * 1000), msg.partition(), msg.offset()

    try:  # the flow stops whatever happens here
        producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": PRODUCER_LINGER_MS, "acks": "1"})
        wait_until_reading(port, producer, prefix)
        rng = random.Random(rate)
        labels: collections.deque[tuple[float, bytes, bytes]] = collections.deque()
        lateness_s = int(lateness.rstrip("s"))
        start = time.time()
        measured_from, measured_to = start + WARM_UP_S, start + WARM_UP_S + seconds
        end = measured_to + (lateness_s + 3 if order == "event_time" else 2)  # until the last measured event is out
        n = 0
        behind = 0.0
        events_topic, labels_topic = f"{prefix}rides", f"{prefix}rides.labels"
        while True:
            now = time.time()
            if now >= end:
                break
            due = int((now - start) * rate)
            if due > n:
                behind = max(behind, now - (start + n / rate))
            while n < due:
                t_ms = int(time.time() * 1000)
                ride = f"r{n}"
                area = f"a{rng.randrange(50)}"
                event = {"ride_id": ride, "area": area, "price": rng.uniform(5, 50), "distance_km": rng.uniform(1, 20),
                         "surge": None, "eta_min": rng.uniform(1, 15), "payment": "card", "ts": t_ms}
                if measured_from * 1000 <= t_ms < measured_to * 1000:
                    sent[ride] = Sent(t_ms)
                    produce(producer, events_topic, orjson.dumps(event), area.encode(), t_ms, partial(acked, ride))
                else:
                    produce(producer, events_topic, orjson.dumps(event), area.encode(), t_ms)
                label = {"ride_id": ride, "cancelled": rng.random() < 0.2, "ts": t_ms + LABEL_DELAY_MS}
                labels.append((now + LABEL_DELAY_MS / 1000, ride.encode(), orjson.dumps(label)))
                n += 1
            while labels and labels[0][0] <= now:
                _, key, value = labels.popleft()
                produce(producer, labels_topic, value, key, int(now * 1000))
            producer.poll(0)
            time.sleep(0.0005)
        produced_per_s = n / (time.time() - start)
        producer.flush(30)
        time.sleep(2)
    finally:
        flow.terminate()
        try:
            flow.wait(timeout=60)
        except subprocess.TimeoutExpired:  # e.g. still flushing a backlog to a slow broker
            print(f"  ({order}, {rate}/s: the flow did not stop within 60 s of SIGTERM; killed)", file=sys.stderr)
            flow.kill()
            flow.wait()
        collector.stop()
    reads, collections_ms = read_times(reads_file, events_topic, (int(measured_from * 1000), int(end * 1000)))
    case = measure(sent, collector, reads, behind * 1000, produced_per_s)
    case.full_collections_ms = collections_ms
    if len(case.latencies) < 0.9 * len(sent):
        print(f"  ({order}, {rate}/s: {len(case.latencies)} of {len(sent)} measured events predicted before the stop;"
              " the rest count as not measured)", file=sys.stderr)
    return case


def read_times(path: Path, topic: str, window_ms: tuple[int, int]
               ) -> tuple[dict[int, list[tuple[int, int, int]]], list[float]]:
    """The flow's reads of `topic` (see latency_flow.py): per partition, sorted
    `(first offset, count, read ms)`; and the durations (ms) of its full garbage collections
    that ended within `window_ms`."""
    by_partition: dict[int, list[tuple[int, int, int]]] = collections.defaultdict(list)
    collections_ms: list[float] = []
    if path.exists():
        for line in path.read_bytes().splitlines():
            record = orjson.loads(line)
            if record[0] == "gc":
                if window_ms[0] <= record[1] < window_ms[1]:
                    collections_ms.append(record[2])
                continue
            read_ms, read_topic, partition, first, count = record
            if read_topic == topic:
                by_partition[partition].append((first, count, read_ms))
    for reads in by_partition.values():
        reads.sort()
    return by_partition, collections_ms


def read_at(reads: list[tuple[int, int, int]], offset: int) -> int | None:
    """When the flow read `offset`, from its partition's reads."""
    i = bisect.bisect_right(reads, (offset, float("inf"))) - 1
    if i >= 0 and reads[i][0] <= offset < reads[i][0] + reads[i][1]:
        return reads[i][2]
    return None


def measure(sent: dict[str, Sent], collector: Collector, reads: dict[int, list[tuple[int, int, int]]],
            behind_ms: float, produced_per_s: float) -> Case:
    """Each measured event's latency and its stages (every clock is this machine's wall clock)."""
    latencies, end_to_end = [], []
    stages: dict[str, list[float]] = {name: [] for name in STAGES}
    for key, value, produced, received in collector.predictions:
        event = sent.get(key.decode())
        if event is None:
            continue
        latencies.append(produced - event.created)
        end_to_end.append(received - event.created)
        read = read_at(reads.get(event.partition, []), event.offset)
        polled = collector.events.get((event.partition, event.offset))
        if not event.acked or read is None or polled is None:
            continue
        modelled = parse_iso_ms(orjson.loads(value)["emitted_at"])
        for name, ms in zip(STAGES, (event.acked - event.created, polled - event.acked, read - event.acked,
                                     modelled - read, produced - modelled, received - produced,
                                     produced - event.acked)):
            stages[name].append(ms)
    return Case(latencies, end_to_end, stages, len(sent), behind_ms, produced_per_s)


def parse_iso_ms(text: str) -> int:
    """`2024-05-01T12:00:00.123Z` as epoch milliseconds."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return int(moment.timestamp() * 1000 + 0.5)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="1000,10000")
    parser.add_argument("--orders", default="event_time,arrival")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--lateness", default="10s", help="source.lateness, in whole seconds")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each case, interleaved")
    args = parser.parse_args()
    from dataflows.kafka.broker import local_broker

    print(f"event append -> prediction append, lateness {args.lateness}, {args.seconds:g} s measured per case;"
          f" end to end: until the bench's consumer has the prediction\n")
    print(f"{'order':<11} {'events/s':>8} {'run':>3} {'predictions':>11} {'p50 ms':>7} {'p99 ms':>7} "
          f"{'e2e p50':>7} {'e2e p99':>7} {'sent/s':>7} {'behind ms':>9}  load", flush=True)
    breakdowns = []
    with tempfile.TemporaryDirectory(prefix="bench-latency-") as tmp, local_broker() as broker:
        for run in range(args.repeat):
            for rate in (int(r) for r in args.rates.split(",")):
                for order in args.orders.split(","):
                    case = run_case(broker.bootstrap, Path(tmp), order, rate, args.seconds, args.lateness, run)
                    lat, e2e = case.latencies, case.end_to_end
                    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
                    print(f"{order:<11} {rate:>8,} {run + 1:>3} {len(lat):>11,} {percentile(lat, 0.5):>7,.0f} "
                          f"{percentile(lat, 0.99):>7,.0f} {percentile(e2e, 0.5):>7,.0f} {percentile(e2e, 0.99):>7,.0f} "
                          f"{case.produced_per_s:>7,.0f} {case.behind_ms:>9,.0f}  {load}", flush=True)
                    breakdowns.append((order, rate, run, case))
    print("\nbreakdown, ms p50 / p99 per stage (percentiles of each stage: they do not add up):")
    for name, meaning in STAGE_HELP.items():
        print(f"  {name:<11} {meaning}")
    print(f"  {'full gc':<11} the flow's collections of the oldest generation from the first measured event on: count, longest ms")
    print(f"\n{'order':<11} {'events/s':>8} {'run':>3} " + " ".join(f"{name:>13}" for name in STAGES) + f" {'full gc':>9}")
    for order, rate, run, case in breakdowns:
        cells = [f"{percentile(v, 0.5):,.0f} / {percentile(v, 0.99):,.0f}" for v in case.stages.values()]
        pauses = case.full_collections_ms
        print(f"{order:<11} {rate:>8,} {run + 1:>3} " + " ".join(f"{c:>13}" for c in cells)
              + f" {len(pauses):>3} / {max(pauses, default=0):>3.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
