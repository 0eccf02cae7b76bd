"""Sample messages (`driftline.sample/1`) and `merge_samples`, which merges adjacent windows' samples.

One message per closed window, or per stratum of the window for stratified sets (plus one
for the overflow stratum when strata beyond `max_strata` had events). Each sampled item
carries its priority key and hash, so a consumer can merge minute samples into an hour's
exactly: the bottom-k of the union of the messages' items is the bottom-k of the union of
the windows' events (see `features.samples.priority`).

>>> from features.windows.config import WindowSpec
>>> from features.samples.config import SampleSet
>>> from features.samples.windows import PaneSampler, SampleWindows
>>> from features.events import Event
>>> spec = SampleSet("s", WindowSpec("tumbling", 60_000, 60_000), k=2, topic="samples.s")
>>> def sample(start):
...     sampler = PaneSampler(spec)
...     sampler.add([Event("a", start + i, {"i": start + i}) for i in range(10)])
...     windows = SampleWindows(spec, 0, 1)
...     for s, pane in sampler.release_all():
...         windows.absorb(s, pane)
...     return sample_messages(windows.flush()[0], emitted_at_ms=0)[0]
>>> a, b = sample(0), sample(60_000)
>>> a["id"], a["seen"], len(a["items"])
('s/60000', 10, 2)
>>> m = merge_samples([a, b])[0]
>>> m["id"], m["seen"], m["window"]["end_ms"], m["merged_windows"], len(m["items"])
('s/0-120000', 20, 120000, 2, 2)
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from features.messages import encode, iso_utc
from features.samples.priority import Bottom, Item, WindowSample
from features.samples.windows import ClosedSample, stratum_ranker

SAMPLE_SCHEMA = "driftline.sample/1"
DEFAULT_MAX_BYTES = 1_000_000


def _item_json(item: Item, end_ms: int, half_life_ms: int | None) -> dict[str, Any]:
    key, h, t, weight, fields = item
    if half_life_ms is not None:
        weight = 2.0 ** ((t - end_ms) / half_life_ms)
    return {"key": key, "hash": f"{h:016x}", "time_ms": t, "weight": weight, "fields": fields}


def _fit(message: dict[str, Any], items: list[dict[str, Any]], max_bytes: int) -> dict[str, Any]:
    """`message` with as many of `items` (smallest keys first) as fit in max_bytes, flagged if cut."""
    message["items"] = items
    if len(encode(message)) <= max_bytes:
        return message
    message["truncated"] = True
    lo, hi = 0, len(items)  # the largest prefix that fits is in [lo, hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        message["items"] = items[:mid]
        if len(encode(message)) <= max_bytes:
            lo = mid
        else:
            hi = mid
    message["items"] = items[:lo]
    return message


def _messages(header: dict[str, Any], sample: WindowSample, start_ms: int, end_ms: int, merged_windows: int,
              emitted_at: str, max_bytes: int) -> list[dict[str, Any]]:
    name = header["sample_set"]
    stratified = header["stratify"] is not None
    window_id = f"{end_ms}" if merged_windows == 1 else f"{start_ms}-{end_ms}"
    half_life = (header["weighting"] or {}).get("half_life_ms")
    parts: list[tuple[str | None, bool, Bottom]] = [(s, False, sample.strata[s]) for s in
                                                     sorted(sample.strata, key=lambda s: (s is not None, s or ""))]
    if sample.overflow.seen:
        parts.append((None, True, sample.overflow))
    out = []
    window_seen = sample.seen
    for stratum, overflow, bottom in parts:
        suffix = "/overflow" if overflow else (f"/s={stratum}" if stratified else "")
        message = {
            "schema": SAMPLE_SCHEMA,
            "id": f"{name}/{window_id}{suffix}",
            **header,
            "window": {"start": iso_utc(start_ms), "end": iso_utc(end_ms), "start_ms": start_ms, "end_ms": end_ms},
            "merged_windows": merged_windows,
            "stratum": stratum,
            "overflow": overflow,
            "seen": bottom.seen,
            "window_seen": window_seen,
            "items": [],
            "truncated": bottom.cutoff < math.inf,
            "emitted_at": emitted_at,
        }
        items = [_item_json(item, end_ms, half_life) for item in bottom.items()]
        out.append(_fit(message, items, max_bytes))
    return out


def sample_messages(closed: ClosedSample, emitted_at_ms: int) -> list[dict[str, Any]]:
    """The messages of one closed window: one, or one per stratum (and overflow) for stratified sets.

    `id` is `<set>/<window end ms>`, with `/s=<stratum>` or `/overflow` for stratified sets.
    Items are in key order (smallest first); a message larger than the set's
    `max_message_bytes` keeps the items that fit, in that order, and says `truncated`.
    """
    spec = closed.spec
    header = {
        "sample_set": spec.name,
        "kind": spec.kind,
        "k": spec.k,
        "seed": spec.seed,
        "weighting": spec.weight_spec,
        "stratify": {"field": spec.stratum_field, "max_strata": spec.max_strata} if spec.stratum_field else None,
    }
    return _messages(header, closed.sample, closed.start_ms, closed.end_ms, 1, iso_utc(emitted_at_ms),
                     spec.max_message_bytes)


def message_key(message: dict[str, Any]) -> str:
    """The Kafka key of a sample message: the set, and the stratum for stratified sets.

    >>> message_key({"sample_set": "s", "stratum": "cash", "overflow": False})
    's/cash'
    """
    if message["overflow"]:
        return f"{message['sample_set']}/overflow"
    stratum = message["stratum"]
    return message["sample_set"] if stratum is None else f"{message['sample_set']}/{stratum}"


_HEADER = ("sample_set", "kind", "k", "seed", "weighting", "stratify")


def _bottom(message: dict[str, Any]) -> Bottom:
    items = [(it["key"], int(it["hash"], 16), it["time_ms"], it["weight"] if message["weighting"] and
              message["weighting"]["field"] else None, it["fields"]) for it in message["items"]]
    cutoff = math.inf
    if message["truncated"]:  # complete only up to its largest key
        cutoff = items[-1][0] if items else -math.inf
    return Bottom.of(message["k"], message["seen"], items, cutoff)


def merge_samples(messages: Iterable[dict[str, Any]], start_ms: int | None = None, end_ms: int | None = None,
                  max_bytes: int = DEFAULT_MAX_BYTES) -> list[dict[str, Any]]:
    """Merge the sample messages of non-overlapping windows into the sample of their span.

    Every input must be a message of the same sample set (same kind, k, seed, weighting
    and strata); duplicates (same `id`) count once; each window must come with all its
    stratum messages (their `seen` add up to `window_seen`). Windows may leave gaps (a
    window without events has no message); overlapping windows are refused. The result is
    exact: the same items and counts as sampling the union of the windows' events directly,
    so merging is associative and commutative. A truncated input makes the result keep only
    items up to the input's largest key, and the result is flagged `truncated`.

    The result's window spans the inputs' windows, or [start_ms, end_ms) when given (every
    input window must lie inside); recency weights are stated relative to its end.
    """
    by_id = {m["id"]: m for m in messages}
    if not by_id:
        raise ValueError("no sample messages to merge")
    first = next(iter(by_id.values()))
    header = {key: first[key] for key in _HEADER}
    windows: dict[tuple[int, int], list[dict[str, Any]]] = {}
    merged_windows: dict[tuple[int, int], int] = {}
    for m in by_id.values():
        if m.get("schema") != SAMPLE_SCHEMA:
            raise ValueError(f"message {m.get('id')!r} is not a {SAMPLE_SCHEMA} message")
        for key in _HEADER:
            if m[key] != header[key]:
                raise ValueError(f"cannot merge samples with different {key}: {header[key]!r} and {m[key]!r} "
                                 f"(message {m['id']!r}); merge one sample set at a time")
        span = (m["window"]["start_ms"], m["window"]["end_ms"])
        windows.setdefault(span, []).append(m)
        merged_windows[span] = m["merged_windows"]
    spans = sorted(windows)
    start = spans[0][0] if start_ms is None else start_ms
    end = spans[-1][1] if end_ms is None else end_ms
    if spans[0][0] < start or spans[-1][1] > end:
        raise ValueError(f"windows from {spans[0][0]} to {spans[-1][1]} do not fit in [{start}, {end})")
    for (s1, e1), (s2, e2) in zip(spans, spans[1:]):
        if s2 < e1:
            raise ValueError(f"windows [{s1}, {e1}) and [{s2}, {e2}) overlap: merge non-overlapping windows "
                             "(for hopping sets, every length/step-th window)")
    for span, group in windows.items():
        if sum(m["seen"] for m in group) != group[0]["window_seen"]:
            raise ValueError(f"window [{span[0]}, {span[1]}) is incomplete: its messages saw "
                             f"{sum(m['seen'] for m in group)} of {group[0]['window_seen']} events; "
                             "include every stratum's message")
    stratify = header["stratify"]
    rank = stratum_ranker(header["seed"], header["sample_set"]) if stratify is not None else None
    total = WindowSample(header["k"], stratify["max_strata"] if stratify else 1)
    for span in spans:
        for m in windows[span]:
            part = WindowSample(header["k"], 1)
            if m["overflow"]:
                part.overflow = _bottom(m)
            else:
                part.strata[m["stratum"]] = _bottom(m)
            total.absorb(part, rank)
    emitted = max(m["emitted_at"] for m in by_id.values())
    return _messages(header, total, start, end, sum(merged_windows.values()), emitted, max_bytes)



def select_windows(messages: Iterable[dict[str, Any]], sample_set: str, start_ms: int | None = None,
                   end_ms: int | None = None) -> list[dict[str, Any]]:
    """The messages of `sample_set` whose windows lie in [start_ms, end_ms), ready for `merge_samples`.

    Other messages are skipped. Hopping windows overlap, so from the earliest window on,
    only windows that start at or after the previous one's end are kept (every
    length/step-th window: they tile the range).

    >>> w = lambda s, e: {"schema": SAMPLE_SCHEMA, "sample_set": "h", "window": {"start_ms": s, "end_ms": e}}
    >>> [m["window"]["start_ms"] for m in select_windows([w(0, 30), w(10, 40), w(30, 60), w(60, 90)], "h", 0, 70)]
    [0, 30]
    """
    chosen = [m for m in messages if m.get("schema") == SAMPLE_SCHEMA and m.get("sample_set") == sample_set
              and (start_ms is None or m["window"]["start_ms"] >= start_ms)
              and (end_ms is None or m["window"]["end_ms"] <= end_ms)]
    spans = sorted({(m["window"]["start_ms"], m["window"]["end_ms"]) for m in chosen})
    kept: set[tuple[int, int]] = set()
    last_end = None
    for span in spans:
        if last_end is None or span[0] >= last_end:
            kept.add(span)
            last_end = span[1]
    return [m for m in chosen if (m["window"]["start_ms"], m["window"]["end_ms"]) in kept]
