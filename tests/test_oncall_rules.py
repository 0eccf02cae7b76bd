"""The Prometheus alert rules (deploy/prometheus/rules.yml), checked three ways:

- as a document: every alert has a summary, a description, a severity and a runbook_url that
  points at its section of docs/runbooks.md;
- with promtool (Debian's `prometheus` package; skipped with the reason when absent):
  `promtool check rules`, `promtool test rules` on deploy/prometheus/rules_test.yml's
  synthetic series, and `promtool check config` on deploy/prometheus.yml;
- live: a real Prometheus server (same package) scrapes a running features flow
  (`driftline run` on a real broker), sees the target up, and raises the dead-letter alert
  when a burst of malformed events arrives and the flow-down alert when the flow stops. The
  rules it loads are deploy/prometheus/rules.yml with every range, offset and `for`
  shortened to seconds by substitution (fast_rules), thresholds unchanged.

That every metric and label the rules name is exported by the flows is checked against live
scrapes of all three flows in tests/test_oncall_dashboard.py, with the dashboard's queries.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.flow_fixtures import event_lines, make_config, to_toml
from tests.kafka_helpers import produce
from tests.test_oncall_dashboard import RunningFlow, free_port, run_cli

ROOT = Path(__file__).resolve().parents[1]
RULES_PATH = ROOT / "deploy" / "prometheus" / "rules.yml"
RULES_TEST_PATH = ROOT / "deploy" / "prometheus" / "rules_test.yml"
RUNBOOKS = ROOT / "docs" / "runbooks.md"
RULES = [rule for group in yaml.safe_load(RULES_PATH.read_text())["groups"] for rule in group["rules"]]

# The alert kinds issue #21 asks for.
ISSUE_ALERTS = {"DriftlineFlowDown", "DriftlineFlowNotConsuming", "DriftlineConsumerLagGrowing",
                "DriftlineDeadLetterRateHigh", "DriftlineNoFeaturesEmitted", "DriftlineCriticalDrift",
                "DriftlineModelErrorDrift"}


def tool(name: str) -> str:
    """The path of a Prometheus binary, or skip the test saying how to get it."""
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} not installed (Debian package `prometheus`: apt-get install prometheus; .ci/run installs it)")
    return path


# ---------------------------------------------------------------- the rules as a document


def test_every_alert_has_a_summary_description_severity_and_runbook() -> None:
    assert {rule["alert"] for rule in RULES} == ISSUE_ALERTS
    assert all("record" not in rule for rule in RULES)
    for rule in RULES:
        name = rule["alert"]
        assert rule["labels"]["severity"] in ("warning", "critical"), name
        annotations = rule["annotations"]
        assert set(annotations) == {"summary", "description", "runbook_url"}, name
        assert annotations["summary"].strip() and len(annotations["description"]) > len(annotations["summary"]), name
        assert annotations["runbook_url"] == f"docs/runbooks.md#{name.lower()}", name


def github_anchors(markdown: str) -> set[str]:
    """The anchors GitHub makes for a file's headings: lower case, spaces to '-', punctuation dropped."""
    headings = re.findall(r"^#+\s+(.+?)\s*$", markdown, flags=re.M)
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}


def test_every_runbook_url_lands_on_a_runbook_with_its_three_parts() -> None:
    text = RUNBOOKS.read_text()
    anchors = github_anchors(text)
    for rule in RULES:
        anchor = rule["annotations"]["runbook_url"].split("#", 1)[1]
        assert anchor in anchors, f"{rule['alert']}: no heading with anchor #{anchor} in docs/runbooks.md"
        section = text.split(f"## {rule['alert']}\n", 1)[1].split("\n## ", 1)[0]
        for part in ("**What it means.**", "**How to check it is real.**", "**What to do.**"):
            assert part in section, f"runbook {rule['alert']} lacks {part}"


def test_every_alert_is_unit_tested_firing() -> None:
    tests = yaml.safe_load(RULES_TEST_PATH.read_text())
    assert tests["rule_files"] == ["rules.yml"]
    firing = {case["alertname"] for test in tests["tests"] for case in test["alert_rule_test"] if case.get("exp_alerts")}
    quiet = {case["alertname"] for test in tests["tests"] for case in test["alert_rule_test"] if not case.get("exp_alerts")}
    assert firing == quiet == ISSUE_ALERTS


# ---------------------------------------------------------------- promtool


def test_promtool_check_rules() -> None:
    result = subprocess.run([tool("promtool"), "check", "rules", str(RULES_PATH)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(RULES)} rules found" in result.stdout


def test_promtool_unit_tests_of_the_rules() -> None:
    result = subprocess.run([tool("promtool"), "test", "rules", RULES_TEST_PATH.name], cwd=RULES_TEST_PATH.parent,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout and "FAILED" not in result.stdout


def test_the_compose_prometheus_config_loads_the_rules(tmp_path: Path) -> None:
    """deploy/prometheus.yml names the path docker-compose.yml mounts the rules at; with that
    path pointed at the repository's file, promtool accepts the config and the rules."""
    config = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    (rule_file,) = config["rule_files"]
    prometheus = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["prometheus"]
    mounts = {entry.split(":")[1]: entry.split(":")[0] for entry in prometheus["volumes"]}
    assert mounts[rule_file] == "./deploy/prometheus/rules.yml"
    local = tmp_path / "prometheus.yml"
    local.write_text(yaml.safe_dump({**config, "rule_files": [str(RULES_PATH)]}))
    result = subprocess.run([tool("promtool"), "check", "config", str(local)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(RULES)} rules found" in result.stdout


# ---------------------------------------------------------------- a real Prometheus on a running flow


def fast_rules(text: str) -> str:
    """The rules with every range and offset shortened to 10 s and every `for` to 0 s, so that
    they fire within seconds with a 1 s scrape and evaluation interval."""
    fast, ranges = re.subn(r"\[\d+m\]", "[10s]", text)
    fast, offsets = re.subn(r"\boffset \d+m\b", "offset 10s", fast)
    fast, fors = re.subn(r"^(\s+)for: \d+m$", r"\1for: 0s", fast, flags=re.M)
    assert ranges >= 5 and offsets == 2 and fors >= 5, (ranges, offsets, fors)  # the rules still look as expected
    return fast


class RunningPrometheus:
    """`prometheus` on a free loopback port, with its own storage directory."""

    def __init__(self, directory: Path, rules: str, target_port: int) -> None:
        directory.mkdir()
        (directory / "rules.yml").write_text(rules)
        (directory / "prometheus.yml").write_text(yaml.safe_dump({
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "rule_files": ["rules.yml"],
            "scrape_configs": [{"job_name": "driftline",
                                "static_configs": [{"targets": [f"127.0.0.1:{target_port}"]}]}]}))
        self.port, self.log = free_port(), directory / "prometheus.log"
        self.process = subprocess.Popen(
            [tool("prometheus"), f"--config.file={directory / 'prometheus.yml'}",
             f"--storage.tsdb.path={directory / 'data'}", f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=self.log.open("ab"), stderr=subprocess.STDOUT, cwd=directory)

    def api(self, path: str, **params: str) -> object:
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        body = json.loads(urllib.request.urlopen(url, timeout=5).read())
        assert body["status"] == "success", body
        return body["data"]

    def wait_for(self, what: str, condition, deadline_s: float = 120.0):
        """Poll `condition()` until it returns something true; fail with the log after the deadline."""
        deadline = time.monotonic() + deadline_s
        while True:
            assert self.process.poll() is None, f"prometheus exited: {self.log.read_text()[-3000:]}"
            try:
                value = condition()
                if value:
                    return value
            except OSError:
                pass  # not listening yet
            assert time.monotonic() < deadline, f"waited {deadline_s} s for {what}; log: {self.log.read_text()[-2000:]}"
            time.sleep(0.5)

    def alerts(self, name: str, state: str | None = None) -> list[dict]:
        return [a for a in self.api("alerts")["alerts"]
                if a["labels"]["alertname"] == name and (state is None or a["state"] == state)]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.mark.integration
def test_prometheus_raises_the_dead_letter_and_flow_down_alerts_of_a_live_flow(broker, topic_prefix: str,
                                                                                tmp_path: Path) -> None:
    tool("prometheus")  # skip before starting anything when the package is missing
    document = make_config(topic_prefix)
    config = tmp_path / "config.toml"
    config.write_text(to_toml(document))
    run_cli("topics", "--config", str(config), "--bootstrap", broker.bootstrap)
    source = document["source"]["topic"]
    # 5,000 events of which 20 have a bad timestamp (0.4%, under the 5% threshold).
    produce(broker.bootstrap, source, event_lines(5_000, seed=11))

    rules = fast_rules(RULES_PATH.read_text())
    flow = RunningFlow("features", config, broker.bootstrap, tmp_path / "flow.log")
    instance = f"127.0.0.1:{flow.port}"
    prometheus = None
    try:
        prometheus = RunningPrometheus(tmp_path / "prometheus", rules, flow.port)
        # The target is up, and Prometheus has the flow's count of the whole first batch.
        target = prometheus.wait_for("the flow's target to be up", lambda: [
            t for t in prometheus.api("targets")["activeTargets"]
            if t["labels"]["instance"] == instance and t["health"] == "up"])
        assert target[0]["labels"]["job"] == "driftline"
        prometheus.wait_for("events_in = 5000 in Prometheus", lambda: [
            r for r in prometheus.api("query", query=f'driftline_events_in_total{{instance="{instance}"}}')["result"]
            if float(r["value"][1]) == 5_000])
        # Every rule was evaluated after that, without error, and the dead-letter rule is quiet.
        seen_at = time.time()

        def evaluated_since() -> list[dict]:
            rules = [r for g in prometheus.api("rules")["groups"] for r in g["rules"]]
            return rules if all(_epoch(r["lastEvaluation"]) > seen_at + 1 for r in rules) else []

        loaded = prometheus.wait_for("a rule evaluation after the first batch", evaluated_since)
        assert {r["name"] for r in loaded} == ISSUE_ALERTS
        assert all(r["health"] == "ok" for r in loaded), [(r["name"], r.get("lastError")) for r in loaded]
        assert prometheus.alerts("DriftlineDeadLetterRateHigh") == []
        assert prometheus.alerts("DriftlineFlowDown") == []

        # A producer starts sending malformed events (bad timestamps, as a new producer
        # version might): keep sending until the alert fires, as a broken producer would.
        bad = [(b"area-00", b'{"area": "area-00", "ts": "soon", "price": 1.0, "payment": "card"}')] * 200

        def dead_letter_alert() -> list[dict]:
            produce(broker.bootstrap, source, bad)
            return prometheus.alerts("DriftlineDeadLetterRateHigh", "firing")

        (alert,) = prometheus.wait_for("DriftlineDeadLetterRateHigh to fire", dead_letter_alert)
        assert alert["labels"] == {"alertname": "DriftlineDeadLetterRateHigh", "job": "driftline",
                                   "instance": instance, "severity": "warning"}
        assert float(alert["value"]) > 0.05
        assert alert["annotations"]["runbook_url"] == "docs/runbooks.md#driftlinedeadletterratehigh"
        assert alert["annotations"]["summary"].startswith(f"driftline flow {instance} dead-letters ")

        # The flow stops (SIGTERM: exit 0): its target goes down and the alert fires.
        assert flow.stop() == 0, flow.log.read_text()[-3000:]
        (down,) = prometheus.wait_for("DriftlineFlowDown to fire",
                                      lambda: prometheus.alerts("DriftlineFlowDown", "firing"))
        assert down["labels"] == {"alertname": "DriftlineFlowDown", "job": "driftline", "instance": instance,
                                  "severity": "critical"}
        assert down["annotations"]["summary"] == f"driftline flow {instance} is down"
    finally:
        flow.stop()
        if prometheus is not None:
            prometheus.stop()


def _epoch(timestamp: str) -> float:
    """Seconds since the epoch of an RFC 3339 time as Prometheus' API writes it (nanoseconds cut)."""
    from datetime import datetime

    match = re.fullmatch(r"(.*T\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)", timestamp)
    assert match, timestamp
    base, fraction, zone = match.groups()
    parsed = datetime.fromisoformat(base + ("+00:00" if zone == "Z" else zone))
    return parsed.timestamp() + float(fraction or 0)
