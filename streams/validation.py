"""Pure ingest rules: turn the relay's raw bytes into an accepted event or a dead-letter reason.

No Faust here, so the rules are unit-tested in microseconds and reused by the replay tools.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from streams import wire

OUTBOUND = "sentinelle.outbound.v1"


@dataclass(frozen=True)
class Accepted:
    account_id: str
    message_id: str
    event: dict[str, Any]
    raw_message: bytes


@dataclass(frozen=True)
class Rejected:
    reason: str  # a dead-letter reason code (schemas/README.md)
    detail: str
    message_id: str | None = None
    account_id: str | None = None


# A relay's clock may run a little ahead; a timestamp far in the future would move the sender's
# event-time clock forward and make all its real mail look old.
MAX_FUTURE_SKEW_S = 24 * 3600.0


def validate_outbound(
    value: bytes | None, max_message_bytes: int, now: float | None = None
) -> Accepted | Rejected:
    """Check one input value against the outbound schema and the size bound.

    >>> validate_outbound(b"{not json", 1024).reason
    'bad_json'
    >>> validate_outbound(b'{"message_id": "m1"}', 1024).reason
    'schema_violation'
    """
    if value is None:
        return Rejected("bad_json", "empty value (tombstone)")
    # Base64 inflates by 4/3; anything larger than that cannot hold an allowed message.
    if len(value) > max_message_bytes * 4 // 3 + 64 * 1024:
        return Rejected("oversize", f"event of {len(value)} bytes exceeds the bound")
    try:
        event = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        return Rejected("bad_json", f"not JSON: {exc}"[:300])
    if not isinstance(event, dict):
        return Rejected("bad_json", f"JSON {type(event).__name__}, expected an object")
    ids = _ids(event)
    problem = wire.first_error(OUTBOUND, event)
    if problem is not None:
        return Rejected("schema_violation", problem, *ids)
    try:
        raw = wire.unb64(event["raw_message_b64"])
    except ValueError as exc:
        return Rejected("undecodable_message", f"raw_message_b64: {exc}", *ids)
    if len(raw) > max_message_bytes:
        return Rejected(
            "oversize", f"message of {len(raw)} octets exceeds {max_message_bytes}", *ids
        )
    try:
        timestamp = wire.parse_rfc3339(event["timestamp"])
    except ValueError as exc:
        return Rejected("schema_violation", f"timestamp: {exc}", *ids)
    if now is not None and timestamp > now + MAX_FUTURE_SKEW_S:
        return Rejected("schema_violation", f"timestamp {event['timestamp']} is in the future",
                        *ids)
    return Accepted(event["account_id"], event["message_id"], event, raw)


def _ids(event: dict[str, Any]) -> tuple[str | None, str | None]:
    message_id = event.get("message_id")
    account_id = event.get("account_id")
    return (
        message_id if isinstance(message_id, str) else None,
        account_id if isinstance(account_id, str) else None,
    )
