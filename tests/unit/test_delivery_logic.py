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


class RecordingTopic:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def send(self, key: bytes, value: bytes) -> None:
        self.sent.append(orjson.loads(value))


class RecordingMta:
    def __init__(self) -> None:
        self.received: list[bytes] = []

    async def send(self, mail_from: str, recipients: list[str], raw: bytes) -> str:
        self.received.append(raw)
        return "250 accepted"


def pipeline() -> Any:
    tables = SimpleNamespace(holds={}, parked={}, parked_index={}, outcomes={})
    return SimpleNamespace(tables=tables, topics=SimpleNamespace(delivered=RecordingTopic()),
                           metrics=Metrics(), smtp=RecordingMta())


def verdict(n: int, action: str = "park", hold_id: str | None = "hold-1") -> dict[str, Any]:
    return {"message_id": f"m{n}", "account_id": "acct", "envelope_from": "b@x.example",
            "recipients": ["r@y.example"], "action": action, "hold_id": hold_id,
            "raw_message_b64": base64.b64encode(f"message {n}".encode()).decode()}


def outcomes(p: Any) -> list[tuple[str, str]]:
    return [(r["message_id"], r["outcome"]) for r in p.topics.delivered.sent]


async def test_parked_mail_is_delivered_in_order_on_release() -> None:
    p = pipeline()
    for n in range(5):
        await park(p, verdict(n))
    assert await drain(p, "acct") == 0  # still held
    p.tables.holds["acct"] = {"hold_id": "hold-1", "state": "released"}
    assert await drain(p, "acct") == 5
    assert p.smtp.received == [f"message {n}".encode() for n in range(5)]
    assert outcomes(p)[5:] == [(f"m{n}", "delivered") for n in range(5)]
    assert p.tables.parked == {}


async def test_reject_records_every_parked_message_and_delivers_none() -> None:
    p = pipeline()
    for n in range(3):
        await park(p, verdict(n))
    p.tables.holds["acct"] = {"hold_id": "hold-1", "state": "rejected"}
    await drain(p, "acct")
    assert p.smtp.received == []
    assert outcomes(p)[3:] == [(f"m{n}", "rejected") for n in range(3)]


async def test_release_of_one_hold_leaves_a_later_hold_parked() -> None:
    p = pipeline()
    await park(p, verdict(1, hold_id="hold-1"))
    await park(p, verdict(2, hold_id="hold-2"))
    p.tables.holds["acct"] = {"hold_id": "hold-1", "state": "released"}
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
    p.tables.holds["acct"] = {"hold_id": "hold-1", "state": "released"}
    await hand_off(p, verdict(0))  # as if a crash came after the first hand-off
    del p.tables.parked["acct\x1f0"]
    p.tables.parked_index["acct"] = {"first": 1, "next": 3}
    await drain(p, "acct")
    assert p.smtp.received == [b"message 0", b"message 1", b"message 2"]
