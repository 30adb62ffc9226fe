"""Stage 5 — deliver: the delivery consumer that respects holds.

Consumes ``sentinelle.verdicts.v1`` (key ``account_id``); hands ``deliver`` verdicts to the MTA
over SMTP and parks ``park`` verdicts; produces one ``sentinelle.delivered.v1`` record per
outcome. Tables: ``outcomes`` (sender + message id -> outcome, so a redelivered verdict is
never handed over or parked twice), ``parked`` and ``parked-index`` (a held sender's mail, in
order), and it reads ``hold-states`` (hold id -> state, kept by the hold stage).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from streams import wire
from streams.deadletter import dead_letter_value
from streams.smtp_client import PermanentDeliveryError
from streams.stage import Ids, consume

if TYPE_CHECKING:
    from streams.app import Pipeline

PARKED_KEY_SEPARATOR = "\x1f"


async def record_outcome(
    pipeline: Pipeline, verdict: dict[str, Any], outcome: str, detail: str = ""
) -> None:
    record = {
        "message_id": verdict["message_id"],
        "account_id": verdict["account_id"],
        "outcome": outcome,
        "hold_id": verdict.get("hold_id"),
        "at": wire.rfc3339(wire.utc_now()),
        "detail": detail,
    }
    await pipeline.topics.delivered.send(
        key=verdict["account_id"].encode(), value=wire.dumps(record)
    )
    pipeline.metrics.outcomes[outcome].inc()


FINAL = frozenset({"delivered", "rejected", "dead-lettered"})


def registry_key(verdict: dict[str, Any]) -> str:
    """Message ids are the relay's, unique per sender at best: the registry keys by both."""
    return f"{verdict['account_id']}{PARKED_KEY_SEPARATOR}{verdict['message_id']}"


async def hand_off(pipeline: Pipeline, verdict: dict[str, Any]) -> None:
    """Deliver once: the outcomes registry makes a redelivered verdict a no-op.

    The MTA's answer becomes the outcome: accepted -> delivered; refused for every recipient
    -> dead-lettered (``mta_refused``); recipients still deferred after the retry deadline ->
    a dead-letter copy of the verdict for just those recipients (``mta_tempfail``).
    """
    key = registry_key(verdict)
    if pipeline.tables.outcomes.get(key) in FINAL:
        return
    source = pipeline.settings.topics.verdicts
    try:
        with pipeline.metrics.smtp_seconds.time():
            result = await pipeline.smtp.send(
                verdict["envelope_from"],
                verdict["recipients"],
                wire.unb64(verdict["raw_message_b64"]),
            )
    except PermanentDeliveryError as exc:
        pipeline.tables.outcomes[key] = "dead-lettered"
        await dead_letter_value(pipeline, verdict, stage="deliver", reason="mta_refused",
                                detail=str(exc), source_topic=source)
        return
    if result.deferred:
        await dead_letter_value(
            pipeline, {**verdict, "recipients": sorted(result.deferred)}, stage="deliver",
            reason="mta_tempfail", detail=result.describe(), source_topic=source,
        )
    if not result.accepted:
        pipeline.tables.outcomes[key] = "dead-lettered"
        return
    pipeline.tables.outcomes[key] = "delivered"
    await record_outcome(pipeline, verdict, "delivered", result.describe())


async def reject(pipeline: Pipeline, verdict: dict[str, Any], why: str) -> None:
    key = registry_key(verdict)
    if pipeline.tables.outcomes.get(key) in FINAL:
        return
    pipeline.tables.outcomes[key] = "rejected"
    await record_outcome(pipeline, verdict, "rejected", why)


def lifted(pipeline: Pipeline, hold_id: str | None) -> str | None:
    """'released' or 'rejected' once that hold has been lifted, else None.

    Looked up per hold id, not against the sender's latest hold: mail parked under an earlier
    hold stays deliverable after a newer hold has started.
    """
    state = pipeline.tables.hold_states.get(hold_id) if hold_id else None
    return str(state) if state in ("released", "rejected") else None


async def park(pipeline: Pipeline, verdict: dict[str, Any]) -> None:
    key = registry_key(verdict)
    if pipeline.tables.outcomes.get(key) is not None:
        return  # a redelivered verdict: already parked, or already final
    account_id = verdict["account_id"]
    index = dict(pipeline.tables.parked_index.get(account_id) or {"first": 0, "next": 0})
    seq = index["next"]
    pipeline.tables.parked[f"{account_id}{PARKED_KEY_SEPARATOR}{seq}"] = verdict
    index["next"] = seq + 1
    pipeline.tables.parked_index[account_id] = index
    pipeline.tables.outcomes[key] = "parked"
    pipeline.metrics.parked.inc()
    await record_outcome(pipeline, verdict, "parked")


async def drain(pipeline: Pipeline, account_id: str) -> int:
    """Deliver or reject, in order, the parked mail of holds that have been lifted.

    Stops at the first message whose hold is still active, so mail parked under a later hold
    stays parked. Progress is written back after every message: a crash resumes where it was.
    Caller holds the sender's lock.
    """
    index = pipeline.tables.parked_index.get(account_id)
    if not index:
        return 0
    index = dict(index)
    done = 0
    while index["first"] < index["next"]:
        key = f"{account_id}{PARKED_KEY_SEPARATOR}{index['first']}"
        verdict = pipeline.tables.parked.get(key)
        if verdict is not None:
            state = lifted(pipeline, verdict.get("hold_id"))
            if state is None:
                break
            if state == "released":
                await hand_off(pipeline, verdict)
            else:
                await reject(pipeline, verdict, "rejected with its hold")
            del pipeline.tables.parked[key]
            pipeline.metrics.parked.dec()
            done += 1
        index["first"] += 1
        pipeline.tables.parked_index[account_id] = index
    return done


def attach(pipeline: Pipeline) -> None:
    async def handle(event: Any, ids: Ids) -> None:
        verdict = wire.loads(event.value)
        ids.note(verdict)
        account_id = verdict["account_id"]
        async with pipeline.locks[account_id]:
            await drain(pipeline, account_id)  # lifted holds go out first, in order
            state = lifted(pipeline, verdict.get("hold_id"))
            if verdict["action"] == "deliver" or state == "released":
                await hand_off(pipeline, verdict)
            elif state == "rejected":
                await reject(pipeline, verdict, "rejected with its hold")
            else:
                await park(pipeline, verdict)

    @pipeline.app.agent(pipeline.topics.verdicts, name="deliver", concurrency=1)
    async def deliver(stream: Any) -> None:
        await consume(pipeline, stream, "deliver", handle)
