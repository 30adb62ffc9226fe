"""The score stage's pure decision: holds, parking, release, and the records it emits."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from streams.verdict import Decision, hold_id_for
from streams.verdict import decide as decide_with
from streams.wire import first_error

PASS_AUTH = {
    "spf": {"result": "pass", "domain": "northwind.example"},
    "dkim": [{"result": "pass", "domain": "northwind.example"}],
    "dmarc": {"result": "pass", "author_domain": "northwind.example", "policy": "reject"},
    "from_domain": "northwind.example",
}
SPF_FAIL_AUTH = {
    "spf": {"result": "fail", "domain": "northwind.example"},
    "dkim": [],
    "dmarc": {"result": "fail", "author_domain": "northwind.example", "policy": "reject"},
    "from_domain": "northwind.example",
}


def decide(event: dict[str, Any], raw: bytes, record: dict[str, Any] | None,
           last_hold: dict[str, Any] | None) -> Decision:
    return decide_with(event, raw, record, last_hold, alert_threshold=4.0, hold_threshold=8.0,
                       learn_delay_s=3600.0)


Event = tuple[dict[str, Any], bytes]


def message(n: int, to: str, subject: str = "weekly figures", at: int = 0) -> Event:
    raw = (f"From: ann@northwind.example\r\nTo: {to}\r\nSubject: {subject}\r\n"
           f"Message-ID: <m{n}@northwind.example>\r\n\r\nFigures attached, {n}.\r\n").encode()
    hour, minute = divmod(at, 60)
    event = {
        "message_id": f"m{n}@northwind.example",
        "account_id": "acct-ann",
        "envelope_from": "bounce@northwind.example",
        "client_ip": "192.0.2.10",
        "helo": "mta1.relay.example",
        "recipients": [to],
        "timestamp": f"2001-03-{1 + hour // 24:02d}T{hour % 24:02d}:{minute:02d}:00Z",
        "size": len(raw),
        "raw_message_b64": base64.b64encode(raw).decode(),
        "auth": PASS_AUTH,
    }
    return event, raw


def held_by_auth_failure() -> Decision:
    first, raw = message(1, "bob@contoso.example")
    first["auth"] = SPF_FAIL_AUTH
    decision = decide(first, raw, None, None)
    assert decision.hold is not None
    return decision


def run(events: list[Event], record: dict[str, Any] | None = None,
        last_hold: dict[str, Any] | None = None) -> tuple[list[Decision], dict[str, Any] | None]:
    decisions = []
    for event, raw in events:
        decision = decide(event, raw, record, last_hold)
        record = decision.record
        decisions.append(decision)
    return decisions, record


def test_authentication_failure_holds_the_sender_at_once() -> None:
    event, raw = message(1, "bob@contoso.example")
    event["auth"] = SPF_FAIL_AUTH
    decision = decide(event, raw, None, None)
    assert decision.verdict["action"] == "park"
    assert decision.hold is not None and decision.alert is not None
    assert decision.hold["reason"] == "auth.spf_fail"
    assert decision.hold["hold_id"] == hold_id_for("acct-ann", event["message_id"])
    assert decision.alert["kind"] == "auth" and "auth.dmarc_fail" in decision.alert["reasons"]
    assert decision.hold["evidence"]["authentication"]["spf"] == "fail"


def test_records_match_their_topic_schemas() -> None:
    event, raw = message(1, "bob@contoso.example")
    event["auth"] = SPF_FAIL_AUTH
    decision = decide(event, raw, None, None)
    assert first_error("sentinelle.verdicts.v1", decision.verdict) is None
    assert first_error("sentinelle.alerts.v1", decision.alert) is None
    assert first_error("sentinelle.holds.v1", decision.hold) is None
    clean, raw = message(2, "bob@contoso.example")
    assert first_error("sentinelle.verdicts.v1", decide(clean, raw, None, None).verdict) is None


def test_held_sender_parks_everything_and_learns_nothing() -> None:
    held = held_by_auth_failure()
    assert held.hold is not None
    model_before = held.record["model"]
    later, _ = run([message(n, "bob@contoso.example", at=n) for n in range(2, 6)], held.record)
    assert all(d.verdict["action"] == "park" for d in later)
    assert {d.verdict["hold_id"] for d in later} == {held.hold["hold_id"]}
    assert all(d.hold is None and d.alert is None for d in later)  # one hold, not one per message
    assert later[-1].record["model"] == model_before


def test_release_lifts_the_hold_and_mail_flows_again() -> None:
    held = held_by_auth_failure()
    assert held.hold is not None
    released = {**held.hold, "state": "released", "actor": "ops"}
    event, raw = message(2, "bob@contoso.example", at=5)
    decision = decide(event, raw, held.record, released)
    assert decision.released == [held.hold["hold_id"]]
    assert decision.verdict["action"] == "deliver" and decision.record["hold"] is None
    assert decision.record["model"]["held"] is False  # the model learns again


def test_a_stale_release_does_not_lift_a_newer_hold() -> None:
    held = held_by_auth_failure()
    assert held.hold is not None
    stale = {"hold_id": "hold-older", "state": "released", "account_id": "acct-ann"}
    event, raw = message(2, "bob@contoso.example", at=5)
    assert decide(event, raw, held.record, stale).verdict["action"] == "park"


def test_warmed_sender_mailing_strangers_is_held_within_its_first_messages() -> None:
    history = [message(n, f"colleague{n % 4}@contoso.example", at=n * 600) for n in range(60)]
    _, record = run(history)
    # Three days after the history ends (past the learning delay), a burst to strangers.
    burst = [message(1000 + n, f"victim{n}@elsewhere{n}.example", "verify your account",
                     at=60 * 24 * 28 + n // 2) for n in range(20)]
    decisions, _ = run(burst, record)
    actions = [d.verdict["action"] for d in decisions]
    assert "park" in actions and actions.index("park") < 9, actions
    holds = [d.hold for d in decisions if d.hold]
    assert len(holds) == 1 and holds[0]["reason"].startswith("habit.")


@pytest.mark.parametrize("auth", [
    {"spf": {"result": "temperror"}, "dkim": [{"result": "temperror"}],
     "dmarc": {"result": "temperror"}},
    {"spf": {"result": "none"}, "dkim": [], "dmarc": {"result": "none"}},
])
def test_dns_trouble_or_no_policy_does_not_hold_by_itself(auth: dict[str, Any]) -> None:
    event, raw = message(1, "bob@contoso.example")
    event["auth"] = auth
    assert decide(event, raw, None, None).verdict["action"] == "deliver"
