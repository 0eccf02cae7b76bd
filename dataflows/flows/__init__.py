"""The Bytewax dataflows: ingest (read, decode, dead-letter), features, samples, drift, model;
the registry `driftline run` and `replay` use, the runner, metrics and the cluster position.
"""

from dataflows.flows.registry import FLOWS, FlowSpec, default_flows, topics_for
from dataflows.flows.runner import Execution, run_flow
from dataflows.flows.features import build_features_flow
from dataflows.flows.drift import build_drift_flow
from dataflows.flows.model import build_model_flow
from dataflows.flows.ingest import build_ingest_flow
from dataflows.flows.metrics import serve_metrics
from dataflows.flows.cluster_env import ClusterPosition, cluster_position

__all__ = [
    "ClusterPosition",
    "Execution",
    "FLOWS",
    "FlowSpec",
    "build_drift_flow",
    "build_features_flow",
    "build_ingest_flow",
    "build_model_flow",
    "cluster_position",
    "default_flows",
    "run_flow",
    "serve_metrics",
    "topics_for",
]
