"""The loop every stage agent runs: one event at a time, and no event leaves unrecorded.

Faust acknowledges an event whose processing raised, so a bare exception would lose it. Here
every failure becomes a ``processing_error`` dead-letter record carrying the original bytes,
before the next event is read.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from streams.deadletter import send_dead_letter

if TYPE_CHECKING:
    from streams.app import Pipeline


@dataclass
class Ids:
    """What a handler learned about the event before failing, for the dead-letter record."""

    message_id: str | None = None
    account_id: str | None = None

    def note(self, value: Any) -> None:
        if isinstance(value, dict):
            message_id, account_id = value.get("message_id"), value.get("account_id")
            self.message_id = message_id if isinstance(message_id, str) else None
            self.account_id = account_id if isinstance(account_id, str) else None


Handler = Callable[[Any, Ids], Awaitable[None]]


async def consume(pipeline: Pipeline, stream: Any, stage: str, handle: Handler) -> None:
    metrics = pipeline.metrics
    events_in, events_out = metrics.events_in[stage], metrics.events_out[stage]
    async for event in stream.events():
        events_in.inc()
        ids = Ids()
        try:
            await handle(event, ids)
        except Exception as exc:  # recorded, not swallowed: see the module docstring
            await send_dead_letter(
                pipeline, event, stage=stage, reason="processing_error", detail=repr(exc),
                message_id=ids.message_id, account_id=ids.account_id,
            )
        else:
            events_out.inc()
