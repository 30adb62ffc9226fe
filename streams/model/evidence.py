"""Structured evidence for one scored message (what alert and hold events carry).

Each :class:`FeatureEvidence` names a feature, what was observed, what this sender's learned
profile expected (with a 90 % interval) and the feature's additive contribution to the score, so
the contributions of an :class:`Evidence` sum to the score of its :class:`Assessment`.

>>> ev = Evidence(features=[FeatureEvidence("rate_1h", 12.0, 0.2, 0.0, 1.0, 6.5)],
...               top_unusual_tokens=["verify"], new_link_domains=[],
...               new_recipient_domains=["evil.example"])
>>> a = Assessment(score=6.5, action="alert", evidence=ev)
>>> a.to_dict()["evidence"]["features"][0]["name"], a.evidence.total()
('rate_1h', 6.5)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

__all__ = ["Action", "Assessment", "Evidence", "FeatureEvidence"]

Action = Literal["deliver", "alert", "hold"]


@dataclass(frozen=True)
class FeatureEvidence:
    """One feature's observation against this sender's habit."""

    name: str
    observed: float
    expected: float
    interval_low: float
    interval_high: float
    contribution: float  # additive share of the score (nats)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Evidence:
    """Why a message scored as it did."""

    features: list[FeatureEvidence]
    top_unusual_tokens: list[str]
    new_link_domains: list[str]
    new_recipient_domains: list[str]

    def total(self) -> float:
        """Sum of the feature contributions (equals the score)."""
        return round(sum(f.contribution for f in self.features), 6)

    def to_dict(self) -> dict[str, Any]:
        return {
            "features": [f.to_dict() for f in self.features],
            "top_unusual_tokens": list(self.top_unusual_tokens),
            "new_link_domains": list(self.new_link_domains),
            "new_recipient_domains": list(self.new_recipient_domains),
        }


@dataclass(frozen=True)
class Assessment:
    """Score, decision and evidence for one message."""

    score: float
    action: Action
    evidence: Evidence

    def to_dict(self) -> dict[str, Any]:
        return {"score": self.score, "action": self.action, "evidence": self.evidence.to_dict()}
