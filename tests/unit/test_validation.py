"""Ingest rules: every dead-letter reason, and the accepted path."""

from __future__ import annotations

import base64

import orjson
import pytest

from streams.validation import Accepted, Rejected, validate_outbound

RAW = b"From: a@northwind.example\r\nTo: b@contoso.example\r\nSubject: hi\r\n\r\nhello\r\n"


def event(**overrides: object) -> dict[str, object]:
    value: dict[str, object] = {
        "message_id": "m-1",
        "account_id": "acct-1",
        "envelope_from": "bounce@northwind.example",
        "client_ip": "192.0.2.10",
        "helo": "mta1.relay.example",
        "recipients": ["b@contoso.example"],
        "timestamp": "2001-05-03T14:22:10Z",
        "size": len(RAW),
        "raw_message_b64": base64.b64encode(RAW).decode(),
    }
    value.update(overrides)
    return value


def check(value: bytes, limit: int = 10_000) -> Accepted | Rejected:
    return validate_outbound(value, limit)


def test_valid_event_is_accepted_with_its_raw_message() -> None:
    outcome = check(orjson.dumps(event()))
    assert isinstance(outcome, Accepted)
    assert (outcome.account_id, outcome.message_id, outcome.raw_message) == ("acct-1", "m-1", RAW)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"{not json", "bad_json"),
        (b"\xff\xfe\x00", "bad_json"),
        (b"[1, 2]", "bad_json"),
        (orjson.dumps({k: v for k, v in event().items() if k != "recipients"}), "schema_violation"),
        (orjson.dumps(event(recipients=[])), "schema_violation"),
        (orjson.dumps(event(client_ip="not-an-ip")), "schema_violation"),
        (orjson.dumps(event(timestamp="2001-05-03T14:22:10")), "schema_violation"),
        (orjson.dumps(event(extra_field=1)), "schema_violation"),
        (orjson.dumps(event(raw_message_b64="@@not base64@@")), "undecodable_message"),
    ],
    ids=["not-json", "not-utf8", "not-object", "missing-field", "no-recipients", "bad-ip",
         "naive-time", "unknown-field", "bad-base64"],
)
def test_bad_input_gets_its_reason(value: bytes, reason: str) -> None:
    outcome = check(value)
    assert isinstance(outcome, Rejected)
    assert outcome.reason == reason, outcome.detail


def test_oversize_message_is_rejected_after_decoding() -> None:
    big = b"x" * 5_000
    outcome = check(orjson.dumps(event(raw_message_b64=base64.b64encode(big).decode())), 4_000)
    assert isinstance(outcome, Rejected) and outcome.reason == "oversize"
    assert outcome.message_id == "m-1" and outcome.account_id == "acct-1"


def test_oversize_event_is_rejected_before_parsing() -> None:
    outcome = check(b"{" + b" " * 100_000 + b"}", 1_000)
    assert isinstance(outcome, Rejected) and outcome.reason == "oversize"


def test_tombstone_is_dead_lettered() -> None:
    assert validate_outbound(None, 100) == Rejected("bad_json", "empty value (tombstone)")


def test_timestamp_far_in_the_future_is_rejected() -> None:
    now = 988_899_730.0  # 2001-05-03T14:22:10Z, the event's own time
    assert isinstance(validate_outbound(orjson.dumps(event()), 10_000, now=now), Accepted)
    ahead = orjson.dumps(event(timestamp="2001-05-05T14:22:10Z"))
    outcome = validate_outbound(ahead, 10_000, now=now)
    assert isinstance(outcome, Rejected) and outcome.reason == "schema_violation"
    assert "future" in outcome.detail
