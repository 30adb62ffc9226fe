"""The demo's closing summary, as plain text."""

from __future__ import annotations

from typing import Any

from streams.outcomes import Ledger, ScenarioResult


def _evidence_line(evidence: dict[str, Any], kind: str) -> str:
    parts = []
    auth = evidence.get("authentication")
    if kind == "auth" and auth:
        dkim = ", ".join(auth.get("dkim") or []) or "unsigned"
        return (f"SPF {auth.get('spf')} ({auth.get('spf_domain')}); DKIM {dkim}; "
                f"DMARC {auth.get('dmarc')} (policy {auth.get('dmarc_policy')})")
    features = sorted(evidence.get("features", []), key=lambda f: -f.get("contribution", 0))
    for feature in features[:4]:
        observed, expected = feature.get("observed"), feature.get("expected")
        low, high = feature.get("interval_low"), feature.get("interval_high")
        interval = f" [{low:.3g}, {high:.3g}]" if low is not None and high is not None else ""
        parts.append(f"{feature.get('name')}: observed {observed:.3g} vs expected "
                     f"{expected:.3g}{interval}" if isinstance(observed, int | float)
                     and isinstance(expected, int | float) else str(feature.get("name")))
    tokens = evidence.get("top_unusual_tokens") or []
    if tokens:
        parts.append("unusual tokens: " + ", ".join(tokens[:6]))
    domains = evidence.get("new_link_domains") or []
    if domains:
        parts.append("new link domains: " + ", ".join(domains[:4]))
    return "; ".join(parts)


def render_summary(
    ledger: Ledger, scenarios: list[ScenarioResult], produced: int, seconds: float
) -> str:
    counts = ledger.counts()
    lines = [
        "",
        f"Sentinelle demo — {produced} events replayed in {seconds:.0f} s",
        f"  messages in:     {produced}",
        f"  delivered:       {counts['delivered']}",
        f"  held (parked):   {counts['parked']}",
        f"  rejected:        {counts['rejected']}",
        f"  dead-lettered:   {counts['dead-lettered']}"
        + (f"  ({', '.join(f'{r}: {n}' for r, n in sorted(ledger.dead_letter_reasons.items()))})"
           if ledger.dead_letter_reasons else ""),
        f"  unaccounted:     {max(0, produced - ledger.accounted())}",
        f"  delivered twice: {len(ledger.delivered_twice())}",
        "",
        f"Holds ({len(ledger.holds)}):",
    ]
    for hold in sorted(ledger.holds.values(), key=lambda h: h["at"]):
        lines.append(f"  {hold['account_id']}  {hold['state']}  reason={hold['reason']}  "
                     f"({', '.join(hold.get('reasons', [])[:4])})")
        kind = "auth" if str(hold.get("reason", "")).startswith("auth.") else "habit"
        evidence = _evidence_line(hold.get("evidence") or {}, kind)
        if evidence:
            lines.append(f"      evidence: {evidence}")
    lines += ["", "Scenarios:"]
    for result in sorted(scenarios, key=lambda r: r.label):
        if result.caught and result.caught_at:
            verdict = (f"CAUGHT at its message {result.caught_at} of {result.messages} "
                       f"({result.reason}); {result.delivered_before_hold} delivered before hold")
        elif result.caught:
            verdict = f"CAUGHT (sender already held; {result.reason})"
        else:
            verdict = f"MISSED ({result.delivered_before_hold}/{result.messages} delivered)"
        lines.append(f"  {result.label:<24} {result.account_id:<28} {verdict}")
    return "\n".join(lines)
