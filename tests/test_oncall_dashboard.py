"""The Grafana dashboard (deploy/grafana/driftline.json), its provisioning and its ConfigMap.

What is checked:

- the JSON model: one datasource variable `DS_PROMETHEUS` that every panel and query uses,
  unique panel ids, panels that do not overlap, the panels the issue asks for;
- every panel is described in docs/monitoring.md;
- every PromQL expression parses (`promtool check rules` on them as recording rules; skipped
  without promtool);
- every PromQL expression of the dashboard and of deploy/prometheus/rules.yml names only
  metrics and labels that running flows export: the features, drift and model flows run on a
  real broker (the `driftline` CLI in subprocesses) and their /metrics are scraped. This live
  catalogue also serves the alert rules, so that the three flows run once per session;
- docker-compose.yml provisions the datasource and the dashboard in Grafana, and
  deploy/k8s/monitoring.yaml carries the dashboard and the rules byte for byte.

Grafana itself cannot be installed here, so the dashboard is checked as a document, not
rendered. `python -m tests.test_oncall_dashboard` rewrites deploy/k8s/monitoring.yaml from
the dashboard and the rules after either changes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[1]
DASHBOARD_PATH = ROOT / "deploy" / "grafana" / "driftline.json"
PROVISIONING = ROOT / "deploy" / "grafana" / "provisioning"
RULES_PATH = ROOT / "deploy" / "prometheus" / "rules.yml"
MONITORING_CONFIGMAPS = ROOT / "deploy" / "k8s" / "monitoring.yaml"
MONITORING_DOC = ROOT / "docs" / "monitoring.md"
DASHBOARD = json.loads(DASHBOARD_PATH.read_text())
DS_UID = "${DS_PROMETHEUS}"

# Labels every scraped series gets from Prometheus itself (the target), not from the flow.
TARGET_LABELS = {"job", "instance"}
# Series Prometheus makes for every target; `up` is 1 when the last scrape succeeded.
PROMETHEUS_SERIES = {"up": TARGET_LABELS}


# ---------------------------------------------------------------- the dashboard document


def panels() -> list[dict]:
    """Every panel that shows data (rows excluded), nested rows flattened."""
    out = []
    for panel in DASHBOARD["panels"]:
        out += [panel] if panel["type"] != "row" else panel.get("panels", [])
    return out


def queries() -> list[tuple[str, str, str]]:
    """(where, expression, legendFormat) of every panel query and query variable."""
    out = [(f"panel {p['title']!r}", t["expr"], t.get("legendFormat", "")) for p in panels() for t in p["targets"]]
    for variable in DASHBOARD["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]["query"] if isinstance(variable["query"], dict) else variable["query"]
            out.append((f"variable {variable['name']!r}", query, ""))
    return out


def test_one_datasource_variable_feeds_every_panel_and_query() -> None:
    variables = {v["name"]: v for v in DASHBOARD["templating"]["list"]}
    source = variables["DS_PROMETHEUS"]
    assert source["type"] == "datasource" and source["query"] == "prometheus"
    # Every "datasource" anywhere in the document is the variable: no hard-wired uid.
    found = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "datasource":
                    found.append(value)
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(DASHBOARD["panels"])
    walk([v for v in DASHBOARD["templating"]["list"] if v["type"] == "query"])
    assert found and all(ds == {"type": "prometheus", "uid": DS_UID} for ds in found), found
    for panel in panels():
        assert panel["datasource"]["uid"] == DS_UID and panel["targets"], panel["title"]
        assert all(t["datasource"]["uid"] == DS_UID for t in panel["targets"]), panel["title"]
    # The other variables filter every panel query.
    for where, expr, _ in queries():
        if where.startswith("panel"):
            assert 'job=~"$job"' in expr and 'instance=~"$instance"' in expr, where


def test_panels_have_unique_ids_and_do_not_overlap() -> None:
    ids = [p["id"] for p in DASHBOARD["panels"]]
    assert len(ids) == len(set(ids))
    cells: dict[tuple[int, int], str] = {}
    for panel in DASHBOARD["panels"]:
        g = panel["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24, panel["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{panel['title']!r} overlaps {cells[(x, y)]!r}"
                cells[(x, y)] = panel["title"]


# What the issue asks the dashboard to show: panel title -> text its queries must contain.
REQUIRED_PANELS = {
    "Flows up": ["up{"],
    "Events in": ["driftline_events_in_total"],
    "Rejected events by reason": ["driftline_events_rejected_total", "reason"],
    "Late events": ["driftline_late_events_total"],
    "Consumer lag": ["driftline_consumer_lag"],
    "Emit lag": ["driftline_emit_lag_seconds_bucket"],
    "Stage latency p95": ["driftline_stage_seconds_bucket", "stage"],
    "Features out per set": ["driftline_features_out_total", "feature_set"],
    "Drift events by monitor": ["driftline_drift_events_out_total", "monitor"],
    "Drift alerts by severity": ["driftline_drift_alerts_total", "severity"],
    "Model accuracy per window": ["driftline_model_metric", 'metric="accuracy"'],
    "Model MAE per window": ["driftline_model_metric", 'metric="mae"'],
    "Error drifts and promotions": ["driftline_model_events_total", "error_drifts", "promotions"],
}


def test_the_panels_the_issue_asks_for_are_there() -> None:
    by_title = {p["title"]: " ".join(t["expr"] for t in p["targets"]) for p in panels()}
    for title, needles in REQUIRED_PANELS.items():
        assert title in by_title, f"no panel {title!r}"
        for needle in needles:
            assert needle in by_title[title], f"panel {title!r} does not query {needle!r}"


def test_every_panel_is_described_in_the_monitoring_doc() -> None:
    """Rows are the doc's sections (### Title), panels its bold list items (- **Title**: ...)."""
    doc = MONITORING_DOC.read_text()
    for panel in DASHBOARD["panels"]:
        described = f"\n### {panel['title']}\n" if panel["type"] == "row" else f"\n- **{panel['title']}**: "
        assert described in doc, f"docs/monitoring.md does not describe {panel['type']} {panel['title']!r}"


# ---------------------------------------------------------------- PromQL: syntax

# Grafana's variables, replaced by values Prometheus accepts, to check the expressions.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "1m", "$__range": "1h",
                     "$job": ".+", "$instance": ".+", "$model": ".+"}


def as_promql(expr: str) -> str:
    for variable, value in sorted(GRAFANA_VARIABLES.items(), key=lambda kv: -len(kv[0])):
        expr = expr.replace(variable, value)
    assert "$" not in expr, f"unknown Grafana variable in {expr!r}"
    return expr


def test_every_dashboard_expression_parses(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian package `prometheus`; .ci/run installs it)")
    rules = [{"record": f"dashboard:query_{i}", "expr": as_promql(expr)}
             for i, (where, expr, _) in enumerate(queries()) if where.startswith("panel")]
    path = tmp_path / "dashboard_queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout


# ---------------------------------------------------------------- PromQL: names and labels

# PromQL functions and aggregations the files may use, and the words that are not names.
FUNCTIONS = {"sum", "count", "min", "max", "avg", "rate", "increase", "delta", "deriv",
             "histogram_quantile", "present_over_time", "absent", "label_values"}
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
            "bool", "offset"}


def promql_references(expr: str) -> tuple[dict[str, set[str]], set[str]]:
    """({metric: label names in its matchers}, label names of by/without/on/ignoring clauses).

    A small lexer for the PromQL written in these files, not a full parser: strings, ranges
    and numbers are dropped, `name{matchers}` and clauses are read, and every other word is
    a function (followed by "(") or a metric name.

    >>> metrics, grouping = promql_references(
    ...     'sum by (reason) (rate(x_total{job=~"$job", reason!="a|b"}[5m])) / y > 0.5')
    >>> {metric: sorted(labels) for metric, labels in metrics.items()}, sorted(grouping)
    ({'x_total': ['job', 'reason'], 'y': []}, ['reason'])
    """
    metrics: dict[str, set[str]] = {}
    grouping: set[str] = set()
    text = re.sub(r"\$\w+", "", expr)  # Grafana variables outside strings ($__rate_interval)
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', text)  # string values: "card|cash" are no names
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges and subqueries
    for match in re.finditer(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)", text):
        grouping |= {label.strip() for label in match.group(2).split(",") if label.strip()}
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    for match in re.finditer(r"([A-Za-z_:][\w:]*)?\s*\{([^}]*)\}", text):
        assert match.group(1), f"a selector without a metric name in {expr!r}"
        labels = set(re.findall(r"([A-Za-z_]\w*)\s*(?:=~|!~|!=|=)", match.group(2)))
        metrics.setdefault(match.group(1), set()).update(labels)
    text = re.sub(r"([A-Za-z_:][\w:]*)?\s*\{[^}]*\}", " ", text)
    text = re.sub(r"\boffset\s+\w+", " ", text)
    for match in re.finditer(r"\b([A-Za-z_:][\w:]*)\b(\s*\()?", text):
        word, call = match.group(1), match.group(2)
        if re.fullmatch(r"\d+\w*", word) or word in KEYWORDS:
            continue
        if call:
            assert word in FUNCTIONS, f"unknown function {word!r} in {expr!r} (add it to FUNCTIONS if it is real)"
        else:
            metrics.setdefault(word, set())
    return metrics, grouping


def rule_expressions() -> list[tuple[str, str]]:
    rules = yaml.safe_load(RULES_PATH.read_text())
    return [(f"rule {rule['alert']}", rule["expr"]) for group in rules["groups"] for rule in group["rules"]]


def check_references(where: str, expr: str, legend: str, catalogue: dict[str, set[str]]) -> list[str]:
    """What `expr` (and its legend) names that the catalogue of exported series lacks."""
    problems = []
    label_values = re.fullmatch(r"\s*label_values\((.*),\s*(\w+)\)\s*", expr)
    if label_values:  # a Grafana variable query: label_values(selector, label)
        expr, variable_label = label_values.group(1), label_values.group(2)
    metrics, grouping = promql_references(expr)
    available: set[str] = set()
    for metric, labels in metrics.items():
        if metric not in catalogue:
            problems.append(f"{where}: metric {metric} is not exported")
            continue
        known = catalogue[metric] | TARGET_LABELS
        available |= known
        problems += [f"{where}: {metric} has no label {label!r}" for label in sorted(labels - known)]
    problems += [f"{where}: no metric of it has label {label!r}" for label in sorted(grouping - available)]
    if label_values and variable_label not in available:
        problems.append(f"{where}: label_values of a label no metric has: {variable_label!r}")
    shown = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", legend))
    problems += [f"{where}: legend shows {label!r}, not a label of the result"
                 for label in sorted(shown - (grouping or available))]
    return problems


def test_the_reference_check_finds_unknown_names() -> None:
    """The live check below can fail: a made-up metric, label or legend label is reported."""
    catalogue = {"driftline_events_in_total": set(), "driftline_events_rejected_total": {"reason"}}
    assert check_references("ok", 'sum by (reason) (rate(driftline_events_rejected_total{job="x"}[5m]))',
                            "{{reason}}", catalogue) == []
    assert check_references("a", "rate(driftline_events_in[5m])", "", catalogue) == \
        ["a: metric driftline_events_in is not exported"]
    assert check_references("b", 'driftline_events_in_total{reason="x"}', "", catalogue) == \
        ["b: driftline_events_in_total has no label 'reason'"]
    assert check_references("c", "sum by (feature_set) (driftline_events_rejected_total)", "", catalogue) == \
        ["c: no metric of it has label 'feature_set'"]
    assert check_references("d", "sum by (reason) (driftline_events_rejected_total)", "{{instance}}", catalogue) == \
        ["d: legend shows 'instance', not a label of the result"]


# ---------------------------------------------------------------- running flows for real


def free_port() -> int:
    """A TCP port free on the loopback interface right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def driftline_command() -> list[str]:
    """The `driftline` console script of this interpreter's environment."""
    script = Path(sys.executable).parent / "driftline"
    if not script.exists():
        found = shutil.which("driftline")
        if found is None:
            pytest.skip("the `driftline` console script is not installed (pip install -e .)")
        script = Path(found)
    return [str(script)]


def driftline_env() -> dict[str, str]:
    """The environment for `driftline` subprocesses: this checkout's code first on the path."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}


def run_cli(*args: str) -> None:
    result = subprocess.run([*driftline_command(), *args], capture_output=True, text=True, env=driftline_env(),
                            timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """{(sample name, sorted labels): value} of http://127.0.0.1:port/metrics."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


class RunningFlow:
    """`driftline run FLOW ... --metrics-port PORT` in a subprocess; stop() sends SIGTERM."""

    def __init__(self, flow: str, config: Path, bootstrap: str, log: Path) -> None:
        self.flow, self.port, self.log = flow, free_port(), log
        self.process = subprocess.Popen(
            [*driftline_command(), "run", flow, "--config", str(config), "--bootstrap", bootstrap,
             "--metrics-port", str(self.port), "--log-format", "text"],
            stdout=log.open("ab"), stderr=subprocess.STDOUT, env=driftline_env())

    def scrape_when(self, ready, deadline_s: float = 300.0) -> dict:
        """Scrape until `ready(metrics)` holds; fails with the log if the flow dies or the deadline passes."""
        deadline = time.monotonic() + deadline_s
        while True:
            assert self.process.poll() is None, f"{self.flow} exited: {self.log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"{self.flow} not ready: {self.log.read_text()[-3000:]}"
            try:
                metrics = scrape(self.port)
                if ready(metrics):
                    return metrics
            except OSError:
                pass  # not listening yet
            time.sleep(0.5)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


EVENTS = 30_000  # 150 s of event time at the generator's 200 events/s


def three_flow_config(prefix: str) -> str:
    """A small config on this test's topics whose flows fill every labelled metric family fast:
    10 s windows, a sample set, a monitor with an expectation every window breaks (drift events
    at once, no reference needed) and a model with 10 s metrics windows."""
    return f"""
[source]
topic = "{prefix}rides"
partitions = 3
lateness = "10s"
dead_letter_topic = "{prefix}rides.dlq"
late_topic = "{prefix}rides.late"

[schema]
entity = "area"
event_time = "ts"
time_format = "epoch_ms"

[schema.fields]
ride_id = "string"
area = "string"
price = "float"
distance_km = "float"
surge = {{ type = "float", nullable = true }}
eta_min = "float"
payment = {{ type = "category", values = ["card", "cash", "wallet"] }}

[[feature_sets]]
name = "area_10s"
topic = "{prefix}features.area_10s"
window = {{ type = "tumbling", length = "10s" }}
features = [{{ name = "rides", agg = "count" }}, {{ name = "mean_price", agg = "mean", field = "price" }}]

[[sample_sets]]
name = "few"
topic = "{prefix}samples.few"
window = {{ type = "tumbling", length = "10s" }}
k = 3

[[monitors]]
name = "inputs"
numeric = ["price", "distance_km"]
categorical = ["payment"]
window = "10s"
min_count = 50
reference = {{ type = "first_windows", windows = 2 }}
policy = {{ consecutive = 1, cooldown = "0s" }}
events_topic = "{prefix}drift.events"
summaries_topic = "{prefix}drift.summaries"
expectations = [{{ column = "price", range = {{ min = 0, max = 1 }} }}]

[[models]]
name = "cancel"
kind = "hoeffding_tree_classifier"
inputs = ["price", "distance_km", "eta_min"]
labels = {{ topic = "{prefix}rides.labels", key = "ride_id", field = "cancelled", ttl = "10m" }}
metrics_window = "10s"
topic = "{prefix}predictions.cancel"
metrics_topic = "{prefix}model.metrics"
snapshots_topic = "{prefix}model.snapshots"
drift_topic = "{prefix}drift.events"
"""


# Per flow: the labelled families its scrape must hold before the catalogue is complete.
EXPECTED_FAMILIES = {
    "features": ["driftline_events_rejected_total", "driftline_features_out_total", "driftline_samples_out_total",
                 "driftline_unknown_category_total", "driftline_consumer_lag"],
    "drift": ["driftline_drift_events_out_total", "driftline_drift_alerts_total"],
    "model": ["driftline_model_events_total", "driftline_model_metric"],
}


@pytest.fixture(scope="module")
def exported_series(broker, tmp_path_factory: pytest.TempPathFactory) -> dict[str, set[str]]:
    """{sample name: label names} over live scrapes of the features, drift and model flows,
    once each has read the whole stream and filled its labelled families."""
    directory = tmp_path_factory.mktemp("three_flows")
    prefix = "oncall-dashboard-"
    config = directory / "config.toml"
    config.write_text(three_flow_config(prefix))
    run_cli("topics", "--config", str(config), "--bootstrap", broker.bootstrap, "--topic", f"{prefix}rides.labels")
    run_cli("produce", "--bootstrap", broker.bootstrap, "--topic", f"{prefix}rides", "--events", str(EVENTS),
            "--seed", "3", "--malformed-fraction", "0.01", "--change", "category:payment:crypto:share=0.1:start=1000")
    flows = [RunningFlow(flow, config, broker.bootstrap, directory / f"{flow}.log") for flow in EXPECTED_FAMILIES]
    catalogue: dict[str, set[str]] = {}
    try:
        for flow in flows:
            def ready(metrics: dict, families: list[str] = EXPECTED_FAMILIES[flow.flow]) -> bool:
                names = {name for name, _ in metrics}
                return metrics.get(("driftline_events_in_total", ())) == EVENTS and all(f in names for f in families)

            for name, labels in flow.scrape_when(ready):
                catalogue.setdefault(name, set()).update(label for label, _ in labels)
    finally:
        codes = {flow.flow: flow.stop() for flow in flows}
    assert codes == {flow: 0 for flow in EXPECTED_FAMILIES}, codes
    return catalogue | PROMETHEUS_SERIES


@pytest.mark.integration
def test_every_expression_names_metrics_and_labels_the_flows_export(exported_series: dict[str, set[str]]) -> None:
    # The scrape itself: histograms are exposed as _bucket/_sum/_count, counters with _total.
    assert {"driftline_stage_seconds_bucket", "driftline_emit_lag_seconds_bucket",
            "driftline_events_in_total"} <= set(exported_series)
    assert "le" in exported_series["driftline_stage_seconds_bucket"]
    checked = [(where, expr, legend) for where, expr, legend in queries()]
    checked += [(where, expr, "") for where, expr in rule_expressions()]
    problems = [p for where, expr, legend in checked for p in check_references(where, expr, legend, exported_series)]
    assert not problems, "\n".join(problems)
    assert len(checked) >= 25


# ---------------------------------------------------------------- provisioning


def _mounts(service: dict) -> dict[str, str]:
    """Container path -> host source of a compose service's volumes."""
    return {entry.split(":")[1]: entry.split(":")[0] for entry in service.get("volumes", [])}


def test_compose_provisions_the_datasource_and_the_dashboard() -> None:
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    grafana = services["grafana"]
    assert grafana["image"].startswith("grafana/grafana:") and "prometheus" in grafana["depends_on"]
    mounts = _mounts(grafana)
    assert mounts["/etc/grafana/provisioning"] == "./deploy/grafana/provisioning"
    # The datasource is the compose Prometheus, at the port it listens on.
    (datasource,) = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yml").read_text())["datasources"]
    assert datasource["type"] == "prometheus" and datasource["isDefault"] is True
    assert datasource["url"] == "http://prometheus:9090" and "9090:9090" in services["prometheus"]["ports"]
    # The dashboard provider reads the directory the dashboard file is mounted into.
    (provider,) = yaml.safe_load((PROVISIONING / "dashboards" / "driftline.yml").read_text())["providers"]
    assert provider["type"] == "file"
    dashboards = {target: source for target, source in mounts.items()
                  if Path(target).parent == Path(provider["options"]["path"])}
    assert dashboards == {f"{provider['options']['path']}/driftline.json": "./deploy/grafana/driftline.json"}
    for source in mounts.values():
        assert not source.startswith(".") or (ROOT / source).exists(), source


def render_monitoring_configmaps() -> str:
    """deploy/k8s/monitoring.yaml: the dashboard and the rules as ConfigMaps, files verbatim."""

    def block(text: str) -> str:
        return "\n".join(("    " + line) if line else "" for line in text.rstrip("\n").split("\n"))

    return f"""# Monitoring on Kubernetes: the Grafana dashboard and the Prometheus alert rules as ConfigMaps,
# generated from deploy/grafana/driftline.json and deploy/prometheus/rules.yml (do not edit
# here: edit those and run `python -m tests.test_oncall_dashboard`; tests check they agree).
#
# - driftline-grafana-dashboard carries the label grafana_dashboard: "1", which the dashboard
#   sidecar of the Grafana Helm chart (and kube-prometheus-stack) watches and loads.
# - driftline-prometheus-rules: mount it into your Prometheus and list the file under
#   rule_files (docs/monitoring.md shows how, and what to do with the Prometheus Operator).
apiVersion: v1
kind: ConfigMap
metadata:
  name: driftline-grafana-dashboard
  labels: {{app.kubernetes.io/name: driftline, app.kubernetes.io/component: monitoring, grafana_dashboard: "1"}}
data:
  driftline.json: |
{block(DASHBOARD_PATH.read_text())}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: driftline-prometheus-rules
  labels: {{app.kubernetes.io/name: driftline, app.kubernetes.io/component: monitoring}}
data:
  rules.yml: |
{block(RULES_PATH.read_text())}
"""


def test_the_k8s_configmaps_carry_the_dashboard_and_the_rules() -> None:
    assert MONITORING_CONFIGMAPS.read_text() == render_monitoring_configmaps(), \
        "deploy/k8s/monitoring.yaml is stale: run `python -m tests.test_oncall_dashboard`"
    documents = {d["metadata"]["name"]: d for d in yaml.safe_load_all(MONITORING_CONFIGMAPS.read_text())}
    assert documents["driftline-grafana-dashboard"]["data"]["driftline.json"] == DASHBOARD_PATH.read_text()
    assert documents["driftline-grafana-dashboard"]["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert documents["driftline-prometheus-rules"]["data"]["rules.yml"] == RULES_PATH.read_text()
    kustomization = yaml.safe_load((ROOT / "deploy" / "kustomization.yaml").read_text())
    assert "k8s/monitoring.yaml" in kustomization["resources"]


if __name__ == "__main__":
    MONITORING_CONFIGMAPS.write_text(render_monitoring_configmaps())
    print(f"wrote {MONITORING_CONFIGMAPS.relative_to(ROOT)}")
