"""The config, events and comparisons the feature-flow integration tests share."""

from __future__ import annotations

import random

import orjson

START = 1_767_225_600_000


def make_config(prefix: str, suffix: str = "") -> dict:
    """Four feature sets (one per window type) on topics named by prefix; suffix renames the outputs."""
    return {
        "source": {"topic": f"{prefix}rides", "lateness": "5s", "partitions": 3,
                   "dead_letter_topic": f"{prefix}rides.dlq{suffix}", "late_topic": f"{prefix}rides.late{suffix}"},
        "schema": {
            "entity": "area", "event_time": "ts", "time_format": "epoch_ms",
            "fields": {"area": "string", "price": "float", "payment": {"type": "category",
                                                                       "values": ["card", "cash"]}},
        },
        "feature_sets": [
            {"name": "t", "topic": f"{prefix}features.t{suffix}", "window": {"type": "tumbling", "length": "10s"},
             "features": [{"name": "n", "agg": "count"}, {"name": "avg", "agg": "mean", "field": "price"},
                          {"name": "p50", "agg": "median", "field": "price"}]},
            {"name": "h", "topic": f"{prefix}features.h{suffix}",
             "window": {"type": "hopping", "length": "30s", "step": "10s"},
             "features": [{"name": "n", "agg": "count"}, {"name": "hi", "agg": "max", "field": "price"}]},
            {"name": "s", "topic": f"{prefix}features.s{suffix}", "window": {"type": "session", "gap": "3s"},
             "features": [{"name": "n", "agg": "count"}, {"name": "cash", "agg": "share", "field": "payment",
                                                          "value": "cash"}]},
            {"name": "l", "topic": f"{prefix}features.l{suffix}",
             "window": {"type": "last_n", "n": 5, "every": "10s"},
             "features": [{"name": "last", "agg": "last", "field": "price"}]},
        ],
    }


def event_lines(count: int, seed: int) -> list[tuple[bytes, bytes]]:
    """(key, value) pairs: ~20 events/s of event time over 12 areas, 1% far behind, a few malformed."""
    rng = random.Random(seed)
    lines = []
    for i in range(count):
        area = f"area-{rng.randrange(12):02d}"
        t = START + i * 50 + rng.randint(-300, 300)
        if i % 100 == 99:
            t -= rng.randint(40_000, 90_000)
        event = {"area": area, "ts": t, "price": round(rng.uniform(3, 60), 2),
                 "payment": rng.choice(["card", "cash", "crypto"])}
        value = orjson.dumps(event if i % 250 != 3 else {**event, "ts": "soon"})
        lines.append((area.encode(), value))
    return lines


def strip(messages: list[dict]) -> set[bytes]:
    """Messages without the fields that legitimately differ between runs (emission times)."""
    out = set()
    for m in messages:
        m = {k: v for k, v in m.items() if k not in ("emitted_at", "rejected_at")}
        out.add(orjson.dumps(m, option=orjson.OPT_SORT_KEYS))
    return out


def to_toml(document: dict) -> str:
    """Just enough TOML writing for the config dicts above."""

    def value(v: object) -> str:
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{k} = {value(x)}" for k, x in v.items()) + " }"
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, str):
            return orjson.dumps(v).decode()
        return str(v).lower() if isinstance(v, bool) else str(v)

    lines = []
    for section in ("source", "schema"):
        lines.append(f"[{section}]")
        lines += [f"{k} = {value(v)}" for k, v in document[section].items()]
    for table in ("feature_sets", "sample_sets", "monitors", "models"):
        for entry in document.get(table, ()):
            lines.append(f"[[{table}]]")
            lines += [f"{k} = {value(v)}" for k, v in entry.items()]
    return "\n".join(lines) + "\n"
