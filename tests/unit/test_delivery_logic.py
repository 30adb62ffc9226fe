"""Delivery consumer logic with in-process fakes for tables, topic and MTA (fast, pure).

The same behaviour runs against the real broker and SMTP sink in tests/integration.
"""

from __future__ import annotations

import base64
from types import SimpleNamespace
from typing import Any

import orjson

from streams.deliver import drain, hand_off, park
from streams.metrics import Metrics
from streams.settings import Settings
from streams.smtp_client import HandoffResult, PermanentDeliveryError


class RecordingTopic:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def send(self, key: bytes, value: bytes) -> None:
        self.sent.append(orjson.loads(value))


class RecordingMta:
    def __init__(self, refuse: dict[str, str] | None = None,
                 defer: dict[str, str] | None = None) -> None:
        self.received: list[bytes] = []
        self.refuse, self.defer = refuse or {}, defer or {}

    async def send(self, mail_from: str, recipients: list[str], raw: bytes) -> HandoffResult:
        result = HandoffResult(
            accepted=[r for r in recipients if r not in self.refuse and r not in self.defer],
            refused={r: a for r, a in self.refuse.items() if r in recipients},
            deferred={r: a for r, a in self.defer.items() if r in recipients},
        )
        if not result.accepted and not result.deferred:
            raise PermanentDeliveryError(str(result.refused))
        if result.accepted:
            self.received.append(raw)
        return result


def pipeline() -> Any:
    tables = SimpleNamespace(holds={}, hold_states={}, parked={}, parked_index={}, outcomes={})
    topics = SimpleNamespace(delivered=RecordingTopic(), deadletter=RecordingTopic())
    return SimpleNamespace(tables=tables, topics=topics, metrics=Metrics(), smtp=RecordingMta(),
                           settings=Settings())


def verdict(n: int, action: str = "park", hold_id: str | None = "hold-1",
            account: str = "acct", recipients: tuple[str, ...] = ("r@y.example",)
            ) -> dict[str, Any]:
    return {"message_id": f"m{n}", "account_id": account, "envelope_from": "b@x.example",
            "recipients": list(recipients), "action": action, "hold_id": hold_id,
            "raw_message_b64": base64.b64encode(f"message {n}".encode()).decode()}


def outcomes(p: Any) -> list[tuple[str, str]]:
    return [(r["message_id"], r["outcome"]) for r in p.topics.delivered.sent]


async def test_parked_mail_is_delivered_in_order_on_release() -> None:
    p = pipeline()
    for n in range(5):
        await park(p, verdict(n))
    assert await drain(p, "acct") == 0  # still held
    p.tables.hold_states["hold-1"] = "released"
    assert await drain(p, "acct") == 5
    assert p.smtp.received == [f"message {n}".encode() for n in range(5)]
    assert outcomes(p)[5:] == [(f"m{n}", "delivered") for n in range(5)]
    assert p.tables.parked == {}


async def test_reject_records_every_parked_message_and_delivers_none() -> None:
    p = pipeline()
    for n in range(3):
        await park(p, verdict(n))
    p.tables.hold_states["hold-1"] = "rejected"
    await drain(p, "acct")
    assert p.smtp.received == []
    assert outcomes(p)[3:] == [(f"m{n}", "rejected") for n in range(3)]


async def test_release_of_one_hold_leaves_a_later_hold_parked() -> None:
    p = pipeline()
    await park(p, verdict(1, hold_id="hold-1"))
    await park(p, verdict(2, hold_id="hold-2"))
    p.tables.hold_states["hold-1"] = "released"
    assert await drain(p, "acct") == 1
    assert p.smtp.received == [b"message 1"]
    assert len(p.tables.parked) == 1


async def test_a_redelivered_verdict_is_not_handed_to_the_mta_twice() -> None:
    p = pipeline()
    await hand_off(p, verdict(1, "deliver", None))
    await hand_off(p, verdict(1, "deliver", None))
    assert p.smtp.received == [b"message 1"]
    assert outcomes(p) == [("m1", "delivered")]


async def test_drain_resumes_where_it_stopped() -> None:
    p = pipeline()
    for n in range(3):
        await park(p, verdict(n))
    p.tables.hold_states["hold-1"] = "released"
    await hand_off(p, verdict(0))  # as if a crash came after the first hand-off
    p.tables.parked_index["acct"] = {"first": 0, "next": 3}  # ...before the index moved on
    await drain(p, "acct")
    assert p.smtp.received == [b"message 0", b"message 1", b"message 2"]


async def test_mail_parked_under_an_earlier_hold_survives_a_newer_hold() -> None:
    p = pipeline()
    await park(p, verdict(1, hold_id="hold-1"))
    await park(p, verdict(2, hold_id="hold-2"))
    p.tables.hold_states.update({"hold-1": "released", "hold-2": "released"})
    assert await drain(p, "acct") == 2
    assert p.smtp.received == [b"message 1", b"message 2"]


async def test_a_permanent_refusal_dead_letters_that_message_and_drain_goes_on() -> None:
    p = pipeline()
    p.smtp = RecordingMta(refuse={"bad@y.example": "550 no such user"})
    await park(p, verdict(1))
    await park(p, verdict(2, recipients=("bad@y.example",)))
    await park(p, verdict(3))
    p.tables.hold_states["hold-1"] = "released"
    assert await drain(p, "acct") == 3
    assert p.smtp.received == [b"message 1", b"message 3"]
    ((dead),) = p.topics.deadletter.sent
    assert (dead["reason"], dead["message_id"]) == ("mta_refused", "m2")
    assert orjson.loads(base64.b64decode(dead["original_value_b64"]))["message_id"] == "m2"


async def test_deferred_recipients_are_dead_lettered_for_replay_the_rest_delivered() -> None:
    p = pipeline()
    p.smtp = RecordingMta(defer={"full@y.example": "452 mailbox full"})
    await hand_off(p, verdict(1, "deliver", None, recipients=("ok@y.example", "full@y.example")))
    assert outcomes(p) == [("m1", "delivered")]
    ((dead),) = p.topics.deadletter.sent
    assert dead["reason"] == "mta_tempfail"
    replay = orjson.loads(base64.b64decode(dead["original_value_b64"]))
    assert replay["recipients"] == ["full@y.example"]


async def test_the_same_message_id_from_two_senders_is_two_messages() -> None:
    p = pipeline()
    await hand_off(p, verdict(1, "deliver", None, account="alpha"))
    await hand_off(p, verdict(1, "deliver", None, account="beta"))
    assert len(p.smtp.received) == 2


async def test_a_redelivered_park_verdict_is_parked_once() -> None:
    p = pipeline()
    await park(p, verdict(1))
    await park(p, verdict(1))
    assert len(p.tables.parked) == 1 and outcomes(p) == [("m1", "parked")]
