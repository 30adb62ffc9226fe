"""The authenticate stage's output, ``auth`` plus ``authentication_results``, against the
authenticated and verdicts schemas."""

from __future__ import annotations

from typing import Any

import pytest

from streams import wire
from streams.auth import StaticResolver, authenticate

RAW = (
    b"From: Alice <alice@northwind.example>\r\nTo: bob@example.org\r\nSubject: hi\r\n"
    b'DKIM-Signature: v=1; a=rsa-sha256; d=evil"\r\n x.example; s=s\\1; h=from; bh=AA==; b=AA==\r\n'
    b"\r\nbody\r\n"
)
ZONE: dict[str, Any] = {
    "northwind.example": [{"type": "TXT", "value": "v=spf1 ip4:192.0.2.0/24 -all"}],
    "_dmarc.northwind.example": [{"type": "TXT", "value": "v=DMARC1; p=reject"}],
}


async def _event() -> dict[str, Any]:
    results = await authenticate(
        raw=RAW,
        client_ip="192.0.2.10",
        helo="mta1.relay.example",
        mail_from="bounce@northwind.example",
        resolver=StaticResolver(ZONE),
        now=1_700_000_000,
    )
    return {
        "message_id": "m-1",
        "account_id": "acct-1",
        "envelope_from": "bounce@northwind.example",
        "client_ip": "192.0.2.10",
        "helo": "mta1.relay.example",
        "recipients": ["bob@example.org"],
        "timestamp": "2026-12-04T09:00:00Z",
        "size": len(RAW),
        "raw_message_b64": wire.b64(RAW),
        "auth": results.to_dict(),
        "authentication_results": results.authentication_results("mx.sentinelle.example"),
    }


async def test_authenticated_event_with_header_matches_schema() -> None:
    event = await _event()
    assert event["authentication_results"].startswith("mx.sentinelle.example; spf=pass")
    assert "\r" not in event["authentication_results"]
    assert "\n" not in event["authentication_results"]
    assert wire.first_error("sentinelle.authenticated.v1", event) is None
    assert wire.first_error("sentinelle.authenticated.v1", wire.loads(wire.dumps(event))) is None


async def test_verdict_event_with_header_matches_schema() -> None:
    event = await _event()
    event.update(score=0.5, action="deliver", hold_id=None, reasons=[])
    assert wire.first_error("sentinelle.verdicts.v1", event) is None


@pytest.mark.parametrize("topic", ["sentinelle.authenticated.v1", "sentinelle.verdicts.v1"])
async def test_header_must_be_a_string(topic: str) -> None:
    event = await _event()
    if topic == "sentinelle.verdicts.v1":
        event.update(score=0.5, action="deliver", hold_id=None, reasons=[])
    assert wire.first_error(topic, event) is None
    event["authentication_results"] = 7
    assert wire.first_error(topic, event) is not None
