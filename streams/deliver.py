"""Stage 5 — deliver: the delivery consumer that respects holds.

Consumes ``sentinelle.verdicts.v1`` (key ``account_id``); hands ``deliver`` verdicts to the MTA
over SMTP and parks ``park`` verdicts; produces one ``sentinelle.delivered.v1`` record per
outcome. Tables: ``outcomes`` (message id -> final outcome, so a redelivered verdict is never
handed over twice), ``parked`` and ``parked-index`` (a held sender's mail, in order), and it
reads ``holds`` (kept by the hold stage) to see lifted holds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from streams import wire
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


async def hand_off(pipeline: Pipeline, verdict: dict[str, Any]) -> None:
    """Deliver once: the outcomes registry makes a redelivered verdict a no-op."""
    message_id = verdict["message_id"]
    if pipeline.tables.outcomes.get(message_id) is not None:
        return
    with pipeline.metrics.smtp_seconds.time():
        answer = await pipeline.smtp.send(
            verdict["envelope_from"],
            verdict["recipients"],
            wire.unb64(verdict["raw_message_b64"]),
        )
    pipeline.tables.outcomes[message_id] = "delivered"
    await record_outcome(pipeline, verdict, "delivered", answer)


async def reject(pipeline: Pipeline, verdict: dict[str, Any], why: str) -> None:
    if pipeline.tables.outcomes.get(verdict["message_id"]) is not None:
        return
    pipeline.tables.outcomes[verdict["message_id"]] = "rejected"
    await record_outcome(pipeline, verdict, "rejected", why)


def lifted(pipeline: Pipeline, account_id: str, hold_id: str | None) -> str | None:
    """'released' or 'rejected' when that hold has been lifted, else None."""
    last = pipeline.tables.holds.get(account_id)
    if last and hold_id and last.get("hold_id") == hold_id:
        state = last.get("state")
        if state in ("released", "rejected"):
            return str(state)
    return None


async def park(pipeline: Pipeline, verdict: dict[str, Any]) -> None:
    account_id = verdict["account_id"]
    index = dict(pipeline.tables.parked_index.get(account_id) or {"first": 0, "next": 0})
    seq = index["next"]
    pipeline.tables.parked[f"{account_id}{PARKED_KEY_SEPARATOR}{seq}"] = verdict
    index["next"] = seq + 1
    pipeline.tables.parked_index[account_id] = index
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
            state = lifted(pipeline, account_id, verdict.get("hold_id"))
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
            state = lifted(pipeline, account_id, verdict.get("hold_id"))
            if verdict["action"] == "deliver" or state == "released":
                await hand_off(pipeline, verdict)
            elif state == "rejected":
                await reject(pipeline, verdict, "rejected with its hold")
            else:
                await park(pipeline, verdict)

    @pipeline.app.agent(pipeline.topics.verdicts, name="deliver", concurrency=1)
    async def deliver(stream: Any) -> None:
        await consume(pipeline, stream, "deliver", handle)
