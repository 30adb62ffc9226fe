"""The demo replay as Kafka-ready items for topic ``sentinelle.outbound.v1`` (pure, no Kafka).

The packaged file ``streams/replay/data/demo-replay.jsonl.gz`` (built by
``tools/build_replay.py``) holds one JSON object per line, sorted by time:

* ``{"label": ..., "event": {...}}``: an outbound event; ``label`` is ``legit``,
  ``spoof-unauthorised-ip``, ``spoof-bad-dkim`` or ``compromised``;
* ``{"label": "malformed-<reason>", "at": <RFC 3339>, "raw": <text>}``: a value to send as is,
  which the ingest stage must dead-letter;
* ``{"label": "malformed-oversize", "event": {...}, "pad_body_octets": n}``: a compact marker,
  expanded here into an event whose raw message has ``n`` more body octets (> 1 MiB).

Each item's ``value`` is the exact Kafka value; its ``key`` is the account id (so Kafka keeps
each sender's messages in order), or None for malformed input.

>>> items = load_replay(max_messages=400)
>>> len(items) <= 400
True
>>> sorted(scenario_accounts(items))
['compromised', 'spoof-bad-dkim', 'spoof-unauthorised-ip']
"""

from __future__ import annotations

import base64
import collections
import datetime as dt
import gzip
import importlib.resources
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LEGIT = "legit"
SPOOF_UNAUTHORISED_IP = "spoof-unauthorised-ip"
SPOOF_BAD_DKIM = "spoof-bad-dkim"
COMPROMISED = "compromised"
SCENARIOS = (SPOOF_UNAUTHORISED_IP, SPOOF_BAD_DKIM, COMPROMISED)
MALFORMED_PREFIX = "malformed-"
DATA_FILE = "demo-replay.jsonl.gz"
_FILLER = (b"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor "
           b"incididunt ut labore.\r\n")  # 100 octets per line


@dataclass(frozen=True)
class ReplayItem:
    """One value to produce, with the time the relay handed it over."""

    label: str
    key: bytes | None
    value: bytes
    timestamp: float  # seconds since the epoch, UTC
    message_id: str | None
    account_id: str | None

    @property
    def malformed(self) -> bool:
        return self.label.startswith(MALFORMED_PREFIX)


def default_path() -> Path:
    """The replay file packaged with Sentinelle."""
    return Path(str(importlib.resources.files("streams.replay") / "data" / DATA_FILE))


def parse_time(text: str) -> float:
    """RFC 3339 UTC (``...Z``) to epoch seconds.

    >>> parse_time("2001-05-03T14:22:10Z")
    988899730.0
    """
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _encode(event: dict[str, Any]) -> bytes:
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def pad_raw_message(raw: bytes, octets: int) -> bytes:
    """Append about ``octets`` octets of body text (CRLF lines) to an RFC 5322 message.

    >>> base = b"Subject: x\\r\\n\\r\\nhi\\r\\n"
    >>> len(pad_raw_message(base, 1000)) - len(base)
    1000
    """
    lines, rest = divmod(octets, len(_FILLER))
    return raw + _FILLER * lines + (b"x" * (rest - 2) + b"\r\n" if rest >= 2 else b"")


def _item(record: dict[str, Any]) -> ReplayItem:
    label = record["label"]
    if "raw" in record:
        raw = record["raw"]
        return ReplayItem(label, None, raw.encode("utf-8"), parse_time(record["at"]), None, None)
    event = dict(record["event"])
    if "pad_body_octets" in record:
        raw = pad_raw_message(base64.b64decode(event["raw_message_b64"]),
                              int(record["pad_body_octets"]))
        event["size"] = len(raw)
        event["raw_message_b64"] = base64.b64encode(raw).decode("ascii")
    # The relay keys by account: Kafka keeps order per partition only, so a sender's messages
    # reach the pipeline in the order it sent them (holds are decided in that order).
    key = None if label.startswith(MALFORMED_PREFIX) else event["account_id"].encode("utf-8")
    return ReplayItem(label, key, _encode(event), parse_time(event["timestamp"]),
                      event["message_id"], event["account_id"])


def read_records(path: Path | None = None) -> list[dict[str, Any]]:
    """The file's JSON lines as they are (no expansion)."""
    with gzip.open(path or default_path(), "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def load_replay(path: Path | None = None, limit_senders: int | None = None,
                max_messages: int | None = None) -> list[ReplayItem]:
    """Load the replay, sorted by time.

    ``limit_senders`` keeps the legitimate traffic of that many accounts (the compromised one
    first, then the busiest). ``max_messages`` selects a small replay for integration tests; see
    :func:`select_small`. Scenario and malformed items are always kept.
    """
    items = [_item(r) for r in read_records(path)]
    items.sort(key=lambda i: i.timestamp)
    if max_messages is not None:
        return select_small(items, max_messages, limit_senders or 4)
    if limit_senders is not None:
        keep = set(_accounts_by_priority(items)[:limit_senders])
        items = [i for i in items if i.label != LEGIT or i.account_id in keep]
    return items


def _accounts_by_priority(items: Sequence[ReplayItem],
                          since: float = float("-inf")) -> list[str]:
    """Legitimate accounts: the compromised one(s) first, then by message count after ``since``."""
    compromised = scenario_accounts(items).get(COMPROMISED, set())
    counts = collections.Counter(i.account_id for i in items
                                 if i.label == LEGIT and i.timestamp >= since)
    for acct in {i.account_id for i in items if i.label == LEGIT}:
        counts.setdefault(acct, 0)
    return sorted((a for a in counts if a is not None),
                  key=lambda a: (a not in compromised, -counts[a], a))


def select_small(items: Sequence[ReplayItem], max_messages: int,
                 n_senders: int = 4) -> list[ReplayItem]:
    """At most ``max_messages`` items that still tell every story.

    Keeps every scenario and malformed item. Of the remaining budget, the compromised account
    gets up to 40 % as history (its latest messages before the burst) and up to 10 % of its
    traffic right after the burst; the rest goes to the ``n_senders - 1`` busiest other
    accounts, the messages nearest in time to the burst first, from the start of the kept
    history to a day after the last scenario message.
    """
    special = [i for i in items if i.label != LEGIT]
    budget = max_messages - len(special)
    if budget < 0:
        raise ValueError(f"max_messages={max_messages} < {len(special)} scenario items")
    story = [i.timestamp for i in special if i.label in SCENARIOS]
    end = (max(story) if story else max(i.timestamp for i in items)) + 86_400
    legit = [i for i in items if i.label == LEGIT and i.timestamp <= end]
    compromised = scenario_accounts(special).get(COMPROMISED, set())
    burst = [i.timestamp for i in special if i.label == COMPROMISED]
    pivot = min(burst) if burst else end
    own = [i for i in legit if i.account_id in compromised]
    before = [i for i in own if i.timestamp < pivot]
    after = [i for i in own if i.timestamp >= pivot][:budget // 10]
    kept = before[max(len(before) - (budget * 2 // 5), 0):] if budget >= 3 else []
    kept += after
    start = kept[0].timestamp if kept else float("-inf")
    n_others = n_senders - (1 if compromised else 0)
    others = set([a for a in _accounts_by_priority(legit, since=start)
                  if a not in compromised][:max(n_others, 0)])
    rest = [i for i in legit if i.account_id in others and i.timestamp >= start]
    rest.sort(key=lambda i: abs(i.timestamp - pivot))  # the traffic around the burst
    kept += rest[:max(budget - len(kept), 0)]
    return sorted([*special, *kept], key=lambda i: i.timestamp)


def labels(items: Iterable[ReplayItem]) -> collections.Counter[str]:
    """Item count per label."""
    return collections.Counter(i.label for i in items)


def message_ids_by_label(items: Iterable[ReplayItem]) -> dict[str, set[str]]:
    """Message ids of each label (malformed items without a readable id are left out)."""
    out: dict[str, set[str]] = collections.defaultdict(set)
    for i in items:
        if i.message_id is not None:
            out[i.label].add(i.message_id)
    return dict(out)


def scenario_accounts(items: Iterable[ReplayItem]) -> dict[str, set[str]]:
    """Account ids behind each attack scenario (``compromised`` is a real customer's account)."""
    out: dict[str, set[str]] = collections.defaultdict(set)
    for i in items:
        if i.label in SCENARIOS and i.account_id is not None:
            out[i.label].add(i.account_id)
    return dict(out)


def decode_event(item: ReplayItem) -> dict[str, Any]:
    """The event object of a well-formed item (raises ``ValueError`` for unparsable values)."""
    event = json.loads(item.value)
    if not isinstance(event, dict):
        raise ValueError("not a JSON object")
    return event


def raw_message(item: ReplayItem) -> bytes:
    """The RFC 5322 octets carried by a well-formed item."""
    return base64.b64decode(decode_event(item)["raw_message_b64"], validate=True)
