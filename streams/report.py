"""The demo's closing summary, as plain text an operator can read."""

from __future__ import annotations

from typing import Any

from streams.outcomes import Ledger, ScenarioResult

# Evidence feature -> (what it measures, how its values read)
FEATURES = {
    "rate_1h": ("messages in the last hour", "count"),
    "rate_1d": ("messages in the last day", "count"),
    "new_recipients": ("recipients never mailed before", "share"),
    "new_recipient_domains": ("recipient domains never mailed before", "share"),
    "subject_novelty": ("subject words new for this sender", "share"),
    "body_novelty": ("body words new for this sender", "share"),
    "new_link_domains": ("link domains new for this sender", "share"),
    "from_domain_change": ("From domain not used before", "flag"),
    "dkim_domain_change": ("DKIM signing domain not used before", "flag"),
    "dmarc_lost": ("DMARC no longer passing", "flag"),
    "accumulated_before": ("suspicion carried over from the sender's last hour", "score"),
}


def describe_feature(feature: dict[str, Any]) -> str:
    """One feature of the evidence in words, observed against the sender's usual range.

    >>> describe_feature({"name": "new_recipients", "observed": 1.0, "expected": 0.02,
    ...                   "interval_low": 0.01, "interval_high": 0.03, "contribution": 2.9})
    'recipients never mailed before: 100% (usually 2%, 1%–3%) +2.9'
    >>> describe_feature({"name": "rate_1h", "observed": 4, "expected": 1.8,
    ...                   "interval_low": 1, "interval_high": 4, "contribution": 0.4})
    'messages in the last hour: 4 (usually 1.8, 1–4) +0.4'
    """
    name = str(feature.get("name"))
    label, kind = FEATURES.get(name, (name, "count"))
    observed, expected = feature.get("observed"), feature.get("expected")
    low, high = feature.get("interval_low"), feature.get("interval_high")
    gain = f" +{feature.get('contribution', 0):.1f}"
    if not isinstance(observed, int | float) or not isinstance(expected, int | float):
        return label + gain
    if kind == "share":
        usual = f"usually {expected:.0%}"
        if isinstance(low, int | float) and isinstance(high, int | float):
            usual += f", {low:.0%}–{high:.0%}"
        return f"{label}: {observed:.0%} ({usual}){gain}"
    if kind == "flag":
        return f"{label}{gain}" if observed else label
    if kind == "score":
        return f"{label}: {observed:.1f}{gain}"
    usual = f"usually {expected:.2g}"
    if isinstance(low, int | float) and isinstance(high, int | float):
        usual += f", {low:.3g}–{high:.3g}"
    return f"{label}: {observed:.3g} ({usual}){gain}"


def evidence_lines(evidence: dict[str, Any], reason: str) -> list[str]:
    auth = evidence.get("authentication")
    if reason.startswith("auth.") and auth:
        dkim = ", ".join(auth.get("dkim") or []) or "unsigned"
        return [f"SPF {auth.get('spf')} for {auth.get('spf_domain')}; DKIM {dkim}; "
                f"DMARC {auth.get('dmarc')} (policy {auth.get('dmarc_policy')})"]
    contributing = sorted((f for f in evidence.get("features", [])
                           if f.get("contribution", 0) > 0), key=lambda f: -f["contribution"])
    lines = [describe_feature(f) for f in contributing[:5]]
    if evidence.get("top_unusual_tokens"):
        lines.append("unusual words: " + ", ".join(evidence["top_unusual_tokens"][:8]))
    if evidence.get("new_link_domains"):
        lines.append("new link domains: " + ", ".join(evidence["new_link_domains"][:4]))
    return lines


def render_summary(
    ledger: Ledger, scenarios: list[ScenarioResult], produced: int, seconds: float
) -> str:
    counts = ledger.counts()
    parked_by_account = ledger.parked_by_account()
    parked_attack = sum(s.parked for s in scenarios)
    reasons = ", ".join(f"{r}: {n}" for r, n in sorted(ledger.dead_letter_reasons.items()))
    lines = [
        "",
        f"Sentinelle demo — {produced} events, {seconds:.0f} s from start to last outcome",
        f"  delivered:      {counts['delivered']}",
        f"  held (parked):  {counts['parked']}"
        + (f"  ({parked_attack} attack messages; the rest is later mail of held senders, "
           "waiting for an operator)" if counts["parked"] else ""),
        f"  rejected:       {counts['rejected']}",
        f"  dead-lettered:  {counts['dead-lettered']}" + (f"  ({reasons})" if reasons else ""),
        f"  unaccounted:    {max(0, produced - ledger.accounted())}",
        f"  delivered twice: {len(ledger.delivered_twice())}",
        "",
        f"Holds ({len(ledger.holds)}):",
    ]
    for hold in sorted(ledger.holds.values(), key=lambda h: h["at"]):
        reason = str(hold.get("reasons", [hold.get("reason")])[0] or hold.get("reason"))
        lines.append(f"  {hold['account_id']}: {hold['state']}, {reason}, "
                     f"{parked_by_account.get(hold['account_id'], 0)} messages parked")
        lines += [f"      {line}" for line in evidence_lines(hold.get("evidence") or {}, reason)]
    lines += ["", "Scenarios:"]
    for result in sorted(scenarios, key=lambda r: r.label):
        if result.caught and result.caught_at:
            verdict = (f"CAUGHT at its message {result.caught_at} of {result.messages} "
                       f"({result.reason}); {result.delivered_before_hold} delivered before hold")
        elif result.caught:
            verdict = f"CAUGHT (sender already held; {result.reason})"
        else:
            verdict = f"MISSED ({result.delivered_before_hold}/{result.messages} delivered)"
        lines.append(f"  {result.label:<22} {result.account_id:<18} {verdict}")
    return "\n".join(lines)
