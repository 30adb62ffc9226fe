"""Stage 2 — authenticate.

Consumes ``sentinelle.accepted.v1`` (key ``account_id``), produces
``sentinelle.authenticated.v1`` (same key): the event plus SPF, DKIM and DMARC results, checked
over async DNS so the event loop never blocks. No table.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from streams import wire
from streams.auth.check import authenticate as check_authentication
from streams.deadletter import send_dead_letter

if TYPE_CHECKING:
    from streams.app import Pipeline


def attach(pipeline: Pipeline) -> None:
    metrics = pipeline.metrics

    @pipeline.app.agent(pipeline.topics.accepted, name="authenticate", concurrency=1)
    async def authenticate(stream: Any) -> None:
        async for event in stream.events():
            metrics.events_in["authenticate"].inc()
            message = None
            try:
                message = wire.loads(event.value)
                results = await check_authentication(
                    raw=wire.unb64(message["raw_message_b64"]),
                    client_ip=message["client_ip"],
                    helo=message["helo"],
                    mail_from=message["envelope_from"],
                    resolver=pipeline.resolver,
                    now=wire.parse_rfc3339(message["timestamp"]),
                )
                message["auth"] = results.to_dict()
                await pipeline.topics.authenticated.send(key=event.key, value=wire.dumps(message))
                metrics.events_out["authenticate"].inc()
            except Exception as exc:
                await send_dead_letter(
                    pipeline, event, stage="authenticate", reason="processing_error",
                    detail=repr(exc),
                    message_id=(message or {}).get("message_id"),
                    account_id=(message or {}).get("account_id"),
                )
