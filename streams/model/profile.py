"""Learning side of the habit model: message views, the pending queue and delayed promotion.

A message is reduced to a :class:`View`: per channel a *consistent sample* of hashed keys (the
``k`` smallest hashes, so a given recipient or word is either always sampled or never, and the
learned tables agree with what scoring looks at). Views wait in the pending queue until they are
``delay`` seconds old in event time, then :func:`advance` folds them into the learned profile:
Beta counts of "item was new" per channel, decayed top-k count tables, and decayed moments of
hourly and daily message counts (the Gamma–Poisson rate posterior and its over-dispersion).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from streams.model.state import (
    CHANNELS,
    PENDING_CAPACITY,
    PENDING_FIELDS,
    RECENT_HOURS,
    RECENT_TS,
    SEEN_IDS,
    SenderState,
    hash_key,
    rnd,
    table_add,
)

__all__ = [
    "View",
    "advance",
    "enqueue",
    "event_time",
    "forget_pending",
    "make_view",
    "record_observed",
]

HOUR, DAY = 3600, 86400
NONE_TOKEN = "-"  # stands for "no From domain" / "no passing DKIM signature"


@dataclass(frozen=True)
class View:
    """Hashed, bounded view of one message (what the model stores and compares)."""

    ts: int
    mid: str
    keys: dict[str, tuple[str, ...]]
    names: dict[str, tuple[str, ...]]
    dmarc_pass: bool


def _seq(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, Iterable):
        return tuple(str(v) for v in value if v is not None)
    return ()


def _sample(items: Iterable[str], k: int, seed: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
    keyed = sorted({hash_key(item, seed): item for item in items if item}.items())[:k]
    return tuple(key for key, _ in keyed), tuple(name for _, name in keyed)


def event_time(x: Mapping[Any, Any]) -> int:
    """Event time of ``x`` in whole unix seconds (0 if missing or not a number)."""
    try:
        return math.floor(float(x.get("timestamp", 0.0) or 0.0))
    except (TypeError, ValueError, OverflowError):
        return 0


def make_view(x: Mapping[Any, Any], seed: int) -> View:
    """Build the view of a River-style ``x`` (see ``MessageFeatures.as_dict``); never mutates x."""
    ts = event_time(x)
    recipients = [r.lower() for r in _seq(x.get("recipients"))]
    domains = [r.rsplit("@", 1)[1] for r in recipients if "@" in r]
    from_domain = x.get("from_domain")
    raw: dict[str, Iterable[str]] = {
        "rcpt": recipients,
        "rdom": domains,
        "subj": _seq(x.get("subject_tokens")),
        "body": _seq(x.get("body_tokens")),
        "link": _seq(x.get("link_domains")),
        "from": [from_domain if isinstance(from_domain, str) and from_domain else NONE_TOKEN],
        "dkim": _seq(x.get("dkim_domains")) or (NONE_TOKEN,),
    }
    keys: dict[str, tuple[str, ...]] = {}
    names: dict[str, tuple[str, ...]] = {}
    for channel, (_capacity, per_message) in CHANNELS.items():
        keys[channel], names[channel] = _sample(raw[channel], per_message, seed)
    mid = hash_key(str(x.get("message_id", "")), seed, nbytes=4)
    return View(ts, mid, keys, names, bool(x.get("dmarc_pass", False)))


# --------------------------------------------------------------------------- observed window
def _bump_hours(hours: list[list[int]], hour: int, keep_from: int) -> None:
    for entry in hours:
        if entry[0] == hour:
            entry[1] += 1
            break
    else:
        hours.append([hour, 1])
        hours.sort()
    hours[:] = [h for h in hours if h[0] >= keep_from][-RECENT_HOURS:]


def record_observed(state: SenderState, view: View, evidence: float) -> None:
    """Put a message into the observed window (timestamps, hourly counts, evidence, id ring)."""
    state.recent_ts.append(view.ts)
    state.recent_ts.sort()
    del state.recent_ts[:-RECENT_TS]
    _bump_hours(state.recent_hours, view.ts // HOUR, state.clock // HOUR - RECENT_HOURS + 1)
    state.evidence = [rnd(evidence, 4), max(view.ts, int(state.evidence[1]))]
    state.seen.append(view.mid)
    del state.seen[:-SEEN_IDS]


def enqueue(state: SenderState, view: View) -> None:
    """Queue a delivered message for delayed learning (bounded: oldest content is dropped)."""
    _bump_hours(state.pending_hours, view.ts // HOUR, -(2**62))
    entry: list[Any] = [view.ts, view.mid, *(list(view.keys[c]) for c in PENDING_FIELDS)]
    entry.append(1 if view.dmarc_pass else 0)
    state.pending.append(entry)
    state.pending.sort(key=lambda e: (e[0], e[1]))
    del state.pending[:-PENDING_CAPACITY]


def forget_pending(state: SenderState) -> None:
    """Drop everything not yet learned (the sender is held: held mail is never learned)."""
    state.pending.clear()
    state.pending_hours.clear()
    state.held = True


# --------------------------------------------------------------------------- learned profile
def _close_buckets(stats: list[float], target: int, rho: float) -> None:
    """Advance the open bucket to index ``target``, folding closed buckets into the moments.

    ``stats`` is ``[open index, open count, W0, A0, A1, A2]``: decayed number of buckets, of
    active (non-empty) buckets, and the first two moments of ``count - 1`` over active buckets.
    """
    cursor, count, w0, a0, a1, a2 = stats
    if target <= cursor:
        return
    w0 = rho * w0 + 1.0
    if count > 0:
        a0, a1, a2 = rho * a0 + 1.0, rho * a1 + (count - 1), rho * a2 + (count - 1) ** 2
    else:
        a0, a1, a2 = rho * a0, rho * a1, rho * a2
    gap = int(target - cursor - 1)  # empty buckets in between
    if gap > 0:
        decay = rho**gap
        w0 = decay * w0 + (1.0 - decay) / (1.0 - rho)
        a0, a1, a2 = decay * a0, decay * a1, decay * a2
    stats[:] = [target, 0.0, rnd(w0), rnd(a0, 4), rnd(a1, 4), rnd(a2, 4)]


def _learn_count(stats: list[float], index: int, count: int, rho: float) -> None:
    if stats[0] < 0:  # first learned bucket
        stats[0] = index
    _close_buckets(stats, index, rho)
    stats[1] = rnd(stats[1] + count)


def _decay_table(table: dict[str, float], gamma: float) -> None:
    for key in list(table):
        value = rnd(table[key] * gamma)
        if value < 0.01:
            del table[key]
        else:
            table[key] = value


def _learn_entry(state: SenderState, entry: list[Any], gamma: float, min_count: float) -> None:
    state.learned = rnd(state.learned * gamma + 1.0)
    for i, channel in enumerate(PENDING_FIELDS):
        capacity, _ = CHANNELS[channel]
        table = state.tables.setdefault(channel, {})
        counts = state.novelty.setdefault(channel, [0.0, 0.0])
        _decay_table(table, gamma)
        new = known = 0
        for key in entry[2 + i]:
            if table.get(key, 0.0) >= min_count:
                known += 1
            else:
                new += 1
            table_add(table, key, capacity)
        counts[:] = [rnd(counts[0] * gamma + new), rnd(counts[1] * gamma + known)]
    passed = bool(entry[2 + len(PENDING_FIELDS)])
    state.dmarc = [rnd(state.dmarc[0] * gamma + passed), rnd(state.dmarc[1] * gamma + 1 - passed)]


def advance(
    state: SenderState,
    now: int,
    *,
    delay: float,
    gamma: float,
    rho_hour: float,
    rho_day: float,
    min_count: float,
) -> None:
    """Move the clock to ``now`` and learn every pending message older than ``delay``."""
    state.clock = max(state.clock, now)
    cutoff = int(state.clock - delay)
    while state.pending and state.pending[0][0] <= cutoff:
        _learn_entry(state, state.pending.pop(0), gamma, min_count)
    ripe = [h for h in state.pending_hours if (h[0] + 1) * HOUR <= cutoff]
    if ripe:
        state.pending_hours[:] = [h for h in state.pending_hours if (h[0] + 1) * HOUR > cutoff]
        for hour, count in ripe:
            _learn_count(state.rate["h"], hour, count, rho_hour)
            _learn_count(state.rate["d"], hour // 24, count, rho_day)
    # Time without learned mail up to the cutoff counts as empty buckets (once a rate exists).
    if state.rate["h"][0] >= 0:
        _close_buckets(state.rate["h"], cutoff // HOUR, rho_hour)
        _close_buckets(state.rate["d"], cutoff // DAY, rho_day)
