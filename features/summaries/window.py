"""The summaries of all monitored columns for one window [start, end), mergeable in time.

A `WindowSummary` holds the window bounds (epoch ms), the number of events, one summary per
column (`NumericSummary` or `CategoricalSummary`) and the spans of time it covers. Windows
merge into larger ones (minute -> hour -> day) without re-reading events: the merged bounds
are the smallest start and the largest end, the spans are the union of the parts' spans, and
`has_gaps` says the parts did not tile the merged window (`covered_ms` < `duration_ms`).
Overlapping windows refuse to merge: their events would be counted twice. Merge is
associative and commutative: exactly for bounds, spans, counts and exact statistics, within
rounding for moments and within the sketches' errors for sketch queries.

`WindowAccumulator` builds one window from events (dicts) or columns (numpy arrays), a batch
or an event at a time; a field missing from an event counts as a null.

Byte layout (`to_bytes`, little-endian, format version 1)::

    offset size  field
    0      4     magic b"DLWS"
    4      1     version (1)
    5      24    start_ms, end_ms (2 x i64), event_count (u64)
    29     8     n_spans, n_columns (2 x u32)
    37     16n   spans: n_spans x (start_ms, end_ms) (2 x i64), sorted
    ...          columns sorted by name: name_len (u32), UTF-8 name, kind (u8: 0 numeric,
                 1 categorical), payload_len (u32), the column summary's own bytes

JSON form (`to_dict`): {"kind": "window", "version": 1, "start_ms", "end_ms",
"event_count", "covered_ms", "has_gaps", "spans": [[start, end], ...], "columns": {name:
the column summary's to_dict()}}; `covered_ms` and `has_gaps` are derived, not read back.

>>> acc = WindowAccumulator(0, 60_000, numeric=["temp"], categorical=["room"])
>>> acc.add_events([{"temp": 70.5, "room": "a"}, {"temp": 71.0}])
>>> w = acc.summary(); w.event_count, w.columns["temp"].mean, w.columns["room"].nulls
(2, 70.75, 1)
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import reduce
from typing import Any, Union

import numpy as np  # noqa: F401  # the examples use it
import numpy.typing as npt

from features.summaries import categorical as categorical_summary, numeric as numeric_summary
from features.summaries.categorical import CategoricalSummary
from features.summaries.numeric import NumericSummary

ColumnSummary = Union[NumericSummary, CategoricalSummary]

MAGIC = b"DLWS"
VERSION = 1
_HEADER = struct.Struct("<4sBqqQII")
_SPAN = struct.Struct("<qq")
_COLUMN = struct.Struct("<I")
_PAYLOAD = struct.Struct("<BI")
_KINDS: dict[int, type[NumericSummary] | type[CategoricalSummary]] = {
    0: NumericSummary, 1: CategoricalSummary}


@dataclass(frozen=True)
class SummaryConfig:
    """Sketch sizes for the column summaries (the defaults of each summary).

    >>> SummaryConfig().kll_k
    200
    """

    kll_k: int = numeric_summary.DEFAULT_KLL_K
    hll_lg_k: int = numeric_summary.DEFAULT_HLL_LG_K
    cap: int = categorical_summary.DEFAULT_CAP
    freq_lg_k: int = categorical_summary.DEFAULT_FREQ_LG_K

    def numeric(self) -> NumericSummary:
        """An empty numeric summary of these sizes."""
        return NumericSummary(self.kll_k, self.hll_lg_k)

    def categorical(self) -> CategoricalSummary:
        """An empty categorical summary of these sizes."""
        return CategoricalSummary(self.cap, self.freq_lg_k, self.hll_lg_k)


@dataclass(frozen=True, eq=True)
class WindowSummary:
    """Column summaries of the events in [start_ms, end_ms) (module docstring).

    `spans` are the sorted, disjoint, non-adjacent intervals the summary covers; the default
    is the whole window. `columns` maps names to summaries and must not be mutated (merge
    returns new summaries).

    >>> w = WindowSummary(0, 60_000, 0, {})
    >>> w.spans, w.covered_ms, w.has_gaps
    (((0, 60000),), 60000, False)
    """

    start_ms: int
    end_ms: int
    event_count: int
    columns: Mapping[str, ColumnSummary]
    spans: tuple[tuple[int, int], ...] = field(default=())

    def __post_init__(self) -> None:
        if not self.start_ms < self.end_ms:
            raise ValueError(f"a window needs start_ms < end_ms, got [{self.start_ms}, "
                             f"{self.end_ms})")
        if self.event_count < 0:
            raise ValueError(f"event_count must be >= 0, got {self.event_count}")
        if not self.spans:
            object.__setattr__(self, "spans", ((self.start_ms, self.end_ms),))
        spans = self.spans
        if (spans[0][0] != self.start_ms or spans[-1][1] != self.end_ms
                or any(s >= e for s, e in spans)
                or any(e >= s for (_, e), (s, _) in zip(spans, spans[1:]))):
            raise ValueError(f"spans must be sorted, disjoint, non-adjacent intervals from "
                             f"start_ms to end_ms, got {spans} for [{self.start_ms}, "
                             f"{self.end_ms})")

    @property
    def duration_ms(self) -> int:
        """end_ms - start_ms.

        >>> WindowSummary(1_000, 4_000, 0, {}).duration_ms
        3000
        """
        return self.end_ms - self.start_ms

    @property
    def covered_ms(self) -> int:
        """Milliseconds of the window covered by the summarised windows.

        >>> merge(WindowSummary(0, 10, 0, {}), WindowSummary(20, 30, 0, {})).covered_ms
        20
        """
        return sum(e - s for s, e in self.spans)

    @property
    def has_gaps(self) -> bool:
        """True when the merged windows leave part of [start_ms, end_ms) uncovered.

        >>> merge(WindowSummary(0, 10, 0, {}), WindowSummary(10, 20, 0, {})).has_gaps
        False
        """
        return len(self.spans) > 1

    # ---- serialisation -------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """Compact bytes (layout in the module docstring).

        >>> w = WindowSummary(0, 1_000, 3, {"x": NumericSummary()})
        >>> WindowSummary.from_bytes(w.to_bytes()) == w
        True
        """
        parts = [_HEADER.pack(MAGIC, VERSION, self.start_ms, self.end_ms, self.event_count,
                              len(self.spans), len(self.columns))]
        parts += [_SPAN.pack(s, e) for s, e in self.spans]
        for name in sorted(self.columns):
            summary = self.columns[name]
            encoded, payload = name.encode("utf-8"), summary.to_bytes()
            kind = 0 if isinstance(summary, NumericSummary) else 1
            parts += [_COLUMN.pack(len(encoded)), encoded, _PAYLOAD.pack(kind, len(payload)),
                      payload]
        return b"".join(parts)

    @classmethod
    def from_bytes(cls, data: bytes) -> WindowSummary:
        """The window summary that `to_bytes` wrote.

        >>> WindowSummary.from_bytes(WindowSummary(0, 5, 1, {}).to_bytes()).event_count
        1
        """
        if len(data) < _HEADER.size or data[:4] != MAGIC:
            raise ValueError(f"expected window summary bytes starting with {MAGIC!r}, got "
                             f"{bytes(data[:4])!r} ({len(data)} bytes); use WindowSummary.to_bytes")
        _, version, start, end, events, n_spans, n_columns = _HEADER.unpack_from(data)
        if version != VERSION:
            raise ValueError(f"window summary format version {version} is not supported "
                             f"(this library reads {VERSION}); upgrade driftline")
        try:
            pos = _HEADER.size
            spans = tuple(_SPAN.unpack_from(data, pos + i * _SPAN.size) for i in range(n_spans))
            pos += n_spans * _SPAN.size
            columns: dict[str, ColumnSummary] = {}
            for _ in range(n_columns):
                (size,) = _COLUMN.unpack_from(data, pos)
                name = bytes(data[pos + 4:pos + 4 + size]).decode("utf-8")
                kind, length = _PAYLOAD.unpack_from(data, pos + 4 + size)
                pos += 4 + size + _PAYLOAD.size
                columns[name] = _KINDS[kind].from_bytes(data[pos:pos + length])
                pos += length
        except (struct.error, UnicodeDecodeError, KeyError) as err:
            raise ValueError(f"window summary bytes are corrupt ({err!r})") from err
        if pos != len(data):
            raise ValueError(f"window summary bytes: {len(data) - pos} bytes after the last column")
        return cls(start, end, events, columns, spans)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict (form in the module docstring).

        >>> d = WindowSummary(0, 1_000, 0, {}).to_dict(); d["spans"], d["has_gaps"]
        ([[0, 1000]], False)
        >>> WindowSummary.from_dict(d) == WindowSummary(0, 1_000, 0, {})
        True
        """
        return {
            "kind": "window", "version": VERSION, "start_ms": self.start_ms,
            "end_ms": self.end_ms, "event_count": self.event_count,
            "covered_ms": self.covered_ms, "has_gaps": self.has_gaps,
            "spans": [[s, e] for s, e in self.spans],
            "columns": {name: self.columns[name].to_dict() for name in sorted(self.columns)},
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> WindowSummary:
        """The window summary that `to_dict` wrote.

        >>> WindowSummary.from_dict(WindowSummary(0, 5, 2, {}).to_dict()).event_count
        2
        """
        if d.get("kind") != "window" or d.get("version") != VERSION:
            raise ValueError(f"expected a window summary dict (kind 'window', version "
                             f"{VERSION}), got kind {d.get('kind')!r} version {d.get('version')!r}")
        columns: dict[str, ColumnSummary] = {}
        for name, column in d["columns"].items():
            kind = column.get("kind")
            if kind == "numeric":
                columns[name] = NumericSummary.from_dict(column)
            elif kind == "categorical":
                columns[name] = CategoricalSummary.from_dict(column)
            else:
                raise ValueError(f"window summary column {name!r}: expected kind 'numeric' or "
                                 f"'categorical', got {kind!r}")
        spans = tuple((int(s), int(e)) for s, e in d["spans"])
        return cls(int(d["start_ms"]), int(d["end_ms"]), int(d["event_count"]), columns, spans)


def merge(a: WindowSummary, b: WindowSummary) -> WindowSummary:
    """The summary of two disjoint windows: bounds from both, spans united, columns merged.

    >>> a = WindowSummary(0, 60_000, 5, {}); b = WindowSummary(120_000, 180_000, 7, {})
    >>> m = merge(a, b); (m.start_ms, m.end_ms, m.event_count, m.covered_ms, m.has_gaps)
    (0, 180000, 12, 120000, True)
    """
    kinds_a = {name: type(s) for name, s in a.columns.items()}
    kinds_b = {name: type(s) for name, s in b.columns.items()}
    if kinds_a != kinds_b:
        raise ValueError(f"cannot merge windows with different columns: "
                         f"{_describe(kinds_a)} and {_describe(kinds_b)}; summarise every "
                         "window with the same numeric and categorical columns")
    columns: dict[str, ColumnSummary] = {}
    for name in sorted(a.columns):
        x, y = a.columns[name], b.columns[name]
        columns[name] = (numeric_summary.merge(x, y) if isinstance(x, NumericSummary)
                         else categorical_summary.merge(x, y))  # type: ignore[arg-type]
    return WindowSummary(min(a.start_ms, b.start_ms), max(a.end_ms, b.end_ms),
                         a.event_count + b.event_count, columns, _union(a.spans, b.spans))


def merge_all(windows: Iterable[WindowSummary]) -> WindowSummary:
    """Merge any number of disjoint windows (in time order, so the result is reproducible).

    >>> parts = [WindowSummary(m * 60_000, (m + 1) * 60_000, 1, {}) for m in range(60)]
    >>> hour = merge_all(parts); hour.duration_ms, hour.event_count, hour.has_gaps
    (3600000, 60, False)
    """
    ordered = sorted(windows, key=lambda w: (w.start_ms, w.end_ms))
    if not ordered:
        raise ValueError("merge_all needs at least one window summary")
    return reduce(merge, ordered)


def _union(a: tuple[tuple[int, int], ...],
           b: tuple[tuple[int, int], ...]) -> tuple[tuple[int, int], ...]:
    spans = sorted(a + b)
    out = [spans[0]]
    for s, e in spans[1:]:
        last_s, last_e = out[-1]
        if s < last_e:
            raise ValueError(f"cannot merge overlapping windows: [{last_s}, {last_e}) and "
                             f"[{s}, {e}) share time, so their events would count twice")
        out[-1:] = [(last_s, e)] if s == last_e else [(last_s, last_e), (s, e)]
    return tuple(out)


def _describe(kinds: Mapping[str, type]) -> str:
    return "{" + ", ".join(f"{n}: {k.__name__}" for n, k in sorted(kinds.items())) + "}"


class WindowAccumulator:
    """Builds the summary of one window from batches or single events (module docstring).

    Picklable (for Bytewax snapshots). `summary()` returns a snapshot copy, so the
    accumulator can keep going.

    >>> acc = WindowAccumulator(0, 1_000, numeric=["x"], categorical=[])
    >>> acc.add_columns({"x": np.array([1.0, 2.0, 3.0])}); acc.add_event({"x": None})
    >>> w = acc.summary(); w.event_count, w.columns["x"].count, w.columns["x"].nulls
    (4, 3, 1)
    """

    def __init__(self, start_ms: int, end_ms: int, numeric: Sequence[str],
                 categorical: Sequence[str], config: SummaryConfig = SummaryConfig()) -> None:
        overlap = set(numeric) & set(categorical)
        if overlap:
            raise ValueError(f"columns {sorted(overlap)} are listed as both numeric and "
                             "categorical; give each column one kind")
        WindowSummary(start_ms, end_ms, 0, {})  # validates the bounds
        self.start_ms, self.end_ms = start_ms, end_ms
        self.event_count = 0
        self.columns: dict[str, ColumnSummary] = {name: config.numeric() for name in numeric}
        self.columns.update({name: config.categorical() for name in categorical})

    def add_event(self, event: Mapping[str, object]) -> None:
        """Add one event (a dict of field values)."""
        self.event_count += 1
        for name, summary in self.columns.items():
            summary.add(event.get(name))

    def add_events(self, events: Sequence[Mapping[str, object]]) -> None:
        """Add a batch of events: one vectorised update per column.

        >>> acc = WindowAccumulator(0, 10, numeric=["x"], categorical=["c"])
        >>> acc.add_events([{"x": 1, "c": "a"}, {"x": 2, "c": "a"}])
        >>> acc.summary().columns["c"].counts
        {'a': 2}
        """
        self.event_count += len(events)
        for name, summary in self.columns.items():
            summary.update([e.get(name) for e in events])

    def add_columns(self, columns: Mapping[str, npt.ArrayLike | Sequence[object]],
                    event_count: int | None = None) -> None:
        """Add a batch given as columns of equal length; a monitored column missing from
        `columns` is all nulls (then pass `event_count` if no column is given at all).

        >>> acc = WindowAccumulator(0, 10, numeric=["x", "y"], categorical=[])
        >>> acc.add_columns({"x": [1.0, 2.0]}); acc.summary().columns["y"].nulls
        2
        """
        lengths = {name: len(values) for name, values in columns.items()}  # type: ignore[arg-type]
        if event_count is not None:
            lengths["event_count"] = event_count
        if len(set(lengths.values())) > 1:
            raise ValueError(f"columns of one batch must have equal lengths, got {lengths}")
        if not lengths:
            raise ValueError("add_columns needs at least one column or an event_count")
        n = next(iter(lengths.values()))
        self.event_count += n
        for name, summary in self.columns.items():
            if name in columns:
                summary.update(columns[name])  # type: ignore[arg-type]
            else:
                summary.nulls += n

    def summary(self) -> WindowSummary:
        """A snapshot of the window so far (copies: later adds do not change it)."""
        copies = {name: type(s).from_bytes(s.to_bytes()) for name, s in self.columns.items()}
        return WindowSummary(self.start_ms, self.end_ms, self.event_count, copies)


def summarize_events(start_ms: int, end_ms: int, events: Sequence[Mapping[str, object]],
                     numeric: Sequence[str], categorical: Sequence[str],
                     config: SummaryConfig = SummaryConfig()) -> WindowSummary:
    """The summary of one batch of events for the window [start_ms, end_ms).

    >>> w = summarize_events(0, 60_000, [{"t": 61.0}, {"t": 80.0}], ["t"], [])
    >>> w.columns["t"].max
    80.0
    """
    acc = WindowAccumulator(start_ms, end_ms, numeric, categorical, config)
    acc.add_events(events)
    return WindowSummary(start_ms, end_ms, acc.event_count, acc.columns)


def summarize_columns(start_ms: int, end_ms: int,
                      columns: Mapping[str, npt.ArrayLike | Sequence[object]],
                      numeric: Sequence[str], categorical: Sequence[str],
                      config: SummaryConfig = SummaryConfig(),
                      event_count: int | None = None) -> WindowSummary:
    """The summary of one batch given as columns (numpy arrays or lists) of equal length.

    >>> w = summarize_columns(0, 60_000, {"t": np.array([60.0, 70.0])}, ["t"], [])
    >>> w.event_count, w.columns["t"].mean
    (2, 65.0)
    """
    acc = WindowAccumulator(start_ms, end_ms, numeric, categorical, config)
    acc.add_columns(columns, event_count)
    return WindowSummary(start_ms, end_ms, acc.event_count, acc.columns)
