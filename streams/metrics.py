"""Every Prometheus metric, created against an injected registry and bound once.

Labels are closed sets (stage, reason, result, action); per-sender detail belongs in alert and
hold events, never in metric labels. Children are bound at start-up because ``.labels()`` per
event costs ~5 µs against ~1 µs for a bound child (measured on our 2-core machines).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

STAGES = ("ingest", "authenticate", "score", "deliver", "hold")
DEAD_LETTER_REASONS = (
    "bad_json",
    "schema_violation",
    "oversize",
    "undecodable_message",
    "processing_error",
    "mta_refused",
    "mta_tempfail",
)
ACTIONS = ("deliver", "park")
OUTCOMES = ("delivered", "parked", "rejected")


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        events_in = Counter("sentinelle_events_in_total", "Events consumed", ["stage"], registry=r)
        events_out = Counter(
            "sentinelle_events_out_total", "Events produced", ["stage"], registry=r
        )
        dead = Counter(
            "sentinelle_dead_letters_total", "Events dead-lettered", ["stage", "reason"], registry=r
        )
        verdicts = Counter(
            "sentinelle_verdicts_total", "Verdicts by action", ["action"], registry=r
        )
        outcomes = Counter(
            "sentinelle_delivery_outcomes_total", "Delivery outcomes", ["outcome"], registry=r
        )
        holds = Counter("sentinelle_holds_total", "Holds placed", ["kind"], registry=r)
        self.events_in = {s: events_in.labels(s) for s in STAGES}
        self.events_out = {s: events_out.labels(s) for s in STAGES}
        self.dead_letters = {
            (s, reason): dead.labels(s, reason) for s in STAGES for reason in DEAD_LETTER_REASONS
        }
        self.verdicts = {a: verdicts.labels(a) for a in ACTIONS}
        self.outcomes = {o: outcomes.labels(o) for o in OUTCOMES}
        self.holds = {k: holds.labels(k) for k in ("habit", "auth")}
        self.active_holds = Gauge(
            "sentinelle_active_holds", "Senders currently held (this worker)", registry=r
        )
        self.parked = Gauge(
            "sentinelle_parked_messages", "Messages parked under holds (this worker)", registry=r
        )
        self.smtp_seconds = Histogram(
            "sentinelle_smtp_handoff_seconds", "Time to hand one message to the MTA", registry=r
        )
