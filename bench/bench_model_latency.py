"""Prediction latency of the model flow: an event's append to the events topic -> its prediction's
append to `predictions.<model>`, in the event-time and the arrival order, at steady rates.

Usage: .venv/bin/python bench/bench_model_latency.py [--rates 1000,10000] [--seconds 8] [--lateness 10s]
       [--repeat 1]

A local broker (Tansu), topics of 2 partitions; `driftline run model` (one process, one worker,
a Hoeffding tree on 5 inputs), started and reading (its metrics endpoint counts a warm-up
event and label on every partition) before the clock starts; a producer writes ride events at
the given rate with `ts` = the wall clock, and each ride's label 2 s later. Latency is the
prediction message's Kafka timestamp (set when the flow produced it) minus the event's (set
when the producer produced it), over the events of the measured seconds, in steady state: the
first 3 s are warm-up (in the arrival order a prediction waits until every input partition has
passed it, so until the first labels come, 2 s in, predictions wait for them; see
docs/models.md). p50 and p99 per order and rate; each case runs `--repeat` times (interleaved:
a shared machine is noisy), every run printed. Events and labels are produced with
`linger.ms = 1`, as a service would; the flow's producer keeps its own settings (`linger.ms`
20 in the event-time order, 5 in the arrival order: the Kafka timestamp is taken when a
message is produced, so linger is not in the figures).
"""

from __future__ import annotations

import argparse
import collections
import random
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import orjson

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from bench_model import config_text  # noqa: E402

LABEL_DELAY_MS = 2000  # each ride's label comes this long after it
WARM_UP_S = 3.0  # produced before the measured events: labels flow by then


def produce(producer: object, topic: str, value: bytes, key: bytes, timestamp: int) -> None:
    """Produce, waiting for deliveries while the local queue is full (the broker lags)."""
    while True:
        try:
            producer.produce(topic, value, key, timestamp=timestamp)
            return
        except BufferError:
            producer.poll(0.05)


def wait_until_reading(port: int, producer: object, prefix: str, partitions: int = 2,
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


def run_case(bootstrap: str, directory: Path, order: str, rate: int, seconds: float, lateness: str,
             run: int = 0) -> list[float]:
    from confluent_kafka import Consumer, Producer, TopicPartition

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
    port = free_port()
    flow = subprocess.Popen([sys.executable, "-m", "dataflows.cli", "run", "model", "--config", str(config),
                             "--bootstrap", bootstrap, "--metrics-port", str(port)],
                            stdout=log, stderr=subprocess.STDOUT)
    try:  # the flow stops whatever happens here
        producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 1, "acks": "1"})
        wait_until_reading(port, producer, prefix)
        rng = random.Random(rate)
        sent: dict[str, int] = {}
        labels: collections.deque[tuple[float, bytes, bytes]] = collections.deque()
        lateness_s = int(lateness.rstrip("s"))
        start = time.time()
        measured_from, measured_to = start + WARM_UP_S, start + WARM_UP_S + seconds
        end = measured_to + (lateness_s + 3 if order == "event_time" else 2)  # until the last measured event is out
        n = 0
        while True:
            now = time.time()
            if now >= end:
                break
            due = int((now - start) * rate)
            while n < due:
                t_ms = int(time.time() * 1000)
                ride = f"r{n}"
                area = f"a{rng.randrange(50)}"
                event = {"ride_id": ride, "area": area, "price": rng.uniform(5, 50), "distance_km": rng.uniform(1, 20),
                         "surge": None, "eta_min": rng.uniform(1, 15), "payment": "card", "ts": t_ms}
                produce(producer, f"{prefix}rides", orjson.dumps(event), area.encode(), t_ms)
                if measured_from * 1000 <= t_ms < measured_to * 1000:
                    sent[ride] = t_ms
                label = {"ride_id": ride, "cancelled": rng.random() < 0.2, "ts": t_ms + LABEL_DELAY_MS}
                labels.append((now + LABEL_DELAY_MS / 1000, ride.encode(), orjson.dumps(label)))
                n += 1
            while labels and labels[0][0] <= now:
                _, key, value = labels.popleft()
                produce(producer, f"{prefix}rides.labels", value, key, int(now * 1000))
            producer.poll(0)
            time.sleep(0.0005)
        producer.flush(30)
        time.sleep(2)
    finally:
        flow.terminate()
        flow.wait(timeout=60)
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"lat-{prefix}", "enable.auto.commit": False})
    consumer.assign([TopicPartition(f"{prefix}predictions", p, 0) for p in range(2)])
    latencies = []
    quiet_since = time.time()
    while time.time() - quiet_since < 5:
        msg = consumer.poll(0.5)
        if msg is None or msg.error():
            continue
        quiet_since = time.time()
        sent_ms = sent.get(msg.key().decode())
        if sent_ms is not None:
            latencies.append(msg.timestamp()[1] - sent_ms)
    consumer.close()
    if len(latencies) < 0.9 * len(sent):
        print(f"  ({order}, {rate}/s: {len(latencies)} of {len(sent)} measured events predicted before the stop;"
              " the rest count as not measured)", file=sys.stderr)
    return latencies


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="1000,10000")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--lateness", default="10s", help="source.lateness, in whole seconds")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each case, interleaved")
    args = parser.parse_args()
    from dataflows.kafka.broker import local_broker

    print(f"event append -> prediction append, lateness {args.lateness}, {args.seconds:g} s measured per case\n")
    print(f"{'order':<12} {'events/s':>9} {'run':>4} {'predictions':>12} {'p50 ms':>9} {'p99 ms':>9}", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-latency-") as tmp, local_broker() as broker:
        for run in range(args.repeat):
            for rate in (int(r) for r in args.rates.split(",")):
                for order in ("event_time", "arrival"):
                    latencies = run_case(broker.bootstrap, Path(tmp), order, rate, args.seconds, args.lateness, run)
                    p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
                    print(f"{order:<12} {rate:>9,} {run + 1:>4} {len(latencies):>12,} {p50:>9,.0f} {p99:>9,.0f}",
                          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
