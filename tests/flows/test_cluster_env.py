"""The process id and addresses of a Bytewax cluster, from the flags or Kubernetes' environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from dataflows.cli.commands import _build_parser, _cluster, _execution
from dataflows.flows.cluster_env import cluster_position
from features.config_values import ConfigError

POD = {"BYTEWAX_POD_NAME": "drift-2", "BYTEWAX_STATEFULSET_NAME": "drift"}


def test_a_statefulset_pod_derives_its_id_and_every_peer_from_the_replica_count() -> None:
    position = cluster_position(None, None, None, {**POD, "BYTEWAX_REPLICAS": "4", "DRIFTLINE_CLUSTER_PORT": "2101"})
    assert position.process_id == 2
    assert position.addresses == tuple(f"drift-{i}.drift:2101" for i in range(4))
    assert position.workers == 1


def test_a_hostfile_wins_over_the_replica_count(tmp_path: Path) -> None:
    hostfile = tmp_path / "hostfile.txt"
    hostfile.write_text("drift-0.drift.ns.svc.cluster.local:9999\n\ndrift-1.drift.ns.svc.cluster.local:9999\n"
                        "drift-2.drift.ns.svc.cluster.local:9999\n")
    position = cluster_position(None, None, None, {**POD, "BYTEWAX_REPLICAS": "9",
                                                   "BYTEWAX_HOSTFILE_PATH": str(hostfile)})
    assert position.process_id == 2 and len(position.addresses or ()) == 3
    assert position.addresses[0] == "drift-0.drift.ns.svc.cluster.local:9999"
    assert position.origin == "BYTEWAX_POD_NAME, BYTEWAX_HOSTFILE_PATH"


def test_explicit_variables_and_flags_take_precedence() -> None:
    env = {**POD, "BYTEWAX_REPLICAS": "3", "BYTEWAX_PROCESS_ID": "0", "BYTEWAX_ADDRESSES": "a:1;b:2",
           "BYTEWAX_WORKERS_PER_PROCESS": "3"}
    from_env = cluster_position(None, None, None, env)
    assert (from_env.workers, from_env.process_id, from_env.addresses) == (3, 0, ("a:1", "b:2"))
    from_flags = cluster_position(2, 1, "x:1; y:2 ;z:3", env)
    assert (from_flags.workers, from_flags.process_id, from_flags.addresses) == (2, 1, ("x:1", "y:2", "z:3"))
    assert from_flags.origin == "flags"


def test_no_cluster_variables_means_one_process() -> None:
    alone = cluster_position(None, None, None, {"BYTEWAX_REPLICAS": "3"})  # no pod name: not in a StatefulSet
    assert (alone.process_id, alone.addresses) == (None, None)


@pytest.mark.parametrize("env, key", [
    ({"BYTEWAX_POD_NAME": "other-1", "BYTEWAX_STATEFULSET_NAME": "drift"}, "BYTEWAX_POD_NAME"),
    ({**POD, "BYTEWAX_REPLICAS": "three"}, "BYTEWAX_REPLICAS"),
    ({"BYTEWAX_WORKERS_PER_PROCESS": "0"}, "BYTEWAX_WORKERS_PER_PROCESS"),
    ({**POD, "BYTEWAX_HOSTFILE_PATH": "/nonexistent/hostfile"}, "BYTEWAX_HOSTFILE_PATH"),
])
def test_bad_variables_name_themselves(env: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError) as raised:
        cluster_position(None, None, None, env)
    assert raised.value.key == key


def test_the_run_command_uses_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    args = ["run", "features", "--config", "deploy/rides.toml", "--bootstrap", "k:9092"]
    for name, value in {**POD, "BYTEWAX_REPLICAS": "3", "BYTEWAX_WORKERS_PER_PROCESS": "2"}.items():
        monkeypatch.setenv(name, value)
    parsed = _build_parser().parse_args(args)
    execution = _execution(parsed, _cluster(parsed))
    assert (execution.workers, execution.process_id, execution.total_workers) == (2, 2, 6)
    assert execution.addresses == ("drift-0.drift:9999", "drift-1.drift:9999", "drift-2.drift:9999")
    monkeypatch.setenv("BYTEWAX_REPLICAS", "2")  # pod drift-2 outside a 2-replica set
    with pytest.raises(ConfigError, match="--process-id"):
        parsed = _build_parser().parse_args(args)
        _execution(parsed, _cluster(parsed))
