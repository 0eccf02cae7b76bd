"""The drift report's plots, drawn with matplotlib and returned as inline SVG text.

Figures are built with `matplotlib.figure.Figure` (no pyplot: no global state, no GUI
backend), text stays text (`svg.fonttype = none`: small and searchable), and the XML prolog
and DOCTYPE are dropped so the SVG can sit inside the HTML page.

>>> from features.summaries.numeric import NumericSummary
>>> ref, cur = NumericSummary(), NumericSummary()
>>> ref.update([1.0, 2.0, 3.0]); cur.update([2.0, 3.0, 4.0])
>>> svg = numeric_distribution(ref, cur); svg.startswith("<svg"), "reference" in svg
(True, True)
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from datetime import datetime, timezone

import matplotlib
import numpy as np
from matplotlib import dates as mdates
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from features.summaries.categorical import CategoricalSummary
from features.summaries.numeric import NumericSummary
from features.report_data import ColumnReport, HealthPoint, ModelReport

REFERENCE, CURRENT = "#5c7cfa", "#e8590c"
SEVERITY_COLOURS = {"critical": "#c92a2a", "warning": "#f08c00", "info": "#1971c2"}
SCALE_COLOURS = ("#364fc7", "#2b8a3e", "#862e9c", "#495057")
_STYLE = {"svg.fonttype": "none", "font.size": 9, "axes.spines.top": False, "axes.spines.right": False,
          "axes.grid": True, "grid.alpha": 0.3, "svg.hashsalt": "driftline"}
_BINS = 30


def _svg(fig: Figure) -> str:
    buf = io.StringIO()
    with matplotlib.rc_context(_STYLE):
        fig.savefig(buf, format="svg", bbox_inches="tight")
    text = buf.getvalue()
    return text[text.index("<svg"):]


def _figure(width: float, height: float, rows: int = 1) -> tuple[Figure, list[Axes]]:
    with matplotlib.rc_context(_STYLE):
        fig = Figure(figsize=(width, height), layout="constrained")
        axes = fig.subplots(rows, 1, sharex=True, squeeze=False)[:, 0]
    return fig, list(axes)


def _times(ms: Sequence[int]) -> list[datetime]:
    return [datetime.fromtimestamp(m / 1000, tz=timezone.utc).replace(tzinfo=None) for m in ms]


def _held(windows: Sequence[tuple[int, int, float]]) -> tuple[list[datetime], list[float]]:
    """Line points holding each window's value from its start to its end (a gap between
    windows shows as a slope, not as a value).

    >>> xs, ys = _held([(0, 1_000, 2.0)]); [x.second for x in xs], ys
    ([0, 1], [2.0, 2.0])
    """
    xs = [t for start, end, _ in windows for t in (start, end)]
    return _times(xs), [v for _, _, v in windows for _ in (0, 1)]


def _time_axis(ax: Axes) -> None:
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S"))
    ax.set_xlabel("event time (UTC)")


def numeric_distribution(ref: NumericSummary | None, cur: NumericSummary) -> str:
    """Reference and current histograms overlaid, shares per bin from the KLL sketches
    (the bins span the 1st to 99th percentile of both sides)."""
    fig, (ax,) = _figure(5.2, 2.6)
    sides = [s for s in (ref, cur) if s is not None and s.count]
    if sides:
        lo = min(s.quantiles([0.01]).values[0] for s in sides)
        hi = max(s.quantiles([0.99]).values[0] for s in sides)
        edges = np.linspace(lo, hi if hi > lo else lo + 1.0, _BINS + 1)
        for side, colour, label in ((ref, REFERENCE, "reference"), (cur, CURRENT, "current")):
            if side is None or not side.count:
                continue
            shares = side.histogram(edges).fractions[1:-1]
            ax.stairs(shares, edges, color=colour, fill=True, alpha=0.25)
            ax.stairs(shares, edges, color=colour, linewidth=1.6, label=label)
        ax.legend(loc="upper right", frameon=False)
    ax.set_ylabel("share per bin")
    ax.set_title("distribution: reference vs current", loc="left")
    return _svg(fig)


def categorical_distribution(ref: CategoricalSummary | None, cur: CategoricalSummary,
                             new: Sequence[str]) -> str:
    """Category shares side by side; categories the reference never saw are marked NEW."""
    ref_shares = ref.proportions() if ref is not None else {}
    cur_shares = cur.proportions()
    names = sorted(set(ref_shares) | set(cur_shares), key=lambda n: -max(ref_shares.get(n, 0), cur_shares.get(n, 0)))
    names = names[:15]
    fig, (ax,) = _figure(5.2, 2.6)
    x = np.arange(len(names))
    ax.bar(x - 0.2, [ref_shares.get(n, 0.0) for n in names], 0.4, color=REFERENCE, label="reference")
    bars = ax.bar(x + 0.2, [cur_shares.get(n, 0.0) for n in names], 0.4, color=CURRENT, label="current")
    for bar, name in zip(bars, names):
        if name in new:
            bar.set_hatch("//")
            bar.set_edgecolor(SEVERITY_COLOURS["critical"])
            ax.annotate("NEW", (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center",
                        va="bottom", color=SEVERITY_COLOURS["critical"], fontweight="bold")
    ax.set_xticks(x, names, rotation=30 if len(names) > 6 else 0)
    ax.set_ylabel("share")
    ax.legend(loc="upper right", frameon=False)
    ax.set_title("category shares: reference vs current", loc="left")
    return _svg(fig)


def drift_over_time(column: ColumnReport) -> str:
    """The column's test effect at every scale, the warning and critical levels, alert
    markers (coloured by severity) and each alert's localised start window shaded."""
    fig, (ax,) = _figure(10.5, 2.6)
    for i, series in enumerate(column.series):
        if not series.points:
            continue
        xs, ys = _held([(p.start_ms, p.end_ms, p.value) for p in series.points])
        ax.plot(xs, ys, color=SCALE_COLOURS[i % 4], linewidth=1.4, label=f"{column.test} at {series.label}",
                gid=f"drift-series-{i}")
    ax.axhline(column.threshold, color=SEVERITY_COLOURS["warning"], linestyle="--", linewidth=1,
               label=f"warning {column.threshold:g}")
    top = max([p.value for s in column.series for p in s.points] + [column.threshold])
    if math.isfinite(column.critical) and column.critical <= 2 * top:
        ax.axhline(column.critical, color=SEVERITY_COLOURS["critical"], linestyle="--", linewidth=1,
                   label=f"critical {column.critical:g}")
    for alert in column.alerts:
        began = alert.get("began")
        if began and alert.get("test") == column.test:  # shade where this statistic's drift began
            ax.axvspan(*_times([began["start_ms"], began["end_ms"]]), color=SEVERITY_COLOURS[alert["severity"]],
                       alpha=0.18, linewidth=0)
        ax.plot(_times([alert["window"]["end_ms"]]), [1.0], marker="v", markersize=10, linestyle="none",
                color=SEVERITY_COLOURS[alert["severity"]], transform=ax.get_xaxis_transform(), clip_on=False)
    ax.set_ylim(bottom=0)
    level = max(column.threshold, column.critical if math.isfinite(column.critical) else 0.0)
    if level > 0 and top > 20 * level:  # a huge effect (a unit change) would flatten the levels to the axis
        ax.set_yscale("symlog", linthresh=level)
    ax.set_ylabel(f"|{column.test}| effect")
    ax.set_title("drift over time (markers: alerts; shaded: where each began)", loc="left")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    _time_axis(ax)
    return _svg(fig)


def flow_health(points: Sequence[HealthPoint]) -> str:
    """Events per second of each window (summarised: valid, on time), and late events and
    dead letters per window."""
    fig, (top, bottom) = _figure(10.5, 3.4, rows=2)
    starts = _times([p.start_ms for p in points])
    width = (points[0].end_ms - points[0].start_ms) / 86_400_000 if points else 0.0
    top.bar(starts, [p.events * 1000 / (p.end_ms - p.start_ms) for p in points], width, align="edge", color="#868e96")
    top.set_ylabel("events/s")
    bottom.plot(*_held([(p.start_ms, p.end_ms, p.late) for p in points]), color="#1971c2", label="late")
    bottom.plot(*_held([(p.start_ms, p.end_ms, p.dead_letters) for p in points]), color="#c92a2a",
                label="dead letters")
    bottom.set_ylabel("per window")
    bottom.set_ylim(bottom=0)
    bottom.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    _time_axis(bottom)
    return _svg(fig)


def model_metric(model: ModelReport) -> str:
    """The model's metric per window, error-drift detections and promotions marked."""
    fig, (ax,) = _figure(10.5, 2.6)
    points = [(w["window"]["end_ms"], w["metrics"].get(model.metric)) for w in model.windows]
    points = [(t, v) for t, v in points if v is not None]
    ax.plot(_times([t for t, _ in points]), [v for _, v in points], marker=".", color="#364fc7", label=model.metric)
    for i, drift in enumerate(model.drifts):
        ax.axvline(_times([drift["window"]["end_ms"]])[0], color=SEVERITY_COLOURS.get(drift["severity"], "#f08c00"),
                   linestyle="--", label="error drift" if i == 0 else None)
    for i, promotion in enumerate(model.promotions):
        at = _times([promotion["at_ms"]])[0]
        ax.axvline(at, color="#2b8a3e", linewidth=2, label="promotion" if i == 0 else None)
        ax.annotate(f"v{promotion['to_version']}", (at, 1.0), xycoords=("data", "axes fraction"),
                    color="#2b8a3e", ha="left", va="top", fontweight="bold")
    ax.set_ylabel(model.metric)
    ax.set_title(f"model {model.name}: {model.metric} per window", loc="left")
    ax.legend(loc="lower left", frameon=False, ncols=3)
    _time_axis(ax)
    return _svg(fig)
