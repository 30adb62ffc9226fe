"""Stage 3 — score.

Consumes ``sentinelle.authenticated.v1`` (key ``account_id``), produces
``sentinelle.verdicts.v1`` and, when a sender misbehaves, ``sentinelle.alerts.v1`` and an
``active`` record on ``sentinelle.holds.v1`` (all keyed by ``account_id``). Table ``senders``:
the sender's compact habit statistics and its current hold; it reads table ``holds`` (kept by
the hold stage) to learn that an operator lifted a hold.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from streams import wire
from streams.stage import Ids, consume
from streams.verdict import decide

if TYPE_CHECKING:
    from streams.app import Pipeline


def attach(pipeline: Pipeline) -> None:
    metrics = pipeline.metrics
    model = pipeline.settings.model
    topics = pipeline.topics
    senders = pipeline.tables.senders
    holds = pipeline.tables.holds

    async def handle(event: Any, ids: Ids) -> None:
        message = wire.loads(event.value)
        ids.note(message)
        account_id = message["account_id"]
        decision = decide(
            message,
            wire.unb64(message["raw_message_b64"]),
            senders.get(account_id),
            holds.get(account_id),
            alert_threshold=model.alert_threshold,
            hold_threshold=model.hold_threshold,
            learn_delay_s=model.learn_delay_s,
            hold_on_auth_failure=pipeline.settings.hold_on_auth_failure,
        )
        # Emit first, then persist: a crash in between replays the event, and the
        # deterministic hold id and per-message idempotent model make that harmless.
        if decision.hold is not None:
            await topics.holds.send(key=event.key, value=wire.dumps(decision.hold))
            metrics.holds[decision.alert["kind"] if decision.alert else "habit"].inc()
        if decision.alert is not None:
            await topics.alerts.send(key=event.key, value=wire.dumps(decision.alert))
        await topics.verdicts.send(key=event.key, value=wire.dumps(decision.verdict))
        senders[account_id] = decision.record  # assignment reaches the changelog
        metrics.verdicts[decision.verdict["action"]].inc()

    @pipeline.app.agent(topics.authenticated, name="score", concurrency=1)
    async def score(stream: Any) -> None:
        await consume(pipeline, stream, "score", handle)
