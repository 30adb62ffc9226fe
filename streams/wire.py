"""JSON on the wire: schema loading, validation, and the small codecs every stage shares.

Values travel as plain JSON bytes (orjson, ~5 µs) rather than faust Records (~35 µs to decode,
docs/measurements.md); the JSON Schemas in ``schemas/`` are the contract, checked here at
ingest and by the contract tests on every producer's output.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import orjson
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"


@cache
def schema(topic: str) -> dict[str, Any]:
    """The JSON Schema for a topic (``sentinelle.<name>.v<N>``)."""
    path = SCHEMA_DIR / f"{topic}.schema.json"
    loaded: dict[str, Any] = orjson.loads(path.read_bytes())
    return loaded


@cache
def validator(topic: str) -> Draft202012Validator:
    return Draft202012Validator(schema(topic), format_checker=Draft202012Validator.FORMAT_CHECKER)


def first_error(topic: str, value: Any) -> str | None:
    """A one-line description of the first schema violation, or None when the value is valid."""
    error: ValidationError | None = next(iter(validator(topic).iter_errors(value)), None)
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path) or "(root)"
    return f"{where}: {error.message}"[:500]


def dumps(value: Any) -> bytes:
    return orjson.dumps(value)


def loads(data: bytes) -> Any:
    return orjson.loads(data)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str) -> bytes:
    """Strict base64 decode; raises ValueError on anything that is not base64."""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(str(exc)) from exc


def utc_now() -> datetime:
    return datetime.now(UTC)


def rfc3339(moment: datetime | float) -> str:
    """UTC RFC 3339 with a Z suffix, from an aware datetime or a unix timestamp."""
    if isinstance(moment, int | float):
        moment = datetime.fromtimestamp(moment, UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_rfc3339(text: str) -> float:
    """Unix seconds from an RFC 3339 timestamp; naive timestamps are rejected."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(f"timestamp without a timezone: {text!r}")
    return moment.timestamp()
