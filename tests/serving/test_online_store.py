"""The online store against a real Redis: the write rule, TTL, reads, the sink and serve-check."""

from __future__ import annotations

import orjson
import pytest

from dataflows.client import OnlineStore, SchemaVersionError
from dataflows.kafka.io import OutMessage
from dataflows.serving import OnlineStoreSink, OnlineStoreWriter
from dataflows.serving.local_redis import RunningRedis
from features.config import parse_config
from features.config_values import ConfigError
from features.messages import feature_message
from features.online_store import OnlineStoreConfig, message_bytes, parse_online_store, stored_value

TOPIC = "features.a1m"


def _msg(entity: str, end_ms: int, n: int, kind: str = "final", as_of: int | None = None) -> OutMessage:
    message = feature_message("a1m", entity, end_ms - 60_000, end_ms, {"n": n}, n, kind, as_of, end_ms + 1)
    return OutMessage(TOPIC, entity.encode(), orjson.dumps(message))


def _writer(client: object, **options: object) -> OnlineStoreWriter:
    return OnlineStoreWriter(OnlineStoreConfig(sets=("a1m",), **options), {TOPIC: "a1m"}, client=client)


def _stored(client: object, entity: str) -> tuple[str, int]:
    m = orjson.loads(message_bytes(client.get(f"driftline:a1m:{entity}")))
    return m["kind"], m["values"]["n"]


def test_a_vector_never_goes_back_to_an_older_window(redis_client) -> None:
    w = _writer(redis_client)
    assert w.write([_msg("x", 120_000, 2)]) == 1
    assert w.write([_msg("x", 60_000, 1)]) == 0  # an older window, replayed: ignored
    assert _stored(redis_client, "x") == ("final", 2)
    w.write([_msg("x", 180_000, 5, "update", 150_000)])  # the next window's interim value
    assert _stored(redis_client, "x") == ("update", 5)
    w.write([_msg("x", 180_000, 4, "update", 140_000)])  # an earlier update of it: ignored
    assert _stored(redis_client, "x") == ("update", 5)
    w.write([_msg("x", 180_000, 7)])  # its final
    w.write([_msg("x", 180_000, 6, "update", 170_000)])  # an update after the final: ignored
    w.write([_msg("x", 120_000, 2)])
    assert _stored(redis_client, "x") == ("final", 7)
    assert w.write([_msg("x", 180_000, 7)]) == 1  # the same message again: rewritten (refreshes the TTL)
    assert (w.written, w.older) == (4, 4)


def test_one_batch_keeps_the_newest_per_entity_and_other_topics_are_ignored(redis_client) -> None:
    w = _writer(redis_client)
    batch = [_msg("x", 120_000, 2), _msg("y", 60_000, 1), _msg("x", 60_000, 1),
             OutMessage("rides.dlq", None, b'{"not": "features"}')]
    assert w.write(batch) == 2
    assert _stored(redis_client, "x") == ("final", 2)
    assert sorted(redis_client.keys("*")) == [b"driftline:a1m:x", b"driftline:a1m:y"]


def test_ttl_and_interim_off(redis_client) -> None:
    w = _writer(redis_client, ttl_ms=60_000, interim=False)
    w.write([_msg("x", 120_000, 2), _msg("y", 120_000, 3, "update", 100_000)])
    assert 0 < redis_client.pttl("driftline:a1m:x") <= 60_000
    assert not redis_client.exists("driftline:a1m:y")


def test_many_chunks_in_one_batch(redis_client) -> None:
    w = _writer(redis_client)
    assert w.write([_msg(f"e{i}", 60_000, i) for i in range(1_234)]) == 1_234
    store = OnlineStore(client=redis_client, clock=lambda: 90.0)
    got = store.get_many("a1m", [f"e{i}" for i in range(0, 1_300, 100)])
    assert sorted(got) == sorted(f"e{i}" for i in range(0, 1_300, 100) if i < 1_234)
    assert got["e700"].values["n"] == 700 and got["e700"].freshness_s == 30.0


def test_online_store_get(redis_client) -> None:
    _writer(redis_client).write([_msg("x", 120_000, 2)])
    store = OnlineStore(client=redis_client, clock=lambda: 121.5)
    row = store.get("a1m", "x")
    assert (row.entity, row.feature_set, row.kind, row.window_start_ms, row.window_end_ms, row.id) == \
        ("x", "a1m", "final", 60_000, 120_000, "a1m/x/120000")
    assert row.values == {"n": 2} and row.freshness_s == 1.5
    assert store.get("a1m", "nobody") is None
    redis_client.set("driftline:a1m:bad", stored_value((1, 1, 0), orjson.dumps({"schema": "driftline.features/2"})))
    with pytest.raises(SchemaVersionError):
        store.get("a1m", "bad")


def test_sink_tees_every_message_to_the_inner_sink(redis_client) -> None:
    from bytewax.outputs import DynamicSink, StatelessSinkPartition

    seen: list[OutMessage] = []

    class Inner(StatelessSinkPartition):
        def write_batch(self, items):
            seen.extend(items)

    class InnerSink(DynamicSink):
        def build(self, step_id, worker_index, worker_count):
            return Inner()

    url = redis_client.connection_pool.connection_kwargs
    config = OnlineStoreConfig(url=f"redis://{url['host']}:{url['port']}/0", sets=("a1m",))
    part = OnlineStoreSink(InnerSink(), config, {TOPIC: "a1m"}).build("out", 0, 1)
    batch = [_msg("x", 60_000, 1), OutMessage("rides.dlq", None, b"{}")]
    part.write_batch(batch)
    part.close()
    assert seen == batch and _stored(redis_client, "x") == ("final", 1)


def _doc(online: dict) -> dict:
    return {"source": {"topic": "rides"},
            "schema": {"entity": "area", "event_time": "ts", "fields": {"area": "string"}},
            "feature_sets": [{"name": "a1m", "window": {"type": "tumbling", "length": "1m"},
                              "features": [{"name": "n", "agg": "count"}]}],
            "online_store": online}


@pytest.mark.parametrize(("table", "key"), [
    ({"url": "http://cache:6379"}, "online_store.url"),
    ({"sets": ["nope"]}, "online_store.sets"),
    ({"ttl": "forever"}, "online_store.ttl"),
    ({"prefx": "x"}, "online_store.prefx"),
    ({"interim": "yes"}, "online_store.interim"),
])
def test_config_errors_name_the_key(table: dict, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(_doc(table))
    assert info.value.key == key and "Fix:" in str(info.value)


def test_config_defaults() -> None:
    store = parse_config(_doc({})).online_store
    assert store == OnlineStoreConfig(sets=("a1m",))
    assert store.topics(parse_config(_doc({})).feature_sets) == {"features.a1m": "a1m"}
    assert parse_online_store(None, ()) is None


def test_serve_check_prints_the_vector(redis_server: RunningRedis, redis_client, tmp_path, capsys, caplog) -> None:
    from dataflows.cli import main

    _writer(redis_client).write([_msg("x", 120_000, 2)])
    path = tmp_path / "c.toml"
    path.write_text(f'''[source]\ntopic = "rides"\n[schema]\nentity = "area"\nevent_time = "ts"\n
[schema.fields]\narea = "string"\n[[feature_sets]]\nname = "a1m"\nwindow = {{ type = "tumbling", length = "1m" }}
features = [{{ name = "n", agg = "count" }}]\n[online_store]\nurl = "{redis_server.url}"\n''')
    assert main(["serve-check", "--config", str(path), "--set", "a1m", "--entity", "x"]) == 0
    line = orjson.loads(capsys.readouterr().out)
    assert (line["entity"], line["window_end_ms"], line["values"]) == ("x", 120_000, {"n": 2})
    assert main(["serve-check", "--config", str(path), "--set", "a1m", "--entity", "x", "--entity", "y"]) == 1
    assert "no vector for 'y'" in capsys.readouterr().err
    assert main(["serve-check", "--config", str(path), "--set", "a1m", "--entity", "x",
                 "--url", "redis://127.0.0.1:1/0"]) == 2
    # on stderr, or as a log record when an earlier test configured the CLI's logging
    assert "cannot reach the online store" in capsys.readouterr().err + caplog.text
