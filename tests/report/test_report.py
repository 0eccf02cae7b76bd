"""`driftline report` over a replayed stream with planted drifts: the page's structure, the
model section from messages in the model flow's format, and the page in headless Chromium
(rendered, titled, and fetching nothing from the network)."""

from __future__ import annotations

import json
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from dataflows.cli.commands import main
from dataflows.synth.generator import StreamSpec, generate
from dataflows.synth.planted_changes import parse_change
from dataflows.cli.replay import replay
from dataflows.cli.report import write_report
from dataflows.report.html import TITLE
from features.config import load_config

WINDOW_MS = 10_000
# 200 events/s: the shift lands ~75 s in, the new category ~105 s in (10 s windows).
SHIFT_AT, CATEGORY_AT = 15_000, 21_000
CONFIG = """
[source]
topic = "rides"
partitions = 1
lateness = "10s"

[schema]
entity = "area"
event_time = "ts"

[schema.fields]
ride_id = "string"
area = "string"
price = "float"
distance_km = "float"
surge = { type = "float", nullable = true }
eta_min = "float"
payment = { type = "category", values = ["card", "cash", "wallet"] }

[[monitors]]
name = "inputs"
numeric = ["price", "distance_km", "eta_min", "surge"]
categorical = ["payment"]
window = "10s"
scales = ["10s", "30s"]
reference = { type = "first_windows", windows = 3 }
runbook = "docs/runbooks.md#driftlinecriticaldrift"
"""
RUNBOOK = "docs/runbooks.md#driftlinecriticaldrift"


def _event_time(line: bytes) -> int | None:
    try:
        ts = json.loads(line).get("ts")
    except (ValueError, AttributeError):
        return None  # a planted malformed event
    return ts if isinstance(ts, int) else None


class Page(HTMLParser):
    """Every element's attributes, in document order, and the title."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.title, self._in_title = "", False
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, {k: v or "" for k, v in attrs}))
        self._in_title = tag == "title"

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data

    def with_attr(self, name: str) -> list[dict[str, str]]:
        return [a for _, a in self.elements if name in a]


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("report")
    spec = StreamSpec(events=30_000, seed=3, malformed_fraction=0.01, changes=(
        parse_change(f"shift:price:start={SHIFT_AT}:scale=1.3"),
        parse_change(f"category:payment:crypto:share=0.1:start={CATEGORY_AT}")))
    lines = [m.value for m in generate(spec) if m.kind == "event"]
    (tmp / "events.jsonl").write_bytes(b"".join(v + b"\n" for v in lines))
    (tmp / "rides.toml").write_text(CONFIG)
    replay(tmp / "rides.toml", tmp / "events.jsonl", tmp / "out", quiet=True)
    html = tmp / "report.html"
    assert main(["report", "--replay-dir", str(tmp / "out"), "--config", str(tmp / "rides.toml"),
                 "--output", str(html)]) == 0

    def planted(index: int) -> int:  # the event time of the index-th event (the stream is nearly ordered)
        times = sorted(t for t in map(_event_time, lines[index - 10:index + 10]) if t is not None)
        return times[len(times) // 2]

    return {"dir": tmp, "html": html, "page": Page(html.read_text()), "shift_ms": planted(SHIFT_AT),
            "category_ms": planted(CATEGORY_AT)}


def test_sections_drifted_columns_first_and_alerts_link_to_them(replayed: dict) -> None:
    page: Page = replayed["page"]
    assert page.title == TITLE
    sections = [a["data-section"] for a in page.with_attr("data-section")]
    assert sections == ["overview", *["column"] * 5, "models", "health"]
    columns = page.with_attr("data-rank")
    assert [int(c["data-rank"]) for c in columns] == list(range(5))
    assert {c["data-column"] for c in columns[:2]} == {"price", "payment"}
    assert all(c["data-severity"] in ("warning", "critical") for c in columns[:2])
    assert all(c["data-severity"] == "none" for c in columns[2:])
    payment = next(c for c in columns if c["data-column"] == "payment")
    assert payment["data-kind"] == "categorical" and payment["data-new-categories"] == "crypto"
    ids = {a["id"] for a in page.with_attr("id")}
    links = [a["href"] for a in page.with_attr("href")]
    assert "#col-inputs-price" in links and "#col-inputs-payment" in links
    assert all(link.startswith("#") and link[1:] in ids for link in links)


def test_every_alert_shows_its_monitors_runbook(replayed: dict) -> None:
    """The monitor's runbook (#21) is in each alert row, as text: a relative path is no link in a
    page opened from anywhere, and every link of this page stays inside it."""
    html = replayed["html"].read_text()
    rows = [row for row in html.split("<tr>") if "data-alert-column=" in row]
    assert rows and all(f'<span class="runbook">{RUNBOOK}</span>' in row for row in rows)
    assert "<th>runbook</th>" in html


def test_alert_markers_are_at_the_planted_windows(replayed: dict) -> None:
    alerts = replayed["page"].with_attr("data-alert-column")
    by_column: dict[str, list[dict[str, str]]] = {}
    for a in alerts:
        by_column.setdefault(a["data-alert-column"], []).append(a)
    assert set(by_column) == {"price", "payment"}
    for column, planted in (("price", replayed["shift_ms"]), ("payment", replayed["category_ms"])):
        first = min(by_column[column], key=lambda a: int(a["data-window-end-ms"]))
        began = int(first["data-began-start-ms"])
        # localised to the base window of the change (or the one before, when the change
        # lands at the very end of a window and barely alters it)
        assert began - WINDOW_MS <= planted < began + WINDOW_MS, (column, began, planted)
        assert planted < int(first["data-window-end-ms"]) <= planted + 4 * WINDOW_MS


def test_no_model_metrics_then_model_metrics_with_drift_and_promotion(replayed: dict, tmp_path: Path) -> None:
    assert "no model metrics" in replayed["html"].read_text()
    config = load_config(replayed["dir"] / "rides.toml")
    start = 1_767_225_600_000
    topics = {
        "model.metrics": [*(_metrics(start + i * 60_000, 0.9 - 0.2 * (i >= 5)) for i in range(10)), _promotion(start + 480_000)],
        "drift.events": [{**_error_drift(start + 330_000), "runbook": "https://wiki.example.com/cancel?x=1&y=2"}],
    }
    out = write_report(config, lambda t: topics.get(t, []), tmp_path / "r.html")
    page = Page(out.read_text())
    assert [a["data-model"] for a in page.with_attr("data-model")] == ["cancel"]
    assert [int(a["data-promotion-ms"]) for a in page.with_attr("data-promotion-ms")] == [start + 480_000]
    assert [int(a["data-error-drift-ms"]) for a in page.with_attr("data-error-drift-ms")] == [start + 330_000]
    assert "no model metrics" not in out.read_text()
    # error drift is listed with the alerts and links to the model section, not to a column
    assert "cancel" not in [a["data-column"] for a in page.with_attr("data-rank")]
    assert [a["data-alert-column"] for a in page.with_attr("data-alert-column")] == ["cancel"]
    assert "#models" in [a["href"] for a in page.with_attr("href")]
    # the model's runbook, a URL, is a link in the alert row and beside the error drift
    runbooks = [a["href"] for a in page.with_attr("href") if a.get("class") == "runbook"]
    assert runbooks == ["https://wiki.example.com/cancel?x=1&y=2"] * 2


def test_until_before_the_changes_shows_no_alerts(replayed: dict, tmp_path: Path) -> None:
    until = replayed["shift_ms"] - 2 * WINDOW_MS
    out = tmp_path / "early.html"
    assert main(["report", "--replay-dir", str(replayed["dir"] / "out"), "--config", str(replayed["dir"] / "rides.toml"),
                 "--output", str(out), "--until", str(until)]) == 0
    page = Page(out.read_text())
    assert not page.with_attr("data-alert-column")
    assert all(c["data-severity"] == "none" for c in page.with_attr("data-rank"))
    assert "No drift alerts in this range." in out.read_text()


def test_a_bad_time_is_a_config_error(replayed: dict, tmp_path: Path, capsys) -> None:
    assert main(["report", "--replay-dir", str(replayed["dir"] / "out"), "--config", str(replayed["dir"] / "rides.toml"),
                 "--output", str(tmp_path / "x.html"), "--since", "yesterday"]) == 2
    assert "--since" in capsys.readouterr().err


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _chromium(tmp: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               f"--user-data-dir={tmp / 'profile'}", *args, url]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)


def page_requests(net_log: Path) -> list[str]:
    """URLs the page itself requested over the network: Chromium's NetLog URL requests
    isolated under the file:// page's site (the browser's own update and account checks,
    which the flags do not all silence, are isolated otherwise)."""
    log = json.loads(net_log.read_text())
    start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    return [e["params"]["url"] for e in log["events"]
            if e["type"] == start_job and e.get("params", {}).get("network_isolation_key", "").startswith("file://")]


def assert_every_column_chart_has_a_series(html: str) -> None:
    """Each column's "drift over time" chart draws at least one series (not only levels and markers)."""
    sections = html.split('data-section="column"')[1:]
    assert sections
    for section in sections:
        chart = section.split("drift over time")[0]  # the title comes after the series in the SVG
        assert 'id="drift-series-' in chart, section[:300]


def test_every_column_chart_draws_its_statistic(replayed: dict) -> None:
    assert_every_column_chart_has_a_series(replayed["html"].read_text())


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (Debian: apt-get install chromium; "
                                             ".ci/run installs it)")
def test_the_page_renders_in_headless_chromium_without_network_requests(replayed: dict, tmp_path: Path) -> None:
    from PIL import Image  # Pillow comes with matplotlib

    # The detector first: a page that does fetch something is caught.
    bad = tmp_path / "bad.html"
    bad.write_text('<!doctype html><title>bad</title><img src="http://127.0.0.1:9/x.png">')
    _chromium(tmp_path, bad.as_uri(), f"--log-net-log={tmp_path / 'bad.json'}", "--screenshot=" + str(tmp_path / "b.png"))
    assert page_requests(tmp_path / "bad.json") == ["http://127.0.0.1:9/x.png"]

    shot, net_log = tmp_path / "report.png", tmp_path / "net.json"
    url = replayed["html"].as_uri()
    _chromium(tmp_path, url, f"--log-net-log={net_log}", f"--screenshot={shot}", "--window-size=1280,2000")
    assert page_requests(net_log) == []
    image = Image.open(shot).convert("RGB")
    assert image.size == (1280, 2000)
    colours = image.getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 50  # text, badges and plots, not a blank page
    white = sum(n for n, c in colours if c == (255, 255, 255))
    assert white < 0.8 * 1280 * 2000

    dom = _chromium(tmp_path, url, "--dump-dom").stdout
    page = Page(dom)
    assert page.title == TITLE
    assert [a["data-column"] for a in page.with_attr("data-rank")][:2] == \
           [a["data-column"] for a in replayed["page"].with_attr("data-rank")][:2]
    assert dom.count("<svg") >= 2 * 5 + 1  # two plots per column and the flow health
    assert_every_column_chart_has_a_series(dom)
    sources = [a.get("src", "") for _, a in page.elements if "src" in a]
    assert all(s.startswith("data:") for s in sources)


def _metrics(end_ms: int, accuracy: float) -> dict:
    window = {"start": "", "end": "", "start_ms": end_ms - 60_000, "end_ms": end_ms}
    return {"schema": "driftline.model_metrics/1", "id": f"cancel/{end_ms}", "model": "cancel", "segment": None,
            "version": 1, "task": "classification", "window": window,
            "metrics": {"accuracy": accuracy, "log_loss": 0.3, "f1": 0.2, "roc_auc": 0.7},
            "counts": {"predictions": 500, "labelled": 480, "expired": 0, "unlabelled": 20},
            "prequential": {"labelled": 480, "expired": 0, "accuracy": accuracy}, "challenger": None,
            "emitted_at": "2026-11-23T12:00:00.000Z"}


def _promotion(at_ms: int) -> dict:
    return {"schema": "driftline.model_promotion/1", "id": "cancel/promotion/2", "model": "cancel", "segment": None,
            "from_version": 1, "to_version": 2, "kind": "HoeffdingTreeClassifier", "at": "", "at_ms": at_ms,
            "metric": "accuracy", "champion": 0.7, "challenger": 0.85, "window": 1000, "margin": 0.0,
            "emitted_at": "2026-11-23T12:00:00.000Z"}


def _error_drift(end_ms: int) -> dict:
    window = {"start": "", "end": "", "start_ms": end_ms - 30_000, "end_ms": end_ms}
    return {"schema": "driftline.drift_event/1", "id": f"model/cancel/adwin/label/{end_ms}", "monitor": "model",
            "column": "cancel", "kind": "error_rate", "test": "adwin", "statistic": 0.2, "p_value": None,
            "effect_size": 0.2, "threshold": 0.002, "scale": "1m", "scale_ms": 60_000, "window": window,
            "began": {"start": "", "end": "", "start_ms": end_ms - 40_000, "end_ms": end_ms - 30_000},
            "reference": {"count": 1000, "mean": 0.1, "std": 0.3}, "current": {"count": 200, "mean": 0.3, "std": 0.46},
            "severity": "warning", "detail": "cancel: error rose from 0.1 to 0.3", "emitted_at": "2026-11-23T12:00:00.000Z"}


@pytest.mark.integration
def test_kafka_topics_give_the_report_of_the_replay_files(replayed: dict, broker, topic_prefix: str,
                                                          tmp_path: Path) -> None:
    from dataflows.kafka.broker import create_topics
    from tests.kafka_helpers import produce

    source = f"{topic_prefix}.rides"
    config = CONFIG.replace('topic = "rides"', f'topic = "{source}"').replace(
        'name = "inputs"', f'name = "inputs"\nevents_topic = "{topic_prefix}.drift.events"\n'
                           f'summaries_topic = "{topic_prefix}.drift.summaries"')
    (tmp_path / "kafka.toml").write_text(config)
    files = {"drift.summaries": f"{topic_prefix}.drift.summaries", "drift.events": f"{topic_prefix}.drift.events",
             "rides.dlq": f"{source}.dlq", "rides.late": f"{source}.late"}
    create_topics(broker.bootstrap, list(files.values()), partitions=2)
    for name, topic in files.items():
        lines = (replayed["dir"] / "out" / f"{name}.jsonl").read_bytes().splitlines()
        produce(broker.bootstrap, topic, [(str(i % 7).encode(), line) for i, line in enumerate(lines)])
    out = tmp_path / "kafka.html"
    assert main(["report", "--bootstrap", broker.bootstrap, "--config", str(tmp_path / "kafka.toml"),
                 "--output", str(out), "--model-metrics-topic", f"{topic_prefix}.model.metrics"]) == 0
    page, replay_page = Page(out.read_text()), replayed["page"]
    for attr in ("data-rank", "data-alert-column"):
        assert [sorted(a.items()) for a in page.with_attr(attr)] == [sorted(a.items()) for a in replay_page.with_attr(attr)]
    assert "no model metrics" in out.read_text()
