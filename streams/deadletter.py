"""Dead-letter records: every event a stage cannot process is kept, with the reason and bytes."""

from __future__ import annotations

import hashlib
import logging
from typing import TYPE_CHECKING, Any

from streams import wire

if TYPE_CHECKING:
    from streams.app import Pipeline

log = logging.getLogger(__name__)


def dead_letter_record(
    *,
    stage: str,
    reason: str,
    detail: str,
    source_topic: str,
    key: bytes | None,
    value: bytes | None,
    partition: int | None = None,
    offset: int | None = None,
    message_id: str | None = None,
    account_id: str | None = None,
) -> dict[str, Any]:
    """The sentinelle.deadletter.v1 value for one failed event."""
    record: dict[str, Any] = {
        "stage": stage,
        "reason": reason,
        "detail": detail[:2000],
        "message_id": message_id,
        "account_id": account_id,
        "source_topic": source_topic,
        "original_key_b64": wire.b64(key) if key is not None else None,
        "original_value_b64": wire.b64(value or b""),
        "at": wire.rfc3339(wire.utc_now()),
    }
    if partition is not None:
        record["source_partition"] = partition
    if offset is not None:
        record["source_offset"] = offset
    return record


async def send_dead_letter(
    pipeline: Pipeline,
    event: Any,
    *,
    stage: str,
    reason: str,
    detail: str,
    message_id: str | None = None,
    account_id: str | None = None,
) -> None:
    """Dead-letter a faust event (keeps topic, partition, offset, key and value)."""
    message = event.message
    record = dead_letter_record(
        stage=stage,
        reason=reason,
        detail=detail,
        source_topic=message.topic,
        key=event.key,
        value=event.value,
        partition=message.partition,
        offset=message.offset,
        message_id=message_id,
        account_id=account_id,
    )
    await publish(pipeline, record, event.key, event.value or b"")


async def dead_letter_value(
    pipeline: Pipeline,
    value: dict[str, Any],
    *,
    stage: str,
    reason: str,
    detail: str,
    source_topic: str,
) -> None:
    """Dead-letter a value a stage holds itself (a parked verdict, say), not the event in hand."""
    key = str(value.get("account_id", "")).encode() or None
    original = wire.dumps(value)
    record = dead_letter_record(
        stage=stage, reason=reason, detail=detail, source_topic=source_topic, key=key,
        value=original, message_id=value.get("message_id"), account_id=value.get("account_id"),
    )
    await publish(pipeline, record, key, original)


async def publish(
    pipeline: Pipeline, record: dict[str, Any], key: bytes | None, original: bytes
) -> None:
    log.warning("dead-letter stage=%s reason=%s detail=%s",
                record["stage"], record["reason"], record["detail"][:200])
    try:
        await pipeline.topics.deadletter.send(key=key, value=wire.dumps(record))
    except Exception as exc:
        # Too large for the broker, most likely: keep a bounded prefix, the digest and where
        # the full original sits, rather than losing the record (and the event) altogether.
        await pipeline.topics.deadletter.send(
            key=key, value=wire.dumps(truncated(record, original, exc))
        )
    pipeline.metrics.dead_letters[(record["stage"], record["reason"])].inc()


TRUNCATED_ORIGINAL_BYTES = 64 * 1024


def truncated(record: dict[str, Any], original: bytes, error: Exception) -> dict[str, Any]:
    """The same dead-letter record with the original cut to a prefix that always fits."""
    digest = hashlib.sha256(original).hexdigest()
    return {
        **record,
        "detail": (f"{record['detail'][:1000]} | original of {len(original)} bytes "
                   f"(sha256 {digest}) truncated to {TRUNCATED_ORIGINAL_BYTES}: {error!r}"[:2000]),
        "original_value_b64": wire.b64(original[:TRUNCATED_ORIGINAL_BYTES]),
        "original_truncated": True,
        "original_sha256": digest,
        "original_size": len(original),
    }
