"""Per-sender state: compact sufficient statistics, JSON-safe, bounded to ≤ 10 KiB serialised.

Three parts, kept apart because they change for different reasons:

* the **learned profile** — decayed bucket-count moments of the rate model (1 h and 1 d
  buckets), bounded top-k count tables of hashed recipients, recipient domains, subject and body
  tokens, link domains, From and DKIM domains, and Beta counts of how often each was new;
* the **pending queue** — compact hashed copies of delivered messages waiting for the learning
  delay, plus their hourly counts; dropped whole by ``forget_pending`` when the sender is held;
* the **observed window** — recent timestamps, hourly counts, the accumulated evidence and the
  message-id ring that makes learning idempotent under redelivery.

Every stored number is rounded when it is written (:func:`rnd`), so ``from_dict(to_dict())``
restores exactly the numbers the model was using and scores stay identical.

>>> s = SenderState()
>>> SenderState.from_dict(s.to_dict()) == s
True
>>> s.size_bytes() < 1024
True
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, fields
from typing import Any

__all__ = [
    "CHANNELS",
    "PENDING_FIELDS",
    "SCHEMA_VERSION",
    "SenderState",
    "hash_key",
    "rnd",
    "table_add",
]

SCHEMA_VERSION = 1
MAX_STATE_BYTES = 10 * 1024

# Novelty channels: name -> (table capacity, items kept per message).
CHANNELS: dict[str, tuple[int, int]] = {
    "rcpt": (80, 4),  # recipient addresses
    "rdom": (16, 2),  # recipient domains
    "subj": (48, 6),  # subject tokens
    "body": (40, 5),  # body tokens
    "link": (20, 3),  # link domains
    "from": (4, 1),  # From header domain
    "dkim": (4, 2),  # passing DKIM d= domains
}
# Order of the per-channel key lists inside a pending entry (after ts and message-id key).
PENDING_FIELDS: tuple[str, ...] = tuple(CHANNELS)
PENDING_CAPACITY = 12  # messages waiting with their content; older ones keep only their count
RECENT_TS = 32  # most recent observed timestamps (for exact sub-hour window counts)
RECENT_HOURS = 26  # hourly observed counts (for the 1 d window)
SEEN_IDS = 40  # message-id keys remembered beyond the pending queue


def rnd(value: float, digits: int = 3) -> float:
    """Round a stored statistic (keeps the JSON short and the round trip exact)."""
    return round(float(value), digits)


def hash_key(text: str, seed: int, nbytes: int = 3) -> str:
    """Seeded, stable short hex key of ``text`` (tables store keys, never raw addresses/words).

    >>> hash_key("bob@client.example", 0) == hash_key("bob@client.example", 0)
    True
    >>> hash_key("bob@client.example", 0) != hash_key("bob@client.example", 1)
    True
    """
    digest = hashlib.blake2b(
        text.encode("utf-8", errors="replace"),
        digest_size=nbytes,
        key=seed.to_bytes(8, "little", signed=True),
    )
    return digest.hexdigest()


def table_add(table: dict[str, float], key: str, capacity: int, amount: float = 1.0) -> None:
    """Add to a bounded count table; beyond ``capacity`` drop the smallest counts (ties: key)."""
    table[key] = rnd(table.get(key, 0.0) + amount)
    if len(table) > capacity:  # space-saving style: the newcomer evicts the weakest others
        others = sorted((kv for kv in table.items() if kv[0] != key), key=lambda kv: (kv[1], kv[0]))
        for k, _ in others[: len(table) - capacity]:
            del table[k]


def _default_rate() -> dict[str, list[float]]:
    # [open bucket index, open bucket count, W0, A0, A1, A2] per bucket width (see profile)
    return {"h": [-1, 0.0, 0.0, 0.0, 0.0, 0.0], "d": [-1, 0.0, 0.0, 0.0, 0.0, 0.0]}


@dataclass
class SenderState:
    """Compact sufficient statistics of one sender (see module docstring)."""

    seed: int = 0
    version: int = SCHEMA_VERSION
    # --- learned profile
    learned: float = 0.0  # decayed number of learned messages
    rate: dict[str, list[float]] = field(default_factory=_default_rate)
    tables: dict[str, dict[str, float]] = field(default_factory=dict)
    novelty: dict[str, list[float]] = field(default_factory=dict)  # channel -> [new, known]
    dmarc: list[float] = field(default_factory=lambda: [0.0, 0.0])  # [pass, fail]
    # --- pending (not yet learned)
    pending: list[list[Any]] = field(default_factory=list)
    pending_hours: list[list[int]] = field(default_factory=list)  # [[hour index, count]]
    # --- observed window
    clock: int = 0  # latest event time seen (unix seconds)
    recent_ts: list[int] = field(default_factory=list)
    recent_hours: list[list[int]] = field(default_factory=list)
    evidence: list[float] = field(default_factory=lambda: [0.0, 0.0])  # [value, at time]
    seen: list[str] = field(default_factory=list)
    held: bool = False  # forget_pending was called and nothing learned since

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (plain lists, dicts, numbers and strings)."""
        return json.loads(json.dumps({f.name: getattr(self, f.name) for f in fields(self)}))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SenderState:
        """Inverse of :meth:`to_dict`; unknown keys are ignored, missing ones get defaults."""
        names = {f.name for f in fields(cls)}
        loaded = json.loads(json.dumps({k: v for k, v in data.items() if k in names}))
        state = cls(**loaded)
        if state.version != SCHEMA_VERSION:
            raise ValueError(f"unsupported SenderState version {state.version}")
        return state

    def copy(self) -> SenderState:
        """An independent copy (cheaper than ``copy.deepcopy``)."""
        return SenderState(
            seed=self.seed,
            version=self.version,
            learned=self.learned,
            rate={k: list(v) for k, v in self.rate.items()},
            tables={k: dict(v) for k, v in self.tables.items()},
            novelty={k: list(v) for k, v in self.novelty.items()},
            dmarc=list(self.dmarc),
            pending=[list(e) for e in self.pending],
            pending_hours=[list(h) for h in self.pending_hours],
            clock=self.clock,
            recent_ts=list(self.recent_ts),
            recent_hours=[list(h) for h in self.recent_hours],
            evidence=list(self.evidence),
            seen=list(self.seen),
            held=self.held,
        )

    def size_bytes(self) -> int:
        """Size of the compact JSON encoding (what a table write sends to the changelog)."""
        return len(json.dumps(self.to_dict(), separators=(",", ":")).encode())
