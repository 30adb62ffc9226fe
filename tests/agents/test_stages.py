"""Stage agents in Faust's test context (no broker): every failure becomes a recorded outcome.

Sends to other topics are captured by replacing each topic's ``send``; the real broker path is
covered by tests/integration.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from streams.app import Pipeline, create_pipeline
from streams.settings import Settings
from streams.smtp_client import HandoffResult


class Captured:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes | None, dict[str, Any]]] = []

    async def send(self, key: bytes | None = None, value: bytes = b"", **_: Any) -> None:
        self.sent.append((key, orjson.loads(value)))


@pytest.fixture
async def pipeline(tmp_path: Any) -> AsyncIterator[tuple[Pipeline, dict[str, Captured]]]:
    settings = Settings(app_id=f"test-agents-{id(tmp_path)}", data_dir=str(tmp_path))
    built = create_pipeline(settings)
    built.app.loop = asyncio.get_running_loop()  # pytest-asyncio 1.x: bind the running loop
    built.app.finalize()
    captured = {}
    for role in ("accepted", "authenticated", "verdicts", "alerts", "holds", "deadletter",
                 "delivered"):
        captured[role] = Captured()
        getattr(built.topics, role).send = captured[role].send
    yield built, captured


def agent(pipeline: Pipeline, name: str) -> Any:
    return next(a for a in pipeline.app.agents.values() if a.name.endswith(name))


RAW = b"From: a@northwind.example\r\nTo: b@contoso.example\r\nSubject: hi\r\n\r\nhello\r\n"
EVENT = {
    "message_id": "m-1", "account_id": "acct-1", "envelope_from": "bounce@northwind.example",
    "client_ip": "192.0.2.10", "helo": "mta1.relay.example", "recipients": ["b@contoso.example"],
    "timestamp": "2001-05-03T14:22:10Z", "size": len(RAW),
    "raw_message_b64": base64.b64encode(RAW).decode(),
}


async def test_ingest_rekeys_by_sender_and_passes_bytes_unchanged(
    pipeline: tuple[Pipeline, dict[str, Captured]],
) -> None:
    built, captured = pipeline
    value = orjson.dumps(EVENT)
    async with agent(built, "ingest").test_context() as ingest:
        await ingest.put(key=b"m-1", value=value)
    assert captured["accepted"].sent == [(b"acct-1", EVENT)]
    assert captured["deadletter"].sent == []


async def test_ingest_dead_letters_with_reason_and_original_bytes(
    pipeline: tuple[Pipeline, dict[str, Captured]],
) -> None:
    built, captured = pipeline
    async with agent(built, "ingest").test_context() as ingest:
        await ingest.put(key=b"k", value=b"{oops")
    ((key, record),) = captured["deadletter"].sent
    assert key == b"k"
    assert record["reason"] == "bad_json" and record["stage"] == "ingest"
    assert base64.b64decode(record["original_value_b64"]) == b"{oops"
    assert captured["accepted"].sent == []


async def test_an_exception_inside_score_becomes_a_dead_letter(
    pipeline: tuple[Pipeline, dict[str, Captured]], monkeypatch: pytest.MonkeyPatch,
) -> None:
    built, captured = pipeline

    def broken(*_: Any, **__: Any) -> Any:
        raise RuntimeError("model exploded")

    monkeypatch.setattr("streams.score.decide", broken)
    value = orjson.dumps({**EVENT, "auth": {"spf": {"result": "pass", "domain": "x"},
                                            "dkim": [], "dmarc": {"result": "none"}}})
    async with agent(built, "score").test_context() as score:
        await score.put(key=b"acct-1", value=value)
    ((_, record),) = captured["deadletter"].sent
    assert (record["stage"], record["reason"]) == ("score", "processing_error")
    assert "model exploded" in record["detail"] and record["message_id"] == "m-1"
    assert captured["verdicts"].sent == []


class RecordingMta:
    def __init__(self) -> None:
        self.received: list[bytes] = []

    async def send(self, mail_from: str, recipients: list[str], raw: bytes) -> HandoffResult:
        self.received.append(raw)
        return HandoffResult(accepted=list(recipients))


async def test_deliver_parks_held_mail_and_hands_over_the_rest(
    pipeline: tuple[Pipeline, dict[str, Captured]],
) -> None:
    built, captured = pipeline
    mta = RecordingMta()
    built.smtp = mta  # type: ignore[assignment]
    deliver = {**EVENT, "action": "deliver", "hold_id": None}
    held = {**EVENT, "message_id": "m-2", "action": "park", "hold_id": "hold-1"}
    async with agent(built, "deliver").test_context() as agent_:
        await agent_.put(key=b"acct-1", value=orjson.dumps(deliver))
        await agent_.put(key=b"acct-1", value=orjson.dumps(held))
        await agent_.put(key=b"acct-1", value=orjson.dumps(deliver))  # redelivered
    assert mta.received == [RAW]
    assert [(r["message_id"], r["outcome"]) for _, r in captured["delivered"].sent] == [
        ("m-1", "delivered"), ("m-2", "parked")]
