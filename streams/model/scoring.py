"""Scoring side of the habit model: every signal in nats, added up into one score.

* **Rate** — for the 1 h and 1 d windows ending at the message (this message included), the
  negative-binomial posterior predictive of the sender's bucket count: Gamma posterior of the
  rate (prior + decayed counts) and the sender's own over-dispersion (decayed count moments,
  shrunk to a prior). Signal: ``-ln P(N >= n)`` of the most surprising window, minus ``ln 2``
  for looking at two windows. It grows with every message of a burst.
* **Novelty** (recipients, recipient domains, subject and body tokens, link domains) — per
  channel a Beta–Bernoulli posterior of how often this sender's items are new. A message's
  channel signal is the log-likelihood ratio of its new/known items between "a compromised
  sender" (items new with probability ``attack_novelty``) and this sender's own novelty rate;
  so cold senders (everything new) are not surprising and a warmed sender mailing strangers is.
  Items first seen in the still-pending traffic count as ``repeat_discount`` of a new one.
* **Accumulation** — the novelty signals of successive messages add up in a decayed CUSUM
  (half-life ``evidence_halflife_s``, never below 0), so a burst's 3rd–8th message crosses the
  hold threshold even when each alone is borderline; familiar mail pulls it back to 0.
* **Posture** — a new From or DKIM ``d=`` domain, or lost DMARC pass, against the sender's
  history of them: added to the score (not accumulated), at most ``posture_cap`` each.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from streams.model.evidence import FeatureEvidence
from streams.model.profile import DAY, HOUR, View
from streams.model.state import PENDING_FIELDS, SenderState
from streams.model.stats import beta_interval, nb_interval, nb_log_tail

__all__ = ["ACCUMULATED", "POSTURE", "Params", "Scored", "score_view"]

ACCUMULATED = ("rcpt", "rdom", "subj", "body", "link")
POSTURE = ("from", "dkim")
_FEATURE_NAMES = {
    "rcpt": "new_recipients",
    "rdom": "new_recipient_domains",
    "subj": "subject_novelty",
    "body": "body_novelty",
    "link": "new_link_domains",
    "from": "from_domain_change",
    "dkim": "dkim_domain_change",
}


@dataclass(frozen=True)
class Params:
    """Hyper-parameters the scoring needs (built by ``SenderHabits``)."""

    weights: dict[str, float]  # per channel; 0 disables it
    caps: dict[str, float]  # per channel, |signal| per message
    items: dict[str, int]  # items per message counted at full weight
    prior_new: dict[str, tuple[float, float]]  # Beta prior (new, known) per channel
    attack_novelty: dict[str, float]
    repeat_discount: float
    min_count: float
    evidence_halflife_s: float
    rate_weight: float
    rate_prior: dict[str, tuple[float, float, float, float]]  # mean, weight, phi, phi weight
    posture_cap: float
    familiar_floor: float  # how far familiar mail can pull the accumulated evidence below 0


@dataclass(frozen=True)
class Scored:
    score: float
    message_signal: float  # this message's accumulable novelty signal
    accumulated: float  # evidence after this message (what the window stores)
    features: list[FeatureEvidence]
    unusual: dict[str, list[str]]  # channel -> names of new items


def _window_counts(state: SenderState, ts: int, include_self: bool) -> dict[str, int]:
    own = 1 if include_self else 0
    in_hour = sum(1 for t in state.recent_ts if ts - HOUR < t <= ts)
    hour_now = ts // HOUR
    by_hour = {h: c for h, c in state.recent_hours}
    approx_hour = by_hour.get(hour_now, 0) + by_hour.get(hour_now - 1, 0) * (
        1.0 - (ts % HOUR) / HOUR
    )
    start = ts - DAY
    in_day = 0.0
    for hour, count in state.recent_hours:
        if hour * HOUR > start and hour <= hour_now:
            in_day += count
        elif hour == start // HOUR:
            in_day += count * (1.0 - (start % HOUR) / HOUR)
    n_hour = max(in_hour, int(approx_hour)) + own
    return {"h": n_hour, "d": max(round(in_day) + own, n_hour)}


def _predictive(state: SenderState, width: str, p: Params) -> tuple[float, float]:
    """Posterior predictive (mean, size) of ``count - 1`` in a bucket where the sender is active.

    Gamma posterior of the extra-message rate (prior + decayed active-bucket counts) and the
    sender's own over-dispersion (decayed moments, shrunk to the prior's) — a hurdle
    Gamma–Poisson: *whether* a quiet sender sends in an hour is not evidence, *how much* is.
    """
    mean0, weight0, phi0, phi_weight = p.rate_prior[width]
    _cursor, _open, _w0, a0, a1, a2 = state.rate[width]
    alpha, beta = mean0 * weight0 + a1, weight0 + a0
    phi = phi0
    if a0 > 0 and a1 > 0:
        m = a1 / a0
        phi_hat = max(a2 / a0 - m * m - m, 0.0) / (m * m)
        phi = (a1 * phi_hat + phi_weight * phi0) / (a1 + phi_weight)
    phi = min(max(phi, 1e-3), 1e3)
    return alpha / beta, 1.0 / (phi + 1.0 / alpha)


def _rate(state: SenderState, view: View, p: Params, include_self: bool) -> list[FeatureEvidence]:
    counts = _window_counts(state, view.ts, include_self)
    out = []
    for width, label in (("h", "rate_1h"), ("d", "rate_1d")):
        mean, size = _predictive(state, width, p)
        # Given that the sender is sending now, how unusual is this many in the window?
        surprise = -nb_log_tail(counts[width] - 1, mean=mean, size=size)
        low, high = nb_interval(mean, size)
        out.append(FeatureEvidence(label, counts[width], round(1 + mean, 4), 1 + low, 1 + high,
                                   surprise))
    worst = max(f.contribution for f in out)
    signal = p.rate_weight * max(0.0, worst - math.log(2.0))
    # Attribute the rate signal to the most surprising window only.
    return [
        FeatureEvidence(
            f.name, f.observed, f.expected, f.interval_low, f.interval_high,
            round(signal, 4) if f.contribution == worst else 0.0,
        )
        for f in out
    ]


def _pending_keys(state: SenderState) -> dict[str, set[str]]:
    keys: dict[str, set[str]] = {c: set() for c in PENDING_FIELDS}
    for entry in state.pending:
        for i, channel in enumerate(PENDING_FIELDS):
            keys[channel].update(entry[2 + i])
    return keys


def _novelty(
    state: SenderState, view: View, channel: str, pending: set[str], p: Params
) -> tuple[FeatureEvidence, float, list[str]]:
    a0, b0 = p.prior_new[channel]
    new_count, known_count = state.novelty.get(channel, (0.0, 0.0))
    a, b = a0 + new_count, b0 + known_count
    q = a / (a + b)
    q_att = p.attack_novelty[channel]
    llr_new, llr_known = math.log(q_att / q), math.log((1.0 - q_att) / (1.0 - q))
    table = state.tables.get(channel, {})
    llrs, unusual, novel = [], [], 0.0
    for key, name in zip(view.keys[channel], view.names[channel], strict=True):
        if table.get(key, 0.0) >= p.min_count:
            llrs.append(llr_known)
        elif key in pending:
            llrs.append(p.repeat_discount * llr_new + (1 - p.repeat_discount) * llr_known)
            novel += p.repeat_discount
            unusual.append(name)
        else:
            llrs.append(llr_new)
            novel += 1.0
            unusual.append(name)
    signal = 0.0
    if llrs:
        signal = sum(llrs) / len(llrs) * min(len(llrs), p.items[channel]) * p.weights[channel]
        signal = max(-p.caps[channel], min(p.caps[channel], signal))
    observed = novel / len(llrs) if llrs else 0.0
    low, high = beta_interval(a, b)
    feature = FeatureEvidence(_FEATURE_NAMES[channel], round(observed, 4), round(q, 4),
                              round(low, 4), round(high, 4), round(signal, 4))
    return feature, signal, unusual


def _dmarc(state: SenderState, view: View, p: Params) -> FeatureEvidence:
    passed, failed = state.dmarc
    p_pass = (passed + 0.5) / (passed + failed + 1.0)
    signal = 0.0
    if not view.dmarc_pass and p.weights.get("dmarc", 0.0) > 0:
        signal = min(p.posture_cap, max(0.0, math.log(0.5 / (1.0 - p_pass)))) * p.weights["dmarc"]
    return FeatureEvidence("dmarc_lost", 0.0 if view.dmarc_pass else 1.0, round(1 - p_pass, 4),
                           0.0, 1.0, round(signal, 4))


def score_view(
    state: SenderState, view: View, p: Params, *, include_self: bool = True
) -> Scored:
    """Score ``view`` against ``state`` (pure: ``state`` is not modified)."""
    features: list[FeatureEvidence] = []
    if p.rate_weight > 0:
        features.extend(_rate(state, view, p, include_self))
    pending = _pending_keys(state)
    message_signal, unusual = 0.0, {}
    for channel in ACCUMULATED + POSTURE:
        if p.weights.get(channel, 0.0) <= 0:
            continue
        feature, signal, names = _novelty(state, view, channel, pending[channel], p)
        unusual[channel] = names
        if channel in POSTURE:
            signal = min(max(signal, 0.0), p.posture_cap)
            feature = FeatureEvidence(feature.name, feature.observed, feature.expected,
                                      feature.interval_low, feature.interval_high, round(signal, 4))
        else:
            message_signal += signal
        features.append(feature)
    features.append(_dmarc(state, view, p))
    value, at = state.evidence
    carried = value * 0.5 ** (max(0.0, view.ts - at) / p.evidence_halflife_s)
    if not include_self:  # a redelivered message: its signal is already in the window
        accumulated = carried
        message_signal = 0.0
    else:
        accumulated = max(-p.familiar_floor, carried + message_signal)
    features.append(FeatureEvidence("accumulated_before", round(carried, 4), 0.0, 0.0, 0.0,
                                    round(accumulated - message_signal, 4)))
    # Contributions are rounded; the score is their sum so the evidence adds up exactly.
    score = round(sum(round(f.contribution, 4) for f in features), 4)
    return Scored(score, message_signal, accumulated, features, unusual)
