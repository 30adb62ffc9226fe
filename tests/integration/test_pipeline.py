"""End to end: a small replay of real mail through a real broker, DNS server, worker and SMTP sink.

One pipeline run (module fixture) and several assertions about it, then the minimal release and
reject paths on the same running pipeline.
"""

from __future__ import annotations

import base64
import hashlib
import time
import urllib.request
from collections import defaultdict
from typing import Any

import orjson
import pytest

from streams.demo import RunResult, collect, run_pipeline, settings_for
from streams.embedded.smtp_sink import read_deliveries
from streams.holdctl import lift_hold
from streams.outcomes import Ledger
from streams.replay.events import ReplayItem, load_replay

pytestmark = pytest.mark.integration

AUTH_SCENARIOS = ("spoof-unauthorised-ip", "spoof-bad-dkim")
COMPROMISED = "compromised"


class Run:
    items: list[ReplayItem]
    result: RunResult
    before_release: list[dict[str, Any]]
    after_release: list[dict[str, Any]]
    released: dict[str, Any]
    rejected: dict[str, Any]
    ledger_after: Ledger
    metrics: str


def sink_ids(deliveries: list[dict[str, Any]]) -> list[str]:
    """Message ids as the SMTP sink saw them (the Message-ID header, without brackets)."""
    return [(d["message_id"] or "").strip("<>") for d in deliveries]


def accounts_of(items: list[ReplayItem], label: str) -> set[str]:
    return {i.account_id for i in items if i.label == label and i.account_id}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    state = Run()
    state.items = load_replay(max_messages=400)
    run_dir = tmp_path_factory.mktemp("pipeline")

    def release_and_reject(env: dict[str, str], ledger: Ledger) -> None:
        settings = settings_for(env)
        port = env["SENTINELLE_METRICS_PORT"]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as page:
            state.metrics = page.read().decode()
        state.before_release = read_deliveries(run_dir / "smtp")
        (released_account,) = accounts_of(state.items, "spoof-bad-dkim")
        (rejected_account,) = accounts_of(state.items, "spoof-unauthorised-ip")
        state.released = lift_hold(settings, released_account, "released", "test-operator")
        state.rejected = lift_hold(settings, rejected_account, "rejected", "test-operator")
        parked = {m for m, o in ledger.outcome.items() if o == "parked"}
        watched = {i.message_id or "" for i in state.items
                   if i.account_id in (released_account, rejected_account)} & parked
        deadline = time.monotonic() + 60
        later = Ledger()
        while time.monotonic() < deadline:
            later = collect(settings.kafka.bootstrap, settings, len(state.items), 5,
                            lambda _m: None)
            if all(later.outcome.get(m) in ("delivered", "rejected") for m in watched):
                break
        state.ledger_after = later
        state.after_release = read_deliveries(run_dir / "smtp")

    state.result = run_pipeline(state.items, run_dir, speedup=0.0, timeout_s=300,
                                after=release_and_reject)
    return state


def test_every_message_has_exactly_one_outcome(run: Run) -> None:
    ledger = run.result.ledger
    assert ledger.accounted() == len(run.items)
    assert ledger.delivered_twice() == []
    received = sink_ids(run.before_release)
    assert len(received) == len(set(received)), "the SMTP sink received a message twice"
    assert ledger.counts()["delivered"] == len(run.before_release)


def test_malformed_events_are_dead_lettered_with_reasons(run: Run) -> None:
    malformed = [i for i in run.items if i.label.startswith("malformed")]
    assert malformed, "the small replay must keep the malformed events"
    reasons = run.result.ledger.dead_letter_reasons
    assert sum(reasons.values()) == len(malformed)
    assert {"bad_json", "schema_violation", "oversize"} <= set(reasons)


def test_worker_counts_dead_letters_by_reason_in_its_metrics(run: Run) -> None:
    counted = {}
    for line in run.metrics.splitlines():
        if line.startswith("sentinelle_dead_letters_total{"):
            labels, value = line.rsplit(" ", 1)
            if float(value):
                counted[labels] = float(value)
    reasons = run.result.ledger.dead_letter_reasons
    assert sum(counted.values()) == sum(reasons.values())
    for reason, n in reasons.items():
        assert counted[f'sentinelle_dead_letters_total{{reason="{reason}",stage="ingest"}}'] == n


def test_spoofing_scenarios_are_flagged_by_authentication(run: Run) -> None:
    by_label = {s.label: s for s in run.result.scenarios}
    for label in AUTH_SCENARIOS:
        result = by_label[label]
        assert result.caught and result.caught_at == 1, result
        assert result.reason is not None and result.reason.startswith("auth."), result
        assert result.delivered_before_hold == 0
        (hold,) = [h for h in run.result.ledger.holds.values()
                   if h["account_id"] == result.account_id and h["state"] == "active"]
        # Both spoofers claim a customer's From domain that publishes p=reject: DMARC fails.
        assert "auth.dmarc_fail" in hold["reasons"], hold["reasons"]
        assert hold["evidence"]["authentication"]["dmarc_policy"] == "reject"


def test_compromised_sender_is_held_before_its_tenth_phishing_message(run: Run) -> None:
    result = {s.label: s for s in run.result.scenarios}[COMPROMISED]
    assert result.caught and result.caught_at is not None and 1 <= result.caught_at <= 9, result
    assert result.reason is not None and result.reason.startswith("habit"), result


def test_no_legitimate_sender_is_held(run: Run) -> None:
    scenario_accounts = {i.account_id for i in run.items
                         if i.label not in ("legit",) and not i.label.startswith("malformed")}
    held = {h["account_id"] for h in run.result.ledger.holds.values()}
    assert held <= scenario_accounts, f"legitimate senders held: {held - scenario_accounts}"


def test_nothing_of_a_held_sender_reaches_the_sink_after_its_hold(run: Run) -> None:
    delivered = set(sink_ids(run.before_release))
    order: dict[str, list[str]] = defaultdict(list)
    for item in run.items:
        if item.account_id and item.message_id:
            order[item.account_id].append(item.message_id)
    for hold in run.result.ledger.holds.values():
        sequence = order[hold["account_id"]]
        after = sequence[sequence.index(hold["trigger_message_id"]):]
        leaked = [m for m in after if m in delivered]
        assert leaked == [], f"{hold['account_id']}: held mail delivered: {leaked}"


def test_release_delivers_parked_mail_in_original_order(run: Run) -> None:
    account = run.released["account_id"]
    parked = [i.message_id or "" for i in run.items
              if i.account_id == account and run.result.ledger.outcome.get(i.message_id or "")
              == "parked"]
    assert parked, "the released sender had parked mail"
    new = sink_ids(run.after_release[len(run.before_release):])
    assert [m for m in new if m in parked] == parked
    assert all(run.ledger_after.outcome[m] == "delivered" for m in parked)


def test_reject_purges_parked_mail_with_a_record_each(run: Run) -> None:
    account = run.rejected["account_id"]
    parked = [i.message_id or "" for i in run.items
              if i.account_id == account and run.result.ledger.outcome.get(i.message_id or "")
              == "parked"]
    assert parked
    assert all(run.ledger_after.outcome[m] == "rejected" for m in parked)
    sink = set(sink_ids(run.after_release))
    assert not sink & set(parked)


def test_delivered_mail_is_the_original_message(run: Run) -> None:
    originals = {}
    for item in run.items:
        if item.message_id and not item.malformed:
            raw = base64.b64decode(orjson.loads(item.value)["raw_message_b64"])
            originals[item.message_id] = hashlib.sha256(raw).hexdigest()
    assert run.before_release
    for delivery in run.before_release:
        assert delivery["sha256"] == originals[(delivery["message_id"] or "").strip("<>")]
