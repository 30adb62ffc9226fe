"""The topic catalogue in code, and its creation on a cluster.

`schemas/README.md` is the same catalogue for humans; a contract test keeps the two in step.
Topics are created explicitly because Faust never creates an agent's source topic, and a
broker-chosen partition count breaks co-partitioned tables (``PartitionsMismatch``).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from streams.settings import Settings


@dataclass(frozen=True)
class TopicSpec:
    """One topic as the catalogue declares it (schemas/README.md)."""

    name: str
    partitions: int
    replication: int = 1
    configs: Mapping[str, str] = field(default_factory=dict)


class TopicMismatchError(RuntimeError):
    """An existing topic does not have the partition count its spec asks for."""

COMPACTED = frozenset({"holds"})


def topic_specs(settings: Settings) -> list[TopicSpec]:
    """Every topic Sentinelle uses, with explicit partitions, replication and cleanup policy."""
    kafka = settings.kafka
    specs = []
    for role, name in settings.topics.model_dump().items():
        configs = {
            "cleanup.policy": "compact" if role in COMPACTED else "delete",
            "min.insync.replicas": str(kafka.min_insync_replicas),
            "max.message.bytes": str(kafka.max_record_bytes),
        }
        specs.append(TopicSpec(name, kafka.partitions, kafka.replication_factor, configs))
    return specs


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
