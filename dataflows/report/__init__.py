"""The drift report for people: what a run found (drift and model findings), its plots and the
self-contained HTML page. The command is `dataflows.cli.report`.
"""

from dataflows.report.html import render
from dataflows.report.drift_findings import demo_drift_lines
from dataflows.report.model_findings import demo_model_report

__all__ = ["demo_drift_lines", "demo_model_report", "render"]
