"""Stage 4 — hold.

Consumes ``sentinelle.holds.v1`` (compacted, key ``account_id``): hold records written by the
score stage (``active``) and by operators (``released``, ``rejected``). Keeps tables ``holds``
(account -> last record, read by the score stage) and ``hold-states`` (hold id -> state, read
by the deliver stage), and when a hold is lifted
drains that sender's parked mail in order: delivered on release, rejected (one record per
message) on reject.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from streams import wire
from streams.deliver import drain
from streams.stage import Ids, consume

if TYPE_CHECKING:
    from streams.app import Pipeline

log = logging.getLogger(__name__)


def attach(pipeline: Pipeline) -> None:
    metrics = pipeline.metrics
    holds = pipeline.tables.holds

    async def handle(event: Any, ids: Ids) -> None:
        if event.value is None:  # compaction tombstone
            return
        record = wire.loads(event.value)
        ids.note(record)
        account_id = record["account_id"]
        async with pipeline.locks[account_id]:
            if record["state"] == "active" and pipeline.tables.hold_states.get(
                record["hold_id"]
            ) in ("released", "rejected"):
                return  # a replayed start of a hold already lifted: lifted stays lifted
            previous = holds.get(account_id)
            holds[account_id] = record
            pipeline.tables.hold_states[record["hold_id"]] = record["state"]
            if record["state"] == "active":
                if not previous or previous.get("hold_id") != record["hold_id"]:
                    metrics.active_holds.inc()
                return
            if previous and previous.get("state") == "active":
                metrics.active_holds.dec()
            drained = await drain(pipeline, account_id)
            log.info("hold %s %s by %s: %d parked messages drained",
                     record["hold_id"], record["state"], record.get("actor"), drained)

    @pipeline.app.agent(pipeline.topics.holds, name="hold", concurrency=1)
    async def hold(stream: Any) -> None:
        await consume(pipeline, stream, "hold", handle)
