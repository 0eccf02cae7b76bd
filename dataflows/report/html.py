"""The drift report as one self-contained HTML page: inline CSS and inline SVG plots, a
Content-Security-Policy that forbids every fetch, no script. Sections and alerts carry ids and
`data-` attributes (column, severity, window and start times in ms) for tests and tools.

>>> from features.report_data import ReportData
>>> page = render(ReportData(None, None, 0, 0, 0, 0, (), (), (), ()))
>>> "<title>driftline drift report</title>" in page, "no model metrics" in page
(True, True)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from html import escape
from typing import Any

from dataflows.report import plots as report_plots
from features.drift.categorical import summary_stats as categorical_stats
from features.summaries.categorical import CategoricalSummary
from features.messages import iso_utc
from features.drift.numeric import summary_stats as numeric_stats
from features.summaries.numeric import NumericSummary
from features.report_data import ColumnReport, ModelReport, ReportData, anchor

TITLE = "driftline drift report"
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
_NUMERIC_ROWS = ("count", "mean", "std", "q05", "q25", "q50", "q75", "q95", "null_rate")
_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#212529;background:#f8f9fa}
header{background:#212529;color:#fff;padding:14px 24px}header h1{margin:0;font-size:22px}
main{padding:12px 24px;max-width:1200px}section{background:#fff;border:1px solid #dee2e6;border-radius:6px;
padding:12px 16px;margin:12px 0}h2{margin:4px 0 8px;font-size:18px}h3{margin:8px 0 4px;font-size:15px}
.cards{display:flex;gap:10px;flex-wrap:wrap}.card{border:1px solid #dee2e6;border-radius:6px;padding:6px 12px;
min-width:110px}.card b{display:block;font-size:22px}.badge{display:inline-block;border-radius:4px;padding:0 6px;
color:#fff;font-size:12px;font-weight:600;text-transform:uppercase}.critical{background:#c92a2a}
.warning{background:#f08c00}.info{background:#1971c2}.none{background:#adb5bd}
table{border-collapse:collapse;font-size:13px}td,th{padding:2px 8px;border-bottom:1px solid #e9ecef;text-align:left}
td.n{text-align:right;font-variant-numeric:tabular-nums}.row{display:flex;gap:16px;align-items:flex-start;
flex-wrap:wrap}svg{max-width:100%;height:auto}.verdict{font-size:16px;margin:4px 0 10px}
.column.sev-critical{border-left:6px solid #c92a2a}.column.sev-warning{border-left:6px solid #f08c00}
.column.sev-info{border-left:6px solid #1971c2}.muted{color:#868e96}
"""


def _time(ms: int | None) -> str:
    return "-" if ms is None else iso_utc(ms).replace("T", " ")[:19]


def _clock(ms: int) -> str:
    return iso_utc(ms)[11:19]


def _badge(severity: str) -> str:
    text = "ok" if severity == "none" else severity
    return f'<span class="badge {escape(severity)}">{escape(text)}</span>'


def _number(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.4g}"


def _table(header: Iterable[str], rows: Iterable[Iterable[str]], attrs: str = "") -> str:
    head = "".join(f"<th>{h}</th>" for h in header)
    body = "".join("<tr>" + "".join(row) + "</tr>" for row in rows)
    return f"<table{attrs}><tr>{head}</tr>{body}</table>"


def runbook_html(runbook: Any) -> str:
    """An event's runbook: a link when it is an http(s) URL, else the text (a relative path
    such as docs/runbooks.md#... cannot be followed from a page opened anywhere); "-" without one.

    >>> runbook_html("https://wiki.example.com/a?b=1&c=2")
    '<a class="runbook" href="https://wiki.example.com/a?b=1&amp;c=2" rel="noreferrer">https://wiki.example.com/a?b=1&amp;c=2</a>'
    >>> runbook_html("docs/runbooks.md#x <b>"), runbook_html(None)
    ('<span class="runbook">docs/runbooks.md#x &lt;b&gt;</span>', '-')
    """
    if not isinstance(runbook, str) or not runbook:
        return "-"
    text = escape(runbook)
    if runbook.startswith(("https://", "http://")) and not any(c.isspace() for c in runbook):
        return f'<a class="runbook" href="{text}" rel="noreferrer">{text}</a>'
    return f'<span class="runbook">{text}</span>'


def _alert_rows(alerts: Iterable[Mapping[str, Any]], sections: frozenset[str] = frozenset()) -> list[list[str]]:
    """Table rows of alerts, each linking to its section when it has one (`sections`)."""
    rows = []
    for a in alerts:
        began = a.get("began")
        name = escape(f"{a['monitor']}/{a['column']}")
        section = "models" if a.get("kind") == "error_rate" else anchor(a["monitor"], a["column"])
        target = f'<a href="#{section}">{name}</a>' if section in sections else name
        rows.append([
            f'<td data-alert-column="{escape(a["column"])}" data-severity="{escape(a["severity"])}" '
            f'data-window-end-ms="{a["window"]["end_ms"]}" data-began-start-ms="{began["start_ms"] if began else ""}">'
            f'{_badge(a["severity"])}</td>',
            f"<td>{target}</td>", f"<td>{escape(a['test'])} at {escape(a['scale'])}</td>",
            f"<td>{_clock(a['window']['end_ms'])}</td>",
            f"<td>{'[' + _clock(began['start_ms']) + ', ' + _clock(began['end_ms']) + ')' if began else '-'}</td>",
            f"<td>{escape(a.get('detail', ''))}</td>", f"<td>{runbook_html(a.get('runbook'))}</td>"])
    return rows


_ALERT_HEADER = ("severity", "column", "test", "window end", "began", "detail", "runbook")


def _overview(data: ReportData) -> str:
    drifted = [c for c in data.columns if c.alerts]
    if drifted:
        verdict = "Drifted: " + ", ".join(
            f'<a href="#{c.anchor}">{escape(c.column)}</a> {_badge(c.severity)} since '
            f"{_clock(min(a['began']['start_ms'] if a.get('began') else a['window']['start_ms'] for a in c.alerts))}"
            for c in drifted)
    else:
        verdict = "No drift alerts in this range."
    cards = [("events summarised", f"{data.events:,}"), ("rejected (dead letters)", f"{data.rejected:,}"),
             ("late", f"{data.late:,}")]
    cards += [(f"{s} alerts", f"{n:,}") for s, n in data.by_severity.items()]
    card_html = "".join(f'<div class="card"><b>{v}</b>{escape(k)}</div>' for k, v in cards)
    sections = frozenset([c.anchor for c in data.columns] + ["models"])
    alerts = (_table(_ALERT_HEADER, _alert_rows(data.alerts, sections), ' id="alerts"') if data.alerts
              else '<p class="muted">no alerts</p>')
    return (f'<section id="overview" data-section="overview"><h2>Overview</h2>'
            f'<p class="verdict">{verdict}</p>'
            f"<p>{_time(data.start_ms)} to {_time(data.end_ms)} UTC (event time)</p>"
            f'<div class="cards">{card_html}</div><h3>Alerts, worst first</h3>{alerts}</section>')


def _stats_table(column: ColumnReport) -> str:
    if isinstance(column.current, NumericSummary):
        ref = numeric_stats(column.reference) if column.reference is not None else {}  # type: ignore[arg-type]
        cur = numeric_stats(column.current)
        rows = [[f"<td>{k}</td>", f'<td class="n">{_number(ref.get(k))}</td>', f'<td class="n">{_number(cur[k])}</td>']
                for k in _NUMERIC_ROWS]
    else:
        assert isinstance(column.current, CategoricalSummary)
        ref = categorical_stats(column.reference) if column.reference is not None else {}  # type: ignore[arg-type]
        cur = categorical_stats(column.current)
        rows = [[f"<td>{k}</td>", f'<td class="n">{_number(ref.get(k))}</td>', f'<td class="n">{_number(cur[k])}</td>']
                for k in ("count", "null_rate")]
        names = list(cur["categories"]) + [n for n in ref.get("categories", {}) if n not in cur["categories"]]
        rows += [[f"<td>share {escape(n)}{' <b>NEW</b>' if n in column.new_categories else ''}</td>",
                  f'<td class="n">{_number(ref.get("categories", {}).get(n))}</td>',
                  f'<td class="n">{_number(cur["categories"].get(n))}</td>'] for n in names]
    ref_span = ("none" if column.reference_span is None
                else f"{_clock(column.reference_span[0])}-{_clock(column.reference_span[1])}")
    cur_span = f"{_clock(column.current_span[0])}-{_clock(column.current_span[1])}"
    return _table(("statistic", f"reference<br><span class=muted>{ref_span}</span>",
                   f"current<br><span class=muted>{cur_span}</span>"), rows, ' class="stats"')


def _column_section(rank: int, column: ColumnReport) -> str:
    if isinstance(column.current, NumericSummary):
        distribution = report_plots.numeric_distribution(column.reference, column.current)  # type: ignore[arg-type]
    else:
        distribution = report_plots.categorical_distribution(
            column.reference, column.current, column.new_categories)  # type: ignore[arg-type]
    alerts = (_table(_ALERT_HEADER, _alert_rows(column.alerts)) if column.alerts
              else '<p class="muted">no alerts</p>')
    return (f'<section class="column sev-{column.severity}" id="{column.anchor}" data-section="column" '
            f'data-rank="{rank}" data-monitor="{escape(column.monitor)}" data-column="{escape(column.column)}" '
            f'data-kind="{column.kind}" data-severity="{column.severity}" data-test="{escape(column.test)}" '
            f'data-new-categories="{escape(",".join(column.new_categories))}">'
            f"<h2>{escape(column.column)} {_badge(column.severity)} "
            f'<span class="muted">{escape(column.monitor)} · {column.kind}</span></h2>'
            f'<div class="row"><div>{distribution}</div>{_stats_table(column)}</div>'
            f"{report_plots.drift_over_time(column)}{alerts}</section>")


def _model_section(models: tuple[ModelReport, ...]) -> str:
    if not models:
        return ('<section id="models" data-section="models"><h2>Model metrics</h2>'
                '<p class="muted">no model metrics in this range</p></section>')
    parts = []
    for m in models:
        marks = [f'<li data-promotion-ms="{p["at_ms"]}">promotion to v{p["to_version"]} at {_clock(p["at_ms"])}: '
                 f'{escape(p["metric"])} {p["champion"]:.4g} → {p["challenger"]:.4g}</li>' for p in m.promotions]
        marks += [f'<li data-error-drift-ms="{d["window"]["end_ms"]}">error drift ({escape(d["severity"])}) at '
                  f'{_clock(d["window"]["end_ms"])}: {escape(d.get("detail", ""))}'
                  f'{"; runbook: " + runbook_html(d["runbook"]) if d.get("runbook") else ""}</li>' for d in m.drifts]
        parts.append(f'<div class="model" data-model="{escape(m.name)}">{report_plots.model_metric(m)}'
                     f'<ul>{"".join(marks)}</ul></div>')
    return f'<section id="models" data-section="models"><h2>Model metrics</h2>{"".join(parts)}</section>'


def _health_section(data: ReportData) -> str:
    if not data.health:
        return ('<section id="health" data-section="health"><h2>Feature-flow health</h2>'
                '<p class="muted">no drift summaries in this range</p></section>')
    note = (f'<p class="muted">{data.unplaced_dead_letters:,} dead letters carry no event time and are '
            "counted in the overview only.</p>" if data.unplaced_dead_letters else "")
    return (f'<section id="health" data-section="health"><h2>Feature-flow health</h2>'
            f"{report_plots.flow_health(data.health)}{note}</section>")


def render(data: ReportData) -> str:
    """The whole page."""
    columns = "".join(_column_section(i, c) for i, c in enumerate(data.columns))
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            f'<meta name="viewport" content="width=device-width"><title>{TITLE}</title>'
            f"<style>{_CSS}</style></head><body><header><h1>{TITLE}</h1></header><main>"
            f"{_overview(data)}{columns}{_model_section(data.models)}{_health_section(data)}</main></body></html>")
