"""The topic catalogue in code: names, keys, schemas and topic configuration, from Settings.

`schemas/README.md` is the same catalogue for humans; a contract test keeps the two in step.
"""

from __future__ import annotations

from streams.embedded.broker import TopicSpec
from streams.settings import Settings

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
