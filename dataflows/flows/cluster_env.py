"""Where this process sits in a Bytewax cluster, from the flags or from Kubernetes' environment.

`driftline run` takes `-i/--process-id` and `-a/--addresses`. When they are absent it reads
the variables Bytewax's own `python -m bytewax.run` and its Helm chart use, so a
StatefulSet needs no per-pod command line:

| variable | gives |
|---|---|
| `BYTEWAX_WORKERS_PER_PROCESS` | worker threads (when `-w` is absent) |
| `BYTEWAX_PROCESS_ID`, `BYTEWAX_ADDRESSES` | the process id and the `;`-separated addresses |
| `BYTEWAX_POD_NAME`, `BYTEWAX_STATEFULSET_NAME` | process id = the pod's ordinal (`features-2` -> 2) |
| `BYTEWAX_HOSTFILE_PATH` | addresses, one per line |
| `BYTEWAX_REPLICAS` | addresses `<set>-<i>.<set>:<port>` for i < replicas: the pods' names in the headless Service named like the StatefulSet; port `DRIFTLINE_CLUSTER_PORT`, default 9999 (the chart's) |

>>> env = {"BYTEWAX_POD_NAME": "features-1", "BYTEWAX_STATEFULSET_NAME": "features", "BYTEWAX_REPLICAS": "3"}
>>> cluster_position(None, None, None, env)
ClusterPosition(workers=1, process_id=1, addresses=('features-0.features:9999', 'features-1.features:9999', 'features-2.features:9999'), origin='BYTEWAX_POD_NAME, BYTEWAX_REPLICAS')
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from features.config_values import ConfigError

DEFAULT_PORT = 9999


@dataclass(frozen=True)
class ClusterPosition:
    """Worker threads here, this process's index and every process's address (None: alone)."""

    workers: int
    process_id: int | None
    addresses: tuple[str, ...] | None
    origin: str  # where the process id and addresses came from, for the start log line


def cluster_position(workers: int | None, process_id: int | None, addresses: str | None,
                     environ: Mapping[str, str]) -> ClusterPosition:
    """The flags' values, each missing one filled from `environ` as the module docstring says.

    >>> cluster_position(2, 0, "a:1;b:2", {"BYTEWAX_PROCESS_ID": "1"})
    ClusterPosition(workers=2, process_id=0, addresses=('a:1', 'b:2'), origin='flags')
    >>> cluster_position(None, None, None, {})
    ClusterPosition(workers=1, process_id=None, addresses=None, origin='single process')
    """
    origins: list[str] = []
    if workers is None:
        workers = _int(environ, "BYTEWAX_WORKERS_PER_PROCESS", default=1, minimum=1)
    if process_id is None:
        process_id = _process_id(environ, origins)
    else:
        origins.append("flags")
    if addresses is None:
        found = _addresses(environ, origins) if process_id is not None else None
    else:
        found = _split(addresses)
        if "flags" not in origins:
            origins.append("flags")
    return ClusterPosition(workers, process_id, found, ", ".join(origins) or "single process")


def _process_id(environ: Mapping[str, str], origins: list[str]) -> int | None:
    if "BYTEWAX_PROCESS_ID" in environ:
        origins.append("BYTEWAX_PROCESS_ID")
        return _int(environ, "BYTEWAX_PROCESS_ID")
    pod, statefulset = environ.get("BYTEWAX_POD_NAME"), environ.get("BYTEWAX_STATEFULSET_NAME")
    if pod is None or statefulset is None:
        return None
    ordinal = pod.removeprefix(statefulset + "-")
    if ordinal == pod or not ordinal.isdigit():
        raise ConfigError("BYTEWAX_POD_NAME", f"the StatefulSet's pod name `{statefulset}-<ordinal>`", pod,
                          "set BYTEWAX_STATEFULSET_NAME to the StatefulSet's name and BYTEWAX_POD_NAME from "
                          "the field metadata.name.")
    origins.append("BYTEWAX_POD_NAME")
    return int(ordinal)


def _addresses(environ: Mapping[str, str], origins: list[str]) -> tuple[str, ...] | None:
    if "BYTEWAX_ADDRESSES" in environ:
        origins.append("BYTEWAX_ADDRESSES")
        return _split(environ["BYTEWAX_ADDRESSES"])
    if "BYTEWAX_HOSTFILE_PATH" in environ:
        origins.append("BYTEWAX_HOSTFILE_PATH")
        path = Path(environ["BYTEWAX_HOSTFILE_PATH"])
        try:
            return tuple(line.strip() for line in path.read_text().splitlines() if line.strip())
        except OSError as exc:
            raise ConfigError("BYTEWAX_HOSTFILE_PATH", "a readable file of host:port lines", str(path),
                              f"check the path: {exc.strerror}.") from None
    if "BYTEWAX_REPLICAS" in environ and "BYTEWAX_STATEFULSET_NAME" in environ:
        origins.append("BYTEWAX_REPLICAS")
        replicas = _int(environ, "BYTEWAX_REPLICAS", minimum=1)
        port = _int(environ, "DRIFTLINE_CLUSTER_PORT", default=DEFAULT_PORT, minimum=1)
        name = environ["BYTEWAX_STATEFULSET_NAME"]
        return tuple(f"{name}-{i}.{name}:{port}" for i in range(replicas))
    return None


def _split(addresses: str) -> tuple[str, ...]:
    return tuple(a.strip() for a in addresses.split(";") if a.strip())


def _int(environ: Mapping[str, str], name: str, default: int | None = None, minimum: int = 0) -> int:
    text = environ.get(name)
    if text is None and default is not None:
        return default
    try:
        value = int(text or "")
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise ConfigError(name, f"an integer >= {minimum}", text, f"set {name} to a whole number.")
    return value
