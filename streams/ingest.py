"""Stage 1 — ingest.

Consumes ``sentinelle.outbound.v1`` (key: the relay's), produces ``sentinelle.accepted.v1``
keyed by ``account_id`` (the one re-keying in the pipeline) or ``sentinelle.deadletter.v1``.
No table. The accepted value is the original bytes, unchanged.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from streams.deadletter import send_dead_letter
from streams.stage import Ids, consume
from streams.validation import Accepted, validate_outbound

if TYPE_CHECKING:
    from streams.app import Pipeline


def attach(pipeline: Pipeline) -> None:
    max_bytes = pipeline.settings.max_message_bytes
    accepted = pipeline.topics.accepted

    async def handle(event: Any, ids: Ids) -> None:
        outcome = validate_outbound(event.value, max_bytes, now=time.time())
        if isinstance(outcome, Accepted):
            await accepted.send(key=outcome.account_id.encode(), value=event.value)
        else:
            await send_dead_letter(
                pipeline, event, stage="ingest", reason=outcome.reason, detail=outcome.detail,
                message_id=outcome.message_id, account_id=outcome.account_id,
            )

    @pipeline.app.agent(pipeline.topics.outbound, name="ingest", concurrency=1)
    async def ingest(stream: Any) -> None:
        await consume(pipeline, stream, "ingest", handle)
