"""The online store under kill -9: a flow killed mid-run and restarted from its recovery
directory never moves a stored vector back to an older window, and ends with the newest
window of every entity, as the feature topics have it."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import orjson
import pytest

from dataflows.kafka.broker import RunningBroker, create_topics
from dataflows.serving.local_redis import RunningRedis
from features.config import parse_config
from features.online_store import ORDER_WIDTH, message_bytes, order_key, stored_order
from tests.flow_fixtures import event_lines, make_config, to_toml
from tests.kafka_helpers import consume_json, produce

pytestmark = pytest.mark.integration

EVENTS = 120_000


def _config(tmp_path: Path, prefix: str, url: str) -> tuple[Path, object]:
    document = make_config(prefix)
    document["feature_sets"].append(  # interim updates too: they must never overwrite a newer final
        {"name": "u", "topic": f"{prefix}features.u", "window": {"type": "tumbling", "length": "10s"},
         "emit": "update", "update_every": "2s", "features": [{"name": "n", "agg": "count"}]})
    path = tmp_path / "config.toml"
    path.write_text(to_toml(document) + f'\n[online_store]\nurl = "{url}"\nprefix = "{prefix}:"\n')
    return path, parse_config(document)


class _Watcher(threading.Thread):
    """Reads every stored order key every few ms; records any key that went backwards."""

    def __init__(self, url: str, prefix: str) -> None:
        super().__init__(daemon=True)
        import redis

        self.client = redis.Redis.from_url(url)
        self.prefix = prefix
        self.seen: dict[bytes, tuple[int, int, int]] = {}
        self.backwards: list[tuple[bytes, tuple[int, int, int], tuple[int, int, int]]] = []
        self.reads = 0
        self.changes = 0  # stored order keys seen to move (forward, or backward)
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            keys = self.client.keys(f"{self.prefix}*")
            pipe = self.client.pipeline(transaction=False)
            for key in keys:
                pipe.getrange(key, 0, ORDER_WIDTH - 1)
            for key, head in zip(keys, pipe.execute()):
                if not head:
                    continue
                order = stored_order(head)
                before = self.seen.get(key)
                if before is not None and order < before:
                    self.backwards.append((key, before, order))
                if order != before:
                    self.changes += 1
                self.seen[key] = order
            self.reads += 1
            time.sleep(0.01)


def _start(path: Path, bootstrap: str, recovery: Path, log: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "dataflows.cli", "run", "features", "--config", str(path), "--bootstrap", bootstrap,
           "--stop-at-end", "--recovery-dir", str(recovery), "--snapshot-interval", "500ms"]
    return subprocess.Popen(cmd, stdout=log.open("ab"), stderr=subprocess.STDOUT, env={**os.environ, "CI": "true"})


def test_kill_9_mid_run_never_moves_a_vector_back(broker: RunningBroker, redis_server: RunningRedis,
                                                  topic_prefix: str, tmp_path: Path) -> None:
    path, config = _config(tmp_path, topic_prefix, redis_server.url)
    create_topics(broker.bootstrap, [config.source.topic, config.source.dead_letter_topic, config.source.late_topic,
                                     *(fs.topic for fs in config.feature_sets)], partitions=3)
    produce(broker.bootstrap, config.source.topic, event_lines(EVENTS, seed=31))
    log, recovery = tmp_path / "runs.log", tmp_path / "recovery"
    watcher = _Watcher(redis_server.url, f"{topic_prefix}:")
    watcher.start()
    rng = random.Random(3)
    kills = 0
    for _ in range(3):
        proc = _start(path, broker.bootstrap, recovery, log)
        changes = watcher.changes
        deadline = time.monotonic() + 120
        while watcher.changes == changes and proc.poll() is None:  # wait until this run moves the store on
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.05)
        time.sleep(rng.uniform(0.3, 1.5))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait(timeout=60)
    assert _start(path, broker.bootstrap, recovery, log).wait(timeout=600) == 0, log.read_text()[-3000:]
    assert kills >= 2, log.read_text()[-3000:]  # mid-run, not after a run had finished

    # The store ends at the newest message of every entity on every feature topic.
    import redis

    client = redis.Redis.from_url(redis_server.url)

    def stored_ids() -> dict[str, str]:
        return {key.decode(): orjson.loads(message_bytes(client.get(key)))["id"] for key in client.keys(f"{topic_prefix}:*")}

    expected = {}
    for fs in config.feature_sets:
        newest: dict[str, tuple[tuple[int, int, int], str]] = {}
        for m in consume_json(broker.bootstrap, fs.topic):
            order = order_key(m)
            if m["entity"] not in newest or order > newest[m["entity"]][0]:
                newest[m["entity"]] = (order, m["id"])
        assert newest, fs.name
        expected.update({f"{topic_prefix}:{fs.name}:{entity}": message_id
                         for entity, (_order, message_id) in newest.items()})
    assert stored_ids() == expected

    # A replay of the whole topic from the start (a new recovery directory) rewrites every
    # window, oldest first: the store must not move while it does.
    assert _start(path, broker.bootstrap, tmp_path / "replay", log).wait(timeout=600) == 0, log.read_text()[-3000:]
    time.sleep(0.1)
    watcher.stop.set()
    watcher.join(timeout=10)
    assert watcher.reads > 10
    assert watcher.backwards == []
    assert stored_ids() == expected
    assert any(key.startswith(f"{topic_prefix}:u:".encode()) for key in watcher.seen)
