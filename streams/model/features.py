"""Message features for the per-sender habit model (pure: stdlib email parsing only).

:func:`extract_features` turns one outbound message (raw RFC 5322 octets, the envelope
recipients, the event time and the authentication results from ``streams.auth``) into a
:class:`MessageFeatures`. It never raises on odd input: undecodable octets, broken MIME,
missing headers and partial ``auth`` dictionaries all degrade to empty features.

>>> raw = (b"From: Ann <ann@shop.example>\\r\\nSubject: Your invoice 42 is ready\\r\\n"
...        b"\\r\\nSee https://pay.shop.example/i/42 thanks\\r\\n")
>>> f = extract_features(message_id="m1", raw=raw, recipients=["Bob@Client.example"],
...                      timestamp=1_700_000_000.0,
...                      auth={"dkim": [{"result": "pass", "domain": "Shop.example"}],
...                            "dmarc": {"result": "pass"}})
>>> f.recipients, f.subject_tokens, f.link_domains
(('bob@client.example',), ('invoice', 'ready'), ('pay.shop.example',))
>>> f.from_domain, f.dkim_domains, f.dmarc_pass
('shop.example', ('shop.example',), True)
>>> extract_features(message_id="x", raw=b"\\xff\\xfe\\x00garbage", recipients=[],
...                  timestamp=0.0).subject_tokens
()
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from email import message_from_bytes, policy
from email.header import decode_header, make_header
from email.message import Message
from email.utils import getaddresses
from html import unescape
from typing import Any

__all__ = ["MessageFeatures", "extract_features"]

MAX_RAW_BYTES = 256 * 1024  # parse at most this much of a message
MAX_BODY_CHARS = 20_000
MAX_SUBJECT_TOKENS = 16
MAX_BODY_TOKENS = 200
MAX_LINK_DOMAINS = 16
MAX_RECIPIENTS = 200

_TOKEN = re.compile(r"[^\W\d_]{3,24}", re.UNICODE)
_URL = re.compile(r"(?i)\b(?:https?://|www\.)([a-z0-9.-]+\.[a-z]{2,63})\b")
_TAG = re.compile(r"(?s)<(script|style).*?</\1>|<[^>]+>")
_DOMAIN = re.compile(r"^[a-z0-9.-]+\.[a-z0-9-]{2,63}$")
# A handful of words every sender uses: they carry no habit and only dilute novelty.
_STOP = frozenset(
    {
        "the", "and", "for", "you", "your", "with", "this", "that", "are", "from", "have", "has",
        "was", "were", "will", "would", "our", "not", "but", "all", "can", "please", "thanks",
        "thank", "re", "fw", "fwd", "aw", "sv", "http", "https", "www", "com", "html",
    }
)


@dataclass(frozen=True)
class MessageFeatures:
    """What the habit model sees of one message. ``as_dict`` gives the River-style ``x``."""

    message_id: str
    timestamp: float  # unix seconds, event time
    recipients: tuple[str, ...]  # lower-cased addresses
    subject_tokens: tuple[str, ...]
    body_tokens: tuple[str, ...]
    link_domains: tuple[str, ...]
    from_domain: str | None
    dkim_domains: tuple[str, ...]
    dmarc_pass: bool

    def as_dict(self) -> dict[Hashable, Any]:
        """River-style feature dict (a fresh dict: callers may keep or modify it)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _unique(items: Iterable[str], limit: int) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for item in items:
        if item and item not in seen:
            seen[item] = None
            if len(seen) >= limit:
                break
    return tuple(seen)


def tokenize(text: str, limit: int) -> tuple[str, ...]:
    """Distinct lower-case word tokens (letters only, 3–24 long, no stop words), in order.

    >>> tokenize("RE: Re: Quarterly REPORT, quarterly figures 2001!", 10)
    ('quarterly', 'report', 'figures')
    """
    words = (w.lower() for w in _TOKEN.findall(text))
    return _unique((w for w in words if w not in _STOP), limit)


def link_domains(text: str, limit: int = MAX_LINK_DOMAINS) -> tuple[str, ...]:
    """Host names of http(s)/www links in ``text``, lower-cased, ``www.`` stripped.

    >>> link_domains("go to HTTPS://Www.Bank.example/login or www.other.example.")
    ('bank.example', 'other.example')
    """
    hosts = []
    for host in _URL.findall(text):
        host = host.lower().strip(".")
        if host.startswith("www."):
            host = host[4:]
        if _DOMAIN.match(host):
            hosts.append(host)
    return _unique(hosts, limit)


def _normalise_domain(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    value = value.strip().strip(".").lower()
    return value if value and _DOMAIN.match(value) else None


def _header_text(message: Message, name: str) -> str:
    try:
        value = message.get(name)
        if value is None:
            return ""
        return str(make_header(decode_header(str(value))))
    except Exception:
        try:
            return str(message.get(name, ""))
        except Exception:
            return ""


def _part_text(part: Message) -> str:
    try:
        payload = part.get_payload(decode=True)
    except Exception:
        payload = None
    if not isinstance(payload, bytes):
        return ""
    charset = "utf-8"
    try:
        charset = part.get_content_charset() or "utf-8"
        return payload[: MAX_BODY_CHARS * 4].decode(charset, errors="replace")
    except (LookupError, ValueError):
        return payload[: MAX_BODY_CHARS * 4].decode("utf-8", errors="replace")


def _body_text(message: Message) -> str:
    plain: list[str] = []
    html: list[str] = []
    try:
        parts = list(message.walk()) if message.is_multipart() else [message]
    except Exception:
        parts = [message]
    for part in parts[:50]:
        try:
            ctype = part.get_content_type()
        except Exception:
            ctype = "text/plain"
        if ctype == "text/plain":
            plain.append(_part_text(part))
        elif ctype == "text/html":
            html.append(_part_text(part))
    if plain and any(p.strip() for p in plain):
        return "\n".join(plain)[:MAX_BODY_CHARS]
    text = "\n".join(html)[: MAX_BODY_CHARS * 4]
    return unescape(_TAG.sub(" ", text))[:MAX_BODY_CHARS] if text else ""


def _links(message: Message, body: str) -> tuple[str, ...]:
    """Link domains from the body text and from raw HTML (``href`` survives tag stripping)."""
    raw_html = ""
    try:
        for part in message.walk():
            if part.get_content_type() == "text/html":
                raw_html += _part_text(part)[: MAX_BODY_CHARS * 4]
    except Exception:
        raw_html = ""
    return link_domains(body + "\n" + raw_html)


def _from_domain(message: Message) -> str | None:
    try:
        pairs = getaddresses([_header_text(message, "From")])
    except Exception:
        return None
    for _name, addr in pairs:
        if "@" in addr:
            return _normalise_domain(addr.rsplit("@", 1)[1])
    return None


def _auth_fields(auth: Mapping[str, Any] | None) -> tuple[str | None, tuple[str, ...], bool]:
    if not isinstance(auth, Mapping):
        return None, (), False
    from_domain = _normalise_domain(auth.get("from_domain"))
    dkim = auth.get("dkim")
    if isinstance(dkim, Mapping):
        dkim = [dkim]
    domains: list[str] = []
    if isinstance(dkim, Sequence) and not isinstance(dkim, str | bytes):
        for sig in dkim:
            if isinstance(sig, Mapping) and str(sig.get("result", "")).lower() == "pass":
                domain = _normalise_domain(sig.get("domain"))
                if domain:
                    domains.append(domain)
    dmarc = auth.get("dmarc")
    dmarc_pass = isinstance(dmarc, Mapping) and str(dmarc.get("result", "")).lower() == "pass"
    if from_domain is None and isinstance(dmarc, Mapping):
        from_domain = _normalise_domain(dmarc.get("author_domain"))
    return from_domain, tuple(sorted(set(domains)))[:4], dmarc_pass


def _recipients(recipients: Sequence[str]) -> tuple[str, ...]:
    cleaned = []
    try:
        for rcpt in list(recipients)[: MAX_RECIPIENTS * 2]:
            if isinstance(rcpt, bytes):
                rcpt = rcpt.decode("utf-8", errors="replace")
            if isinstance(rcpt, str):
                cleaned.append(rcpt.strip().strip("<>").lower())
    except TypeError:
        return ()
    return _unique(cleaned, MAX_RECIPIENTS)


def extract_features(
    *,
    message_id: str,
    raw: bytes,
    recipients: Sequence[str],
    timestamp: float,
    auth: Mapping[str, Any] | None = None,
) -> MessageFeatures:
    """Parse ``raw`` tolerantly and combine it with envelope and authentication data."""
    try:
        message = message_from_bytes(bytes(raw[:MAX_RAW_BYTES]), policy=policy.compat32)
    except Exception:
        message = Message()
    subject = _header_text(message, "Subject")
    try:
        body = _body_text(message)
    except Exception:
        body = ""
    try:
        links = _links(message, body)
    except Exception:
        links = ()
    auth_from, dkim_domains, dmarc_pass = _auth_fields(auth)
    return MessageFeatures(
        message_id=str(message_id),
        timestamp=float(timestamp),
        recipients=_recipients(recipients),
        subject_tokens=tokenize(subject, MAX_SUBJECT_TOKENS),
        body_tokens=tokenize(body, MAX_BODY_TOKENS),
        link_domains=links,
        from_domain=auth_from or _from_domain(message),
        dkim_domains=dkim_domains,
        dmarc_pass=dmarc_pass,
    )
