"""Pure bookkeeping of what became of each replayed message, and the demo's summary.

Fed with the records of the delivered, dead-letter, holds and alerts topics (in any order),
it answers: is every input message accounted for exactly once, what is held and why, and after
how many of its messages each labelled scenario was caught.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

FINAL = ("delivered", "parked", "rejected", "dead-lettered")


@dataclass
class Ledger:
    outcome: dict[str, str] = field(default_factory=dict)  # message id -> latest outcome
    account: dict[str, str] = field(default_factory=dict)  # message id -> sender
    history: defaultdict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    anonymous_dead_letters: set[tuple[str, int, int]] = field(default_factory=set)
    dead_letter_reasons: Counter[str] = field(default_factory=Counter)
    holds: dict[str, dict[str, Any]] = field(default_factory=dict)  # hold id -> latest record
    alerts: list[dict[str, Any]] = field(default_factory=list)

    def add_delivery(self, record: dict[str, Any]) -> None:
        self.outcome[record["message_id"]] = record["outcome"]
        self.account[record["message_id"]] = record["account_id"]
        self.history[record["message_id"]].append(record["outcome"])

    def add_dead_letter(self, record: dict[str, Any]) -> None:
        self.dead_letter_reasons[record["reason"]] += 1
        if record.get("message_id"):
            self.outcome[record["message_id"]] = "dead-lettered"
            self.history[record["message_id"]].append("dead-lettered")
        else:
            where = (
                record["source_topic"],
                int(record.get("source_partition", -1)),
                int(record.get("source_offset", -1)),
            )
            self.anonymous_dead_letters.add(where)

    def add_hold(self, record: dict[str, Any]) -> None:
        self.holds[record["hold_id"]] = record

    def add_alert(self, record: dict[str, Any]) -> None:
        self.alerts.append(record)

    def accounted(self) -> int:
        return len(self.outcome) + len(self.anonymous_dead_letters)

    def counts(self) -> Counter[str]:
        counts = Counter(self.outcome.values())
        counts["dead-lettered"] += len(self.anonymous_dead_letters)
        return counts

    def parked_by_account(self) -> Counter[str]:
        return Counter(self.account[m] for m, o in self.outcome.items() if o == "parked")

    def delivered_twice(self) -> list[str]:
        return [m for m, h in self.history.items() if h.count("delivered") > 1]


@dataclass(frozen=True)
class ScenarioResult:
    label: str
    account_id: str
    messages: int
    caught: bool
    caught_at: int | None  # 1-based position of the message that triggered the hold
    delivered_before_hold: int
    parked: int
    reason: str | None


def scenario_results(
    ledger: Ledger, labelled: list[tuple[str, str, str]]
) -> list[ScenarioResult]:
    """Per scenario label (not 'legit'/'malformed-*'): was its sender held, after how many?

    ``labelled`` is (label, account id, message id) for every replayed message, in replay order.
    """
    by_label: defaultdict[str, list[tuple[str, str]]] = defaultdict(list)
    for label, account_id, message_id in labelled:
        if label != "legit" and not label.startswith("malformed"):
            by_label[label].append((account_id, message_id))
    holds_by_trigger = {h.get("trigger_message_id"): h for h in ledger.holds.values()}
    results = []
    for label, members in by_label.items():
        account_id = members[0][0]
        caught_at = reason = None
        for position, (_, message_id) in enumerate(members, start=1):
            if message_id in holds_by_trigger:
                caught_at, reason = position, holds_by_trigger[message_id].get("reason")
                break
        if caught_at is None:  # held earlier, by a message outside the scenario
            for hold in ledger.holds.values():
                if hold["account_id"] == account_id:
                    caught_at, reason = 0, hold.get("reason")
        delivered = sum(1 for _, m in members if ledger.outcome.get(m) == "delivered")
        parked = sum(1 for _, m in members if ledger.outcome.get(m) == "parked")
        results.append(
            ScenarioResult(label, account_id, len(members), caught_at is not None, caught_at,
                           delivered, parked, reason)
        )
    return results
