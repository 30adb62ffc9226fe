"""Accounting of outcomes and the scenario summary."""

from __future__ import annotations

from streams.outcomes import Ledger, scenario_results
from streams.report import render_summary


def delivery(message_id: str, outcome: str) -> dict[str, str]:
    return {"message_id": message_id, "account_id": "a", "outcome": outcome}


def test_every_event_counts_once_and_duplicates_are_visible() -> None:
    ledger = Ledger()
    ledger.add_delivery(delivery("m1", "delivered"))
    ledger.add_delivery(delivery("m2", "parked"))
    ledger.add_delivery(delivery("m2", "delivered"))  # released later
    ledger.add_delivery(delivery("m3", "delivered"))
    ledger.add_delivery(delivery("m3", "delivered"))  # a bug the summary must show
    ledger.add_dead_letter({"reason": "bad_json", "source_topic": "t", "source_partition": 0,
                            "source_offset": 4})
    ledger.add_dead_letter({"reason": "bad_json", "source_topic": "t", "source_partition": 0,
                            "source_offset": 4})  # the same record read twice
    assert ledger.accounted() == 4
    assert ledger.counts() == {"delivered": 3, "dead-lettered": 1}
    assert ledger.delivered_twice() == ["m3"]


def test_scenario_is_caught_at_the_position_of_its_trigger() -> None:
    ledger = Ledger()
    labelled = [("legit", "acct-x", "l1")] + [("compromised", "acct-x", f"c{n}")
                                             for n in range(1, 6)]
    ledger.add_delivery(delivery("c1", "delivered"))
    ledger.add_delivery(delivery("c2", "delivered"))
    for n in range(3, 6):
        ledger.add_delivery(delivery(f"c{n}", "parked"))
    ledger.add_hold({"hold_id": "h", "account_id": "acct-x", "trigger_message_id": "c3",
                     "reason": "habit.new_recipients", "state": "active", "at": "t"})
    (result,) = scenario_results(ledger, labelled)
    assert (result.caught, result.caught_at, result.delivered_before_hold) == (True, 3, 2)
    text = render_summary(ledger, [result], 6, 1.0)
    assert "CAUGHT at its message 3 of 5" in text and "2 delivered before hold" in text


def test_missed_scenario_is_reported_as_missed() -> None:
    ledger = Ledger()
    ledger.add_delivery(delivery("c1", "delivered"))
    (result,) = scenario_results(ledger, [("compromised", "acct-x", "c1")])
    assert not result.caught
    assert "MISSED (1/1 delivered)" in render_summary(ledger, [result], 1, 1.0)
