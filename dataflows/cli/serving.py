"""`driftline serve-check`, and the online store wired into `driftline run features`."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

import orjson


def add_serving_parsers(sub: Any) -> None:
    """The `serve-check` subcommand."""
    check = sub.add_parser("serve-check", help="print entities' latest feature vectors from the online store (Redis)")
    check.add_argument("--config", type=Path, required=True, help="the config with the [online_store] table")
    check.add_argument("--set", required=True, dest="feature_set", help="the feature set, e.g. area_1m")
    check.add_argument("--entity", action="append", required=True, metavar="ID",
                       help="an entity (repeat for several: one batched read)")
    check.add_argument("--url", default=None, help="Redis URL (default: [online_store].url)")


def with_online_store(config: Any, sink: Any, counters: Any, url: str | None = None) -> Any:
    """`sink`, wrapped to also write the latest feature vectors to the config's online store
    (checked with a PING first, so a wrong URL stops the run at start); `sink` itself when the
    config has no `[online_store]`."""
    store = config.online_store
    if store is None:
        return sink
    from dataflows.serving import OnlineStoreSink, connect

    if url is not None:
        store = dataclasses.replace(store, url=url)
    connect(store.url).close()
    return OnlineStoreSink(sink, store, store.topics(config.feature_sets), counters)


def cmd_serve_check(args: argparse.Namespace) -> int:
    """Print each entity's stored vector as one JSON line with its freshness; exit 1 if one is missing."""
    from dataflows.client import OnlineStore
    from features.config import load_config
    from features.config_values import ConfigError

    config = load_config(args.config)
    if config.online_store is not None and args.feature_set not in config.online_store.sets:
        raise ConfigError("--set", f"a feature set the online store keeps ({', '.join(config.online_store.sets)})",
                          args.feature_set, "pass one of those, or add it to [online_store].sets.")
    with OnlineStore.from_config(config, args.url) as store:
        found = store.get_many(args.feature_set, args.entity)
    missing = 0
    for entity in args.entity:
        row = found.get(entity)
        if row is None:
            missing += 1
            print(f"driftline: no vector for {entity!r} in {args.feature_set!r}", file=sys.stderr)
            continue
        print(orjson.dumps({"entity": row.entity, "feature_set": row.feature_set, "kind": row.kind,
                            "window_end_ms": row.window_end_ms, "freshness_s": round(row.freshness_s, 3),
                            "event_count": row.event_count, "values": dict(row.values), "id": row.id}).decode())
    return 1 if missing else 0
