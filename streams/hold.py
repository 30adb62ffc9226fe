"""Stage 4 — hold.

Consumes ``sentinelle.holds.v1`` (compacted, key ``account_id``): hold records written by the
score stage (``active``) and by operators (``released``, ``rejected``). Keeps table ``holds``
(account -> last record) that the score and deliver stages read, and when a hold is lifted
drains that sender's parked mail in order: delivered on release, rejected (one record per
message) on reject.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from streams import wire
from streams.deadletter import send_dead_letter
from streams.deliver import drain

if TYPE_CHECKING:
    from streams.app import Pipeline

log = logging.getLogger(__name__)


def attach(pipeline: Pipeline) -> None:
    metrics = pipeline.metrics
    holds = pipeline.tables.holds

    @pipeline.app.agent(pipeline.topics.holds, name="hold", concurrency=1)
    async def hold(stream: Any) -> None:
        async for event in stream.events():
            metrics.events_in["hold"].inc()
            record = None
            try:
                if event.value is None:  # compaction tombstone
                    continue
                record = wire.loads(event.value)
                account_id = record["account_id"]
                async with pipeline.locks[account_id]:
                    previous = holds.get(account_id)
                    holds[account_id] = record
                    if record["state"] == "active":
                        if not previous or previous.get("hold_id") != record["hold_id"]:
                            metrics.active_holds.inc()
                    else:
                        if previous and previous.get("state") == "active":
                            metrics.active_holds.dec()
                        drained = await drain(pipeline, account_id)
                        log.info("hold %s %s by %s: %d parked messages drained",
                                 record["hold_id"], record["state"], record.get("actor"), drained)
                metrics.events_out["hold"].inc()
            except Exception as exc:
                await send_dead_letter(
                    pipeline, event, stage="hold", reason="processing_error", detail=repr(exc),
                    account_id=(record or {}).get("account_id"),
                )
