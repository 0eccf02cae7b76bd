"""A monitor's reference: what its windows are compared with.

A `Reference` is a `WindowSummary` of the monitor's columns (and, for the multivariate test,
a reservoir sample of rows of its numeric columns). `build_references` summarises a
training set once; `reference_document` / `references_from_document` are the JSON file
`driftline reference build` writes and a monitor with `reference = { type = "file" }` reads:

```json
{"schema": "driftline.reference/1",
 "monitors": {"inputs": {"window": {<WindowSummary.to_dict()>},
                         "sample": {"seen": 50000, "k": 200, "rows": [[12.5, 3.1], ...]} | null}}}
```

>>> from features.events import Event
>>> from features.monitors.config import Monitor, ReferenceSpec
>>> m = Monitor("inputs", ("price",), ("payment",), 60_000, (60_000,), ReferenceSpec("file"))
>>> events = [Event("a", 1_000 * i, {"price": float(i), "payment": "card"}) for i in range(100)]
>>> refs = build_references([m], events)
>>> refs["inputs"].summary.columns["price"].mean, refs["inputs"].summary.event_count
(49.5, 100)
>>> again = references_from_document(reference_document(refs))
>>> again["inputs"].summary == refs["inputs"].summary
True
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from features.events import Event
from features.monitors.config import Monitor
from features.samples.reservoirs import UniformReservoir, merge_uniform
from features.summaries.window import WindowAccumulator, WindowSummary, merge_all

REFERENCE_SCHEMA = "driftline.reference/1"
Row = tuple[float, ...]
_BATCH = 10_000


@dataclass(frozen=True)
class Reference:
    """The reference of one monitor: its summary and, optionally, a sample of rows."""

    summary: WindowSummary
    sample: UniformReservoir[Row] | None = None


def sample_rows(events: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> list[Row]:
    """Rows of the numeric `columns` of events, skipping rows with a missing or
    non-finite value (MMD needs complete rows).

    >>> sample_rows([{"a": 1.0, "b": 2}, {"a": None, "b": 1.0}, {"a": 3.0, "b": 4.0}], ["a", "b"])
    [(1.0, 2.0), (3.0, 4.0)]
    """
    rows = []
    for event in events:
        values = [event.get(c) for c in columns]
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
               for v in values):
            rows.append(tuple(float(v) for v in values))  # type: ignore[arg-type]
    return rows


def merge_samples(samples: Sequence[UniformReservoir[Row] | None], seed: int) -> UniformReservoir[Row] | None:
    """One uniform sample of several windows' samples (None if any is missing).

    >>> a = UniformReservoir(2, seed=1); a.extend([(1.0,), (2.0,)])
    >>> merge_samples([a, a], seed=0).seen
    4
    """
    if not samples or any(s is None for s in samples):
        return None
    rng = random.Random(seed)
    out = samples[0]
    for s in samples[1:]:
        out = merge_uniform(out, s, rng)  # type: ignore[arg-type]
    return out


def build_references(monitors: Iterable[Monitor], events: Iterable[Event], seed: int = 0) -> dict[str, Reference]:
    """Summarise `events` (e.g. a training set) once per monitor, in batches."""
    monitors = list(monitors)
    accs: dict[str, WindowAccumulator] = {}
    samples = {m.name: UniformReservoir[Row](m.multivariate.sample, seed) for m in monitors if m.multivariate}
    first, last = None, None
    batch: list[Event] = []

    def flush() -> None:
        fields = [e.fields for e in batch]
        for m in monitors:
            if m.name not in accs:
                accs[m.name] = WindowAccumulator(0, 1, m.numeric, m.categorical)
            accs[m.name].add_events(fields)
            if m.name in samples:
                samples[m.name].extend(sample_rows(fields, m.numeric))
        batch.clear()

    for event in events:
        first = event.time_ms if first is None else min(first, event.time_ms)
        last = event.time_ms if last is None else max(last, event.time_ms)
        batch.append(event)
        if len(batch) >= _BATCH:
            flush()
    flush()
    if first is None or last is None:
        raise ValueError("no valid events to build a reference from; check the input file and the schema")
    out = {}
    for m in monitors:
        acc = accs[m.name]
        summary = WindowSummary(first, last + 1, acc.event_count, acc.summary().columns)
        out[m.name] = Reference(summary, samples.get(m.name))
    return out


def reference_document(references: Mapping[str, Reference]) -> dict[str, Any]:
    """The JSON document of a reference file (module docstring)."""
    monitors = {}
    for name, ref in sorted(references.items()):
        sample = None if ref.sample is None else {
            "seen": ref.sample.seen, "k": ref.sample.k, "rows": [list(r) for r in ref.sample.sample()]}
        monitors[name] = {"window": ref.summary.to_dict(), "sample": sample}
    return {"schema": REFERENCE_SCHEMA, "monitors": monitors}


def references_from_document(document: Mapping[str, Any]) -> dict[str, Reference]:
    """The references of a reference file's JSON document."""
    if document.get("schema") != REFERENCE_SCHEMA:
        raise ValueError(f"expected a reference document with schema {REFERENCE_SCHEMA!r}, got "
                         f"{document.get('schema')!r}; write it with `driftline reference build`")
    out = {}
    for name, entry in document["monitors"].items():
        raw = entry.get("sample")
        sample = None if raw is None else UniformReservoir.from_sample(
            [tuple(r) for r in raw["rows"]], int(raw["seen"]), int(raw["k"]), seed=0)
        out[name] = Reference(WindowSummary.from_dict(entry["window"]), sample)
    return out


def write_references(path: str | Path, references: Mapping[str, Reference]) -> None:
    """Write a reference file."""
    Path(path).write_bytes(orjson.dumps(reference_document(references)))


def read_references(path: str | Path) -> dict[str, Reference]:
    """Read a reference file (raises OSError or ValueError with what is wrong)."""
    return references_from_document(orjson.loads(Path(path).read_bytes()))


def merged_reference(windows: Sequence[WindowSummary], samples: Sequence[UniformReservoir[Row] | None],
                     seed: int = 0) -> Reference:
    """A reference from base windows (the first N windows, or a previous period).

    >>> w = WindowSummary(0, 60_000, 3, {})
    >>> merged_reference([w], [None]).summary.event_count
    3
    """
    return Reference(merge_all(windows), merge_samples(samples, seed))


def load_monitor_references(monitors: Sequence[Monitor]) -> dict[str, Reference]:
    """The references of the monitors whose reference is a file, checked against the
    monitors' columns; a missing or mismatched file stops the flow at start."""
    from features.config_values import ConfigError

    out = {}
    for i, m in enumerate(monitors):
        if m.reference.type != "file":
            continue
        key = f"monitors[{i}].reference.path"
        try:
            refs = read_references(m.reference.path)  # type: ignore[arg-type]
        except (OSError, ValueError, KeyError) as exc:
            raise ConfigError(key, "a reference file written by `driftline reference build`",
                              str(m.reference.path), f"build it first ({exc}).") from None
        if m.name not in refs:
            raise ConfigError(key, f"a reference file with monitor {m.name!r}", sorted(refs),
                              "rebuild the reference with this config.")
        ref = refs[m.name]
        kinds = {name: type(s).__name__ for name, s in ref.summary.columns.items()}
        wanted = {**{c: "NumericSummary" for c in m.numeric}, **{c: "CategoricalSummary" for c in m.categorical}}
        if kinds != wanted:
            raise ConfigError(key, f"a reference of the columns {wanted}", kinds,
                              "rebuild the reference with this config.")
        out[m.name] = ref
    return out
