"""Pure decision for one authenticated message: deliver, or park under a (new or existing) hold.

The score stage feeds this with the sender's table record and the hold record it last saw; the
result says what to write back and what to emit. No Faust here: unit tests drive it directly.

Holds live with the decision, not downstream: the verdict for every message of a held sender is
``park``, in the sender's order on one partition, so the delivery consumer never races the hold.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from streams import wire
from streams.model.features import extract_features
from streams.model.habits import SenderHabits
from streams.model.state import SenderState

SPF_FAILURES = frozenset({"fail", "softfail"})


@dataclass(frozen=True)
class Decision:
    record: dict[str, Any]  # the sender's new table value
    verdict: dict[str, Any]  # the sentinelle.verdicts.v1 value
    alert: dict[str, Any] | None = None  # sentinelle.alerts.v1 value, when raised
    hold: dict[str, Any] | None = None  # sentinelle.holds.v1 value, when a hold starts
    released: list[str] = field(default_factory=list)  # hold ids this message found lifted


def auth_failures(auth: dict[str, Any]) -> list[str]:
    """Reason codes for authentication failures that must hold the sender.

    >>> auth_failures({"spf": {"result": "fail"}, "dkim": [], "dmarc": {"result": "fail"}})
    ['auth.spf_fail', 'auth.dmarc_fail']
    >>> auth_failures({"spf": {"result": "pass"}, "dkim": [{"result": "pass"}],
    ...                "dmarc": {"result": "pass"}})
    []
    """
    reasons = []
    if auth.get("spf", {}).get("result") in SPF_FAILURES:
        reasons.append("auth.spf_fail")
    dkim = [d.get("result") for d in auth.get("dkim", [])]
    if dkim and "pass" not in dkim and any(r in ("fail", "neutral", "permerror") for r in dkim):
        reasons.append("auth.dkim_fail")
    if auth.get("dmarc", {}).get("result") == "fail":
        reasons.append("auth.dmarc_fail")
    return reasons


def auth_summary(auth: dict[str, Any]) -> dict[str, Any]:
    """The authentication results an operator needs beside a hold, in one small dict.

    >>> summary = auth_summary({"spf": {"result": "fail", "domain": "a.example"}, "dkim": [],
    ...                         "dmarc": {"result": "fail", "policy": "reject"}})
    >>> summary["spf"], summary["dkim"], summary["dmarc_policy"]
    ('fail', [], 'reject')
    """
    spf, dmarc = auth.get("spf", {}), auth.get("dmarc", {})
    return {
        "spf": spf.get("result"),
        "spf_domain": spf.get("domain"),
        "dkim": [f"{d.get('result')}:{d.get('domain')}" for d in auth.get("dkim", [])],
        "dmarc": dmarc.get("result"),
        "dmarc_policy": dmarc.get("policy"),
    }


def hold_id_for(account_id: str, message_id: str) -> str:
    """Deterministic, so a redelivered trigger message recreates the same hold, not a second one."""
    digest = hashlib.sha256(f"{account_id}\x00{message_id}".encode()).hexdigest()[:16]
    return f"hold-{digest}"


def decide(
    event: dict[str, Any],
    raw: bytes,
    record: dict[str, Any] | None,
    last_hold_record: dict[str, Any] | None,
    *,
    alert_threshold: float,
    hold_threshold: float,
    learn_delay_s: float,
    hold_on_auth_failure: bool = True,
) -> Decision:
    """Score one message for its sender and decide its verdict."""
    account_id: str = event["account_id"]
    message_id: str = event["message_id"]
    timestamp = wire.parse_rfc3339(event["timestamp"])
    auth: dict[str, Any] = event.get("auth", {})
    record = dict(record or {})
    hold = record.get("hold")
    lifted = bool(
        hold
        and last_hold_record
        and last_hold_record.get("hold_id") == hold["hold_id"]
        and last_hold_record.get("state") in ("released", "rejected")
    )
    if hold and not lifted:
        # Held: park in order, and learn nothing from it (the model state is not even read).
        verdict = {**event, "score": 0.0, "action": "park", "hold_id": hold["hold_id"],
                   "reasons": ["held"]}
        return Decision(record, verdict)

    state = SenderState.from_dict(record["model"]) if record.get("model") else None
    habits = SenderHabits(
        state,
        alert_threshold=alert_threshold,
        hold_threshold=hold_threshold,
        learn_delay_s=learn_delay_s,
    )
    released: list[str] = []
    if hold:  # lifted by an operator since the last message
        released.append(hold["hold_id"])
        hold = None
        habits.release()  # later delivered mail is learned again

    x = extract_features(
        message_id=message_id,
        raw=raw,
        recipients=event["recipients"],
        timestamp=timestamp,
        auth=auth,
    ).as_dict()
    reasons = auth_failures(auth) if hold_on_auth_failure else []
    assessment = habits.observe(x)
    evidence = assessment.evidence.to_dict()
    evidence["authentication"] = auth_summary(auth)
    kind = "auth" if reasons else "habit"
    action = "hold" if reasons else assessment.action
    if not reasons and action != "deliver":
        # Carried-over suspicion is context, not a property of this message: not a reason.
        contributing = sorted((f for f in evidence.get("features", [])
                               if f.get("contribution", 0) > 0
                               and f.get("name") != "accumulated_before"),
                              key=lambda f: -f["contribution"])
        reasons = [f"habit.{f['name']}" for f in contributing][:5] or ["habit.score"]
    alert = hold_record = None
    at = wire.rfc3339(wire.utc_now())
    if action in ("alert", "hold"):
        alert = {
            "alert_id": f"alert-{hold_id_for(account_id, message_id)[5:]}",
            "account_id": account_id, "message_id": message_id, "at": at, "kind": kind,
            "action": action, "score": float(assessment.score), "reasons": reasons,
            "evidence": evidence,
        }
    if action == "hold":
        habits.forget_pending()
        hold = {"hold_id": hold_id_for(account_id, message_id), "reason": reasons[0],
                "since": event["timestamp"]}
        hold_record = {
            "account_id": account_id, "hold_id": hold["hold_id"], "state": "active",
            "reason": reasons[0], "reasons": reasons, "actor": "sentinelle.score", "at": at,
            "trigger_message_id": message_id, "evidence": evidence,
        }
        verdict = {**event, "score": float(assessment.score), "action": "park",
                   "hold_id": hold["hold_id"], "reasons": reasons}
    else:
        # observe() already queued the message for delayed learning.
        verdict = {**event, "score": float(assessment.score), "action": "deliver",
                   "hold_id": None, "reasons": reasons if action == "alert" else []}
    record["model"] = habits.state.to_dict()
    record["hold"] = hold
    return Decision(record, verdict, alert, hold_record, released)
