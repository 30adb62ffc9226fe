"""Per-sender habit model: is this sender acting unlike itself? (River anomaly-detector API.)

When a customer's account is compromised SPF, DKIM and DMARC still pass; what gives it away is
the sender's behaviour: a burst, strangers as recipients, unfamiliar words and links, a changed
signing posture. :class:`SenderHabits` scores each message against the sender's own learned
habits (see ``streams.model.scoring`` for the signals, all in nats) and decides
deliver / alert / hold. Learning is *delayed*: a delivered message enters the learned profile
only once it is ``learn_delay_s`` old in event time, and never if the sender was held meanwhile,
so a burst cannot teach the model that bursts are normal.

>>> from streams.model.features import MessageFeatures
>>> def msg(i, t, to, subject="weekly report"):
...     return MessageFeatures(f"m{i}", t, tuple(to), tuple(subject.split()), (), (),
...                            "shop.example", (), False).as_dict()
>>> model = SenderHabits()
>>> t = 1_700_000_000.0
>>> for i in range(60):   # two months of a quiet sender writing to two colleagues
...     a = model.observe(msg(i, t + i * 86400, ["ann@shop.example", "bob@shop.example"]))
>>> a.action
'deliver'
>>> t += 60 * 86400
>>> actions = [model.observe(msg(100 + i, t + 20 * i, [f"victim{i}@far.example"],
...                              "verify your account")).action for i in range(10)]
>>> actions.index("hold") < 9
True
>>> model.observe(msg(100, t, ["victim0@far.example"])).action   # redelivery: not counted twice
'hold'
"""

from __future__ import annotations

import math
from typing import Any

from river import base

from streams.model import profile
from streams.model.evidence import Action, Assessment, Evidence
from streams.model.profile import View
from streams.model.scoring import Params, Scored, score_view
from streams.model.state import SenderState

__all__ = ["Assessment", "Evidence", "SenderHabits"]


class SenderHabits(base.AnomalyDetector):
    """Online habit model of one sender.

    Parameters
    ----------
    state
        Sufficient statistics to continue from (``SenderState.from_dict``); a new state if None.
    alert_threshold, hold_threshold
        Score (nats of evidence) from which ``observe`` alerts, respectively holds.
    learn_delay_s
        Event-time age at which a delivered message enters the learned profile.
    evidence_halflife_s
        Half-life of the accumulated per-message novelty evidence.
    rate_weight, recipient_weight, recipient_domain_weight, subject_weight, body_weight,
    link_weight, posture_weight
        Weights of the signals; 0 switches one off (ablations).
    attack_novelty
        Probability that a compromised sender's recipient (or recipient domain) is new.
    repeat_discount
        Weight, as new, of an item first seen in still-pending traffic.
    familiar_floor
        How far (nats) familiar mail may pull the accumulated evidence below 0, offsetting an
        unusual rate of mail to known recipients.
    memory_messages
        Learned tables and novelty counts forget with a factor ``1 - 1/memory_messages`` per
        learned message.
    rate_memory_days
        Time constant of the rate model's exponential forgetting.
    seed
        Salt of the hashed keys (a state is only valid with the seed it was built with).
    """

    def __init__(
        self,
        state: SenderState | None = None,
        *,
        alert_threshold: float = 4.0,
        hold_threshold: float = 8.0,
        learn_delay_s: float = 24 * 3600.0,
        evidence_halflife_s: float = 3600.0,
        rate_weight: float = 0.5,
        recipient_weight: float = 1.0,
        recipient_domain_weight: float = 1.0,
        subject_weight: float = 0.5,
        body_weight: float = 0.5,
        link_weight: float = 1.0,
        posture_weight: float = 1.0,
        attack_novelty: float = 0.9,
        repeat_discount: float = 0.8,
        familiar_floor: float = 6.0,
        memory_messages: float = 200.0,
        rate_memory_days: float = 90.0,
        seed: int = 0,
    ) -> None:
        if state is not None and state.seed != seed:
            raise ValueError(f"state was built with seed={state.seed}, not seed={seed}")
        if not 0 < alert_threshold <= hold_threshold:
            raise ValueError("need 0 < alert_threshold <= hold_threshold")
        self._state = state if state is not None else SenderState(seed=seed)
        self.alert_threshold = alert_threshold
        self.hold_threshold = hold_threshold
        self.learn_delay_s = learn_delay_s
        self.evidence_halflife_s = evidence_halflife_s
        self.rate_weight = rate_weight
        self.recipient_weight = recipient_weight
        self.recipient_domain_weight = recipient_domain_weight
        self.subject_weight = subject_weight
        self.body_weight = body_weight
        self.link_weight = link_weight
        self.posture_weight = posture_weight
        self.attack_novelty = attack_novelty
        self.repeat_discount = repeat_discount
        self.familiar_floor = familiar_floor
        self.memory_messages = memory_messages
        self.rate_memory_days = rate_memory_days
        self.seed = seed
        content_novelty = 0.8
        self._params = Params(
            weights={
                "rcpt": recipient_weight, "rdom": recipient_domain_weight,
                "subj": subject_weight, "body": body_weight, "link": link_weight,
                "from": posture_weight, "dkim": posture_weight, "dmarc": posture_weight,
            },
            caps={"rcpt": 3.0, "rdom": 3.0, "subj": 1.5, "body": 1.5, "link": 2.0,
                  "from": 4.0, "dkim": 4.0},
            items={"rcpt": 2, "rdom": 1, "subj": 3, "body": 3, "link": 2, "from": 1, "dkim": 1},
            prior_new={"rcpt": (4.0, 1.0), "rdom": (4.0, 1.0), "subj": (4.0, 1.0),
                       "body": (4.0, 1.0), "link": (4.0, 1.0), "from": (2.0, 1.0),
                       "dkim": (2.0, 1.0)},
            attack_novelty={"rcpt": attack_novelty, "rdom": attack_novelty,
                            "subj": content_novelty, "body": content_novelty,
                            "link": content_novelty, "from": 0.5, "dkim": 0.5},
            repeat_discount=repeat_discount,
            min_count=0.3,
            evidence_halflife_s=evidence_halflife_s,
            rate_weight=rate_weight,
            # (prior mean per bucket, prior weight in buckets, over-dispersion, its weight)
            # extra messages per active bucket: (prior mean, weight, over-dispersion, weight)
            rate_prior={"h": (0.5, 3.0, 1.0, 5.0), "d": (2.0, 3.0, 1.0, 5.0)},
            posture_cap=4.0,
            familiar_floor=familiar_floor,
        )

    # ------------------------------------------------------------------ River API
    @property
    def state(self) -> SenderState:
        """The sender's sufficient statistics (write ``state.to_dict()`` back to the table)."""
        return self._state

    def learn_one(self, x: dict[base.typing.FeatureName, Any]) -> None:
        """Queue ``x`` for delayed learning (idempotent per ``message_id``; not while held)."""
        self._advance(x)
        view = profile.make_view(x, self._state.seed)
        if self._is_duplicate(view):
            return
        scored = score_view(self._state, view, self._params)
        self._record(view, scored, hold=False)

    def score_one(self, x: dict[base.typing.FeatureName, Any]) -> float:
        """Anomaly score of ``x`` for this sender (nats; compare with the thresholds)."""
        return self._evaluate(x)[2].score

    def explain_one(self, x: dict[base.typing.FeatureName, Any]) -> Evidence:
        """Structured evidence behind ``score_one(x)``."""
        return self._evidence(self._evaluate(x)[2])

    def observe(self, x: dict[base.typing.FeatureName, Any]) -> Assessment:
        """Score ``x``, decide, and put it in the observed window (learning stays delayed).

        A hold drops the pending traffic (as :meth:`forget_pending`); a redelivered message is
        re-assessed without being counted again.
        """
        self._advance(x)
        view = profile.make_view(x, self._state.seed)
        duplicate = self._is_duplicate(view)
        scored = score_view(self._state, view, self._params, include_self=not duplicate)
        action = self._decide(scored.score)
        if not duplicate:
            self._record(view, scored, hold=action == "hold")
        return Assessment(scored.score, action, self._evidence(scored))

    def forget_pending(self) -> None:
        """The sender is held: drop not-yet-learned traffic and learn nothing until release."""
        profile.forget_pending(self._state)

    def release(self) -> None:
        """The hold was lifted: later delivered messages are queued for learning again."""
        self._state.held = False

    # ------------------------------------------------------------------ internals
    def _advance_args(self) -> dict[str, float]:
        return {
            "delay": self.learn_delay_s,
            "gamma": 1.0 - 1.0 / self.memory_messages,
            "rho_hour": math.exp(-1.0 / (24.0 * self.rate_memory_days)),
            "rho_day": math.exp(-1.0 / self.rate_memory_days),
            "min_count": self._params.min_count,
        }

    def _advance(
        self, x: dict[base.typing.FeatureName, Any], state: SenderState | None = None
    ) -> None:
        target = state if state is not None else self._state
        profile.advance(target, profile.event_time(x), **self._advance_args())

    def _evaluate(self, x: dict[base.typing.FeatureName, Any]) -> tuple[SenderState, View, Scored]:
        view = profile.make_view(x, self._state.seed)
        state = self._state
        if view.ts > state.clock:  # the clock would move: learn on a copy, keep score_one pure
            state = state.copy()
            self._advance(x, state)
        duplicate = self._is_duplicate(view, state)
        return state, view, score_view(state, view, self._params, include_self=not duplicate)

    def _is_duplicate(self, view: View, state: SenderState | None = None) -> bool:
        state = state if state is not None else self._state
        return view.mid in state.seen or any(e[1] == view.mid for e in state.pending)

    def _record(self, view: View, scored: Scored, *, hold: bool) -> None:
        profile.record_observed(self._state, view, scored.accumulated)
        if hold:
            profile.forget_pending(self._state)
        elif not self._state.held:
            profile.enqueue(self._state, view)

    def _decide(self, score: float) -> Action:
        if score >= self.hold_threshold:
            return "hold"
        return "alert" if score >= self.alert_threshold else "deliver"

    @staticmethod
    def _evidence(scored: Scored) -> Evidence:
        unusual = scored.unusual
        return Evidence(
            features=scored.features,
            top_unusual_tokens=(unusual.get("subj", []) + unusual.get("body", []))[:10],
            new_link_domains=list(unusual.get("link", [])),
            new_recipient_domains=list(unusual.get("rdom", [])),
        )
