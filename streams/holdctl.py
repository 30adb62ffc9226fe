"""Operator actions on holds through Kafka: list them, release or reject a sender's hold.

A release or reject is a new record on the compacted holds topic, keyed by the sender, with the
actor and time (the audit trail); the hold stage drains the parked mail when it reads it.
"""

from __future__ import annotations

from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from streams import wire
from streams.settings import Settings


class HoldNotFound(LookupError):
    pass


def read_holds(settings: Settings) -> dict[str, dict[str, Any]]:
    """The latest hold record of every sender, read from the start of the holds topic."""
    topic = settings.topics.holds
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka.bootstrap,
                             enable_auto_commit=False, consumer_timeout_ms=1000)
    try:
        partitions = [TopicPartition(topic, p)
                      for p in sorted(consumer.partitions_for_topic(topic) or [])]
        if not partitions:
            return {}
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        end = consumer.end_offsets(partitions)
        latest: dict[str, dict[str, Any]] = {}
        while any(consumer.position(tp) < end[tp] for tp in partitions):
            for records in consumer.poll(timeout_ms=1000).values():
                for record in records:
                    if record.value is not None:
                        value = wire.loads(record.value)
                        latest[value["account_id"]] = value
        return latest
    finally:
        consumer.close()


def lift_hold(
    settings: Settings, account_id: str, state: str, actor: str, note: str = ""
) -> dict[str, Any]:
    """Release or reject the sender's active hold; returns the record written."""
    if state not in ("released", "rejected"):
        raise ValueError(f"state must be released or rejected, not {state!r}")
    current = read_holds(settings).get(account_id)
    if current is None or current.get("state") != "active":
        raise HoldNotFound(f"no active hold for sender {account_id!r}")
    record = {
        "account_id": account_id,
        "hold_id": current["hold_id"],
        "state": state,
        "reason": f"operator.{state}",
        # The hold's own reasons and evidence stay on the record: compaction keeps only this one.
        "reasons": current.get("reasons") or [current.get("reason", "")],
        "evidence": current.get("evidence") or {},
        "actor": actor,
        "at": wire.rfc3339(wire.utc_now()),
        "trigger_message_id": current.get("trigger_message_id"),
        "note": note,
    }
    producer = KafkaProducer(bootstrap_servers=settings.kafka.bootstrap, acks="all")
    try:
        producer.send(settings.topics.holds, key=account_id.encode(), value=wire.dumps(record))
        producer.flush(timeout=30)
    finally:
        producer.close(timeout=10)
    return record
