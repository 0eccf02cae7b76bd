"""Drift events and window-summary messages: the payloads of `drift.events` and `drift.summaries`.

A `DriftEvent` is an alert the policy let through, with everything an on-call person needs:
which column, which test, how much (statistic, p-value, effect size, threshold), at which
scale, in which window, where the change began, and the reference and current statistics.
`to_message` gives the `driftline.drift_event/1` JSON contract (docs/drift.md;
`deploy/schemas/drift_event.json`); `describe_message` the one-line text `driftline tail`
prints. `summary_message` is one column's base-window summary for `drift.summaries`.

>>> e = DriftEvent("inputs", "price", "covariate", "ks", 0.21, 1.2e-09, 0.18, 0.05, 300_000,
...                1_767_225_900_000, 1_767_226_200_000, (1_767_225_900_000, 1_767_225_960_000),
...                {"count": 10}, {"count": 12}, "warning", "price: KS 0.21")
>>> m = e.to_message(emitted_at_ms=0); m["id"], m["scale"], m["began"]["end"]
('inputs/price/ks/5m/1767226200000', '5m', '2026-01-01T00:06:00.000Z')
>>> describe_message(m)
'2026-01-01 00:10 WARNING inputs/price covariate ks=0.21 p=1.2e-09 effect=0.18 (threshold 0.05) at 5m window [00:05, 00:10) began [00:05, 00:06)'
>>> describe_message({**m, "runbook": "docs/runbooks.md#driftlinecriticaldrift"})[-69:]
'began [00:05, 00:06) runbook: docs/runbooks.md#driftlinecriticaldrift'
>>> describe_message({**m, "kind": "expectation", "test": "range", "statistic": 0.912, "threshold": 0.95,
...                   "failing": 88, "checked": 1000, "began": None})
'2026-01-01 00:10 WARNING inputs/price expectation range 91.2% ok (expected >= 95%) failing=88/1000 at 5m window [00:05, 00:10)'
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from features.messages import iso_utc
from features.summaries.numeric import NumericSummary
from features.summaries.window import WindowSummary

DRIFT_EVENT_SCHEMA = "driftline.drift_event/1"
WINDOW_SUMMARY_SCHEMA = "driftline.window_summary/1"
MULTIVARIATE_COLUMN = "*"  # the column of a multivariate (MMD) event: all numeric columns
_UNITS = (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1_000))


def format_duration(ms: int) -> str:
    """A duration in its largest whole unit, as the config writes it.

    >>> format_duration(300_000), format_duration(86_400_000), format_duration(1_500)
    ('5m', '1d', '1500ms')
    """
    for unit, size in _UNITS:
        if ms and ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def window_dict(start_ms: int, end_ms: int) -> dict[str, Any]:
    """The `window` object of every driftline message.

    >>> window_dict(0, 60_000)["end"]
    '1970-01-01T00:01:00.000Z'
    """
    return {"start": iso_utc(start_ms), "end": iso_utc(end_ms), "start_ms": start_ms, "end_ms": end_ms}


def _number(x: float | None) -> float | None:
    # JSON has no infinities or NaN: a constant column's infinite z becomes null.
    return float(x) if x is not None and math.isfinite(x) else None


@dataclass(frozen=True)
class DriftEvent:
    """One drift alert (module docstring). Times are epoch ms; `began` is the base window
    where the change most likely began, or None."""

    monitor: str
    column: str
    kind: str
    test: str
    statistic: float
    p_value: float | None
    effect_size: float | None
    threshold: float | None
    scale_ms: int
    start_ms: int
    end_ms: int
    began: tuple[int, int] | None
    reference: dict[str, Any]
    current: dict[str, Any]
    severity: str
    detail: str
    failing: int | None = None  # expectations: failing values (estimated on a sketch), values checked
    checked: int | None = None
    examples: tuple[str, ...] = ()  # expectations: up to five failing values or extremes
    runbook: str | None = None  # the monitor's (or model's) `runbook`: what to do, text or URL

    @property
    def id(self) -> str:
        """`<monitor>/<column>/<test>/<scale>/<window end ms>`: the same alert, the same id."""
        return f"{self.monitor}/{self.column}/{self.test}/{format_duration(self.scale_ms)}/{self.end_ms}"

    def to_message(self, emitted_at_ms: int) -> dict[str, Any]:
        """The `driftline.drift_event/1` message (`failing`, `checked`, `examples` only on
        expectation events; `runbook` only when the monitor or model has one)."""
        message = {
            "schema": DRIFT_EVENT_SCHEMA, "id": self.id, "monitor": self.monitor,
            "column": self.column, "kind": self.kind, "test": self.test,
            "statistic": _number(self.statistic), "p_value": _number(self.p_value),
            "effect_size": _number(self.effect_size), "threshold": _number(self.threshold),
            "scale": format_duration(self.scale_ms), "scale_ms": self.scale_ms,
            "window": window_dict(self.start_ms, self.end_ms),
            "began": None if self.began is None else window_dict(*self.began),
            "reference": self.reference, "current": self.current,
            "severity": self.severity, "detail": self.detail,
            "emitted_at": iso_utc(emitted_at_ms),
        }
        if self.failing is not None:
            message.update(failing=self.failing, checked=self.checked, examples=list(self.examples))
        if self.runbook is not None:
            message["runbook"] = self.runbook
        return message


def _clock(ms: int) -> str:
    return iso_utc(ms)[11:16]


def describe_message(m: dict[str, Any]) -> str:
    """A drift event message as one readable line (for `driftline tail`)."""
    window, began = m["window"], m.get("began")
    parts = [iso_utc(window["end_ms"])[:16].replace("T", " "), m["severity"].upper(),
             f"{m['monitor']}/{m['column']}", m["kind"], f"{m['test']}={_short(m['statistic'])}"]
    if m.get("failing") is not None:  # an expectation: the complying share, the failing count
        parts[-1] = (f"{m['test']} {100 * m['statistic']:.1f}% ok (expected >= {100 * m['threshold']:g}%) "
                     f"failing={m['failing']}/{m['checked']}")
    elif m.get("p_value") is not None:
        parts.append(f"p={_short(m['p_value'])}")
    if m.get("effect_size") is not None and m.get("failing") is None:
        threshold = f" (threshold {_short(m['threshold'])})" if m.get("threshold") is not None else ""
        parts.append(f"effect={_short(m['effect_size'])}{threshold}")
    parts.append(f"at {m['scale']} window [{_clock(window['start_ms'])}, {_clock(window['end_ms'])})")
    if began:
        parts.append(f"began [{_clock(began['start_ms'])}, {_clock(began['end_ms'])})")
    if m.get("runbook"):  # last: it may be long text; one line whatever it holds
        parts.append("runbook: " + " ".join(str(m["runbook"]).split()))
    return " ".join(parts)


def _short(x: float | None) -> str:
    return "null" if x is None else f"{x:.2g}"


def summary_message(monitor: str, column: str, window: WindowSummary, emitted_at_ms: int) -> dict[str, Any]:
    """One column of a base-window summary as a `driftline.window_summary/1` message: the
    `summary` is `WindowSummary.to_dict()` of that column alone, so consumers can
    `WindowSummary.from_dict` it and merge windows at their own scales.

    >>> from features.summaries.window import summarize_columns
    >>> w = summarize_columns(0, 60_000, {"price": [1.0, 2.0]}, ["price"], [])
    >>> m = summary_message("inputs", "price", w, 0); m["id"], m["summary"]["columns"]["price"]["count"]
    ('inputs/price/60000', 2)
    """
    column_summary = window.columns[column]
    single = WindowSummary(window.start_ms, window.end_ms, window.event_count, {column: column_summary},
                           window.spans)
    return {
        "schema": WINDOW_SUMMARY_SCHEMA, "id": f"{monitor}/{column}/{window.end_ms}",
        "monitor": monitor, "column": column,
        "kind": "numeric" if isinstance(column_summary, NumericSummary) else "categorical",
        "window": window_dict(window.start_ms, window.end_ms), "event_count": window.event_count,
        "summary": single.to_dict(), "emitted_at": iso_utc(emitted_at_ms),
    }
