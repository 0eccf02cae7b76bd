"""The deployment files' contract, checked by parsing them (no Docker engine or cluster here).

deploy/Dockerfile, docker-compose.yml, deploy/prometheus.yml, deploy/kustomization.yaml and
deploy/k8s/*.yaml must agree with each other and with the CLI that exists: every command a
container runs parses with `driftline`'s own parser, every flow is one `driftline run` knows,
every path a command names is mounted, every metrics port is scraped, and every pod of a
StatefulSet finds its process id and its peers from the environment the manifest gives it.
"""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path, PurePosixPath

import pytest
import yaml

from dataflows.kafka.broker import RunningBroker
from dataflows.cli.commands import _build_parser, main
from dataflows.flows.cluster_env import cluster_position
from dataflows.flows.registry import FLOWS, default_flows, topics_for
from dataflows.kafka.io import list_partitions
from features.config import load_config

from tests import ROOT
DEPLOY = ROOT / "deploy"
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
PROMETHEUS = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
KUSTOMIZATION = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
K8S = {path.name: list(yaml.safe_load_all(path.read_text())) for path in sorted((DEPLOY / "k8s").glob("*.yaml"))}
STATEFULSETS = [doc for docs in K8S.values() for doc in docs if doc["kind"] == "StatefulSet"]
K8S_SERVICES = {doc["metadata"]["name"]: doc for docs in K8S.values() for doc in docs if doc["kind"] == "Service"}
COMPOSE_FLOWS = {name: s for name, s in SERVICES.items() if s.get("command", [None])[0] == "run"}


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs of deploy/Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (DEPLOY / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in lines]


def parse_command(command: list[str]) -> argparse.Namespace:
    """The container's command as `driftline` parses it. A `run` of a flow this branch does
    not have yet is parsed as `features`, so its flags are still checked (flow names are
    `test_every_flow_a_container_runs_exists`'s business)."""
    command = list(command)
    if command[0] == "run" and command[1] not in FLOWS:
        command[1] = "features"
    return _build_parser().parse_args(command)


def option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def container(statefulset: dict) -> dict:
    (only,) = statefulset["spec"]["template"]["spec"]["containers"]
    return only


def expanded_args(spec: dict) -> list[str]:
    """A container's args with Kubernetes' $(VAR) references replaced by the env values."""
    env = {e["name"]: e["value"] for e in spec.get("env", []) if "value" in e}
    for arg in spec["args"]:
        for ref in re.findall(r"\$\((\w+)\)", arg):
            assert ref in env, f"$({ref}) in args is not a plain env value"
    return [re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], arg) for arg in spec["args"]]


def image_user() -> int:
    users = [args for instruction, args in dockerfile_instructions() if instruction == "USER"]
    return int(users[-1].split(":")[0])


# ---------------------------------------------------------------- flows and commands


def test_every_flow_a_container_runs_exists() -> None:
    """Fails until the drift and model flows are merged: compose and k8s already run them."""
    compose = {s["command"][1] for s in COMPOSE_FLOWS.values()}
    k8s = {expanded_args(container(s))[1] for s in STATEFULSETS}
    assert compose == k8s == {"features", "drift", "model"}
    assert compose <= set(FLOWS), f"flows not in dataflows.flows.registry.FLOWS: {sorted(compose - set(FLOWS))}"


def test_every_command_parses_with_the_cli() -> None:
    commands = {f"compose {name}": s["command"] for name, s in SERVICES.items() if "command" in s
                and not s["image"].startswith(("apache/", "prom/"))}
    commands |= {f"k8s {doc['metadata']['name']}": expanded_args(spec) for docs in K8S.values() for doc in docs
                 if doc["kind"] in ("StatefulSet", "Job")
                 for spec in doc["spec"]["template"]["spec"]["containers"]}
    assert len(commands) >= 9
    for where, command in commands.items():
        args = parse_command(command)
        assert args.command in ("run", "topics", "produce"), where
        if args.command == "run":  # long-running flows: recovery, metrics, a real broker
            assert args.recovery_dir is not None and args.metrics_port is not None and args.bootstrap, where


# ---------------------------------------------------------------- Dockerfile


def test_the_image_is_slim_non_root_and_holds_the_package_only() -> None:
    steps = dockerfile_instructions()
    bases = [args for instruction, args in steps if instruction == "FROM"]
    assert bases and all(re.match(r"python:3\.\d+-slim\b", base) for base in bases)
    final = steps[max(i for i, (instruction, _) in enumerate(steps) if instruction == "FROM"):]
    assert image_user() >= 1000  # a numeric uid, so Kubernetes' runAsNonRoot can verify it
    assert ("ENTRYPOINT", '["driftline"]') in final
    copied = {source for instruction, args in steps if instruction == "COPY" and "--from" not in args
              for source in shlex.split(args)[:-1]}
    assert copied == {"pyproject.toml", "README.md", "features", "dataflows"}  # no tests, bench, deploy
    installs = [args for instruction, args in final if instruction == "RUN" and "pip install" in args]
    assert installs and all("/wheels/*.whl" in args and "[" not in args and "-e " not in args for args in installs)
    # The recovery directory exists in the image, owned by its user, so a fresh volume is writable.
    prepared = " ".join(args for instruction, args in final if instruction == "RUN")
    assert "/var/lib/driftline/recovery" in prepared and "chown" in prepared


# ---------------------------------------------------------------- docker compose


def test_compose_runs_apache_kafka_in_kraft_mode_on_one_node() -> None:
    kafka = SERVICES["kafka"]
    env = kafka["environment"]
    assert kafka["image"].startswith("apache/kafka:") and kafka["image"].split(":")[1][0].isdigit()
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"].startswith(f"{env['KAFKA_NODE_ID']}@kafka:")
    listeners = {entry.split("://")[0] for entry in env["KAFKA_LISTENERS"].split(",")}
    protocols = dict(entry.split(":") for entry in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    advertised = {entry.split("://")[0]: entry.split("://")[1] for entry in env["KAFKA_ADVERTISED_LISTENERS"].split(",")}
    assert listeners == set(protocols) and set(advertised) <= listeners
    assert env["KAFKA_CONTROLLER_LISTENER_NAMES"] in listeners - set(advertised)
    for name in ("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"):
        assert env[name] == 1
    # Every driftline container talks to the internal advertised listener.
    bootstraps = {option(s["command"], "--bootstrap") for s in SERVICES.values() if "--bootstrap" in s.get("command", [])}
    assert bootstraps == {advertised[env["KAFKA_INTER_BROKER_LISTENER_NAME"]]}
    assert "healthcheck" in kafka


def _mounts(service: dict) -> dict[str, str]:
    """Container path -> source of each volume of a compose service."""
    return {entry.split(":")[1]: entry.split(":")[0] for entry in service.get("volumes", [])}


def _host_path(service: dict, container_path: str) -> Path:
    """The host file behind a container path, through the service's bind mounts."""
    for target, source in _mounts(service).items():
        if PurePosixPath(container_path).is_relative_to(target) and source.startswith("."):
            return ROOT / source / PurePosixPath(container_path).relative_to(target)
    raise AssertionError(f"{container_path} is not under a bind mount of {service.get('command')}")


def test_compose_flows_have_their_config_recovery_volume_and_metrics() -> None:
    recovery_volumes = []
    for name, service in COMPOSE_FLOWS.items():
        command = service["command"]
        assert service["build"]["dockerfile"] == "deploy/Dockerfile" and service["image"] == SERVICES["topics"]["image"]
        assert service["depends_on"]["topics"]["condition"] == "service_completed_successfully", name
        assert service["restart"] == "unless-stopped" and service["stop_grace_period"], name
        load_config(_host_path(service, option(command, "--config")))
        volume = _mounts(service)[option(command, "--recovery-dir")]
        assert volume in COMPOSE["volumes"], name  # a named volume: it outlives the container
        recovery_volumes.append(volume)
        assert option(command, "--metrics-port") in service["expose"], name
    assert len(set(recovery_volumes)) == len(recovery_volumes) == 3  # no two flows share recovery state


def test_prometheus_scrapes_every_flow() -> None:
    prometheus = SERVICES["prometheus"]
    assert prometheus["image"].startswith("prom/prometheus:")
    assert _mounts(prometheus)["/etc/prometheus/prometheus.yml"] == "./deploy/prometheus.yml"
    targets = {target for job in PROMETHEUS["scrape_configs"] for group in job["static_configs"]
               for target in group["targets"]}
    assert targets == {f"{name}:{option(s['command'], '--metrics-port')}" for name, s in COMPOSE_FLOWS.items()}
    assert all(job.get("metrics_path", "/metrics") == "/metrics" for job in PROMETHEUS["scrape_configs"])


def test_the_topic_step_runs_before_the_flows() -> None:
    topics = SERVICES["topics"]
    assert topics["command"][0] == "topics" and topics["restart"] == "no"
    assert topics["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert _host_path(topics, option(topics["command"], "--config")) == \
        _host_path(SERVICES["features"], option(SERVICES["features"]["command"], "--config"))


@pytest.mark.integration
def test_the_topic_step_creates_every_topic_the_flows_use(broker: RunningBroker, topic_prefix: str,
                                                          tmp_path: Path) -> None:
    topics = SERVICES["topics"]
    source = _host_path(topics, option(topics["command"], "--config")).read_text()
    config_path = tmp_path / "config.toml"  # the compose config on this test's own topic names
    config_path.write_text(source.replace('topic = "rides"', f'topic = "{topic_prefix}rides"', 1))
    command = list(topics["command"])
    command[command.index("--config") + 1] = str(config_path)
    command[command.index("--bootstrap") + 1] = broker.bootstrap
    command[command.index("--topic") + 1] = f"{topic_prefix}rides.labels"
    assert main(command) == 0
    assert main(command) == 0  # again: existing topics are kept
    config = load_config(config_path)
    expected = {*topics_for(config, default_flows(config)), f"{topic_prefix}rides.labels"}
    assert config.source.topic.startswith(topic_prefix) and len(expected) >= 4
    for topic in expected:
        assert len(list_partitions(broker.bootstrap, topic)) == config.source.partitions, topic


# ---------------------------------------------------------------- Kubernetes


def test_kustomization_lists_every_manifest_and_makes_the_config_map() -> None:
    assert sorted(KUSTOMIZATION["resources"]) == sorted(f"k8s/{name}" for name in K8S)
    (generator,) = KUSTOMIZATION["configMapGenerator"]
    assert generator["name"] == "driftline-config"
    for entry in generator["files"]:
        load_config(DEPLOY / entry.split("=")[-1])  # the config the pods mount is deploy/rides.toml itself


@pytest.mark.parametrize("statefulset", STATEFULSETS, ids=lambda s: s["metadata"]["name"])
def test_each_statefulset_is_a_bytewax_cluster_with_recovery_and_metrics(statefulset: dict) -> None:
    name, spec = statefulset["metadata"]["name"], statefulset["spec"]
    pod = spec["template"]
    main_container = container(statefulset)
    args = expanded_args(main_container)
    env = {e["name"]: e for e in main_container["env"]}
    ports = {p["name"]: p["containerPort"] for p in main_container["ports"]}

    # Headless Service of the same name, selecting these pods, published before readiness.
    service = K8S_SERVICES[spec["serviceName"]]
    assert spec["serviceName"] == name
    assert service["spec"]["clusterIP"] == "None" and service["spec"]["publishNotReadyAddresses"] is True
    assert service["spec"]["selector"] == spec["selector"]["matchLabels"] == pod["metadata"]["labels"]
    assert {p["name"]: p["port"] for p in service["spec"]["ports"]}["cluster"] == ports["cluster"]
    assert spec["podManagementPolicy"] == "Parallel"

    # Bytewax's cluster environment: each pod finds its id and every peer, as driftline derives them.
    assert env["BYTEWAX_POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["BYTEWAX_STATEFULSET_NAME"]["value"] == name
    assert env["BYTEWAX_REPLICAS"]["value"] == str(spec["replicas"])
    plain = {key: e["value"] for key, e in env.items() if "value" in e}
    for ordinal in range(spec["replicas"]):
        position = cluster_position(None, None, None, {**plain, "BYTEWAX_POD_NAME": f"{name}-{ordinal}"})
        assert position.process_id == ordinal
        assert position.addresses == tuple(f"{name}-{i}.{service['metadata']['name']}:{ports['cluster']}"
                                           for i in range(spec["replicas"]))

    # Recovery on the pod's own volume claim; the config from the ConfigMap; metrics scraped.
    mounts = {m["mountPath"]: m["name"] for m in main_container["volumeMounts"]}
    claims = {c["metadata"]["name"] for c in spec["volumeClaimTemplates"]}
    assert mounts[option(args, "--recovery-dir")] in claims
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    config_dir = str(PurePosixPath(option(args, "--config")).parent)
    assert volumes[mounts[config_dir]]["configMap"]["name"] == KUSTOMIZATION["configMapGenerator"][0]["name"]
    assert PurePosixPath(option(args, "--config")).name in KUSTOMIZATION["configMapGenerator"][0]["files"]
    assert str(ports["metrics"]) == option(args, "--metrics-port") == pod["metadata"]["annotations"]["prometheus.io/port"]
    assert main_container["readinessProbe"]["httpGet"]["port"] == "metrics"

    # Resources and a non-root user matching the image's.
    assert {"cpu", "memory"} <= set(main_container["resources"]["requests"])
    security = pod["spec"]["securityContext"]
    assert security["runAsNonRoot"] is True and security["runAsUser"] == image_user()
    assert main_container["securityContext"]["allowPrivilegeEscalation"] is False
