"""DMARC (RFC 7489): author domain, policy discovery, identifier alignment.

Policy discovery queries ``_dmarc.<author domain>`` and, when that has no DMARC record,
``_dmarc.<organizational domain>``. The organizational domain is derived from a public suffix
list: the one bundled with ``publicsuffixlist`` by default, or an explicit list of suffixes
(tests, demos). Under the PSL algorithm a top-level label that the list does not know is itself
a public suffix, so ``northwind.example`` is its own organizational domain either way.

>>> organizational_domain("mail.a.co.example", ["example", "co.example"])
'a.co.example'
>>> organizational_domain("news.northwind.example")
'northwind.example'
>>> author_domain(b'From: "Doe, Jane" <Jane@Example.COM>\\r\\nTo: x@y.example\\r\\n\\r\\nhi\\r\\n')
'example.com'
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

from publicsuffixlist import PublicSuffixList

from streams.auth.dns import DnsTempError, Resolver, normalize_name
from streams.auth.results import DkimResult, DmarcResult, SpfResult

__all__ = [
    "author_domain",
    "evaluate_dmarc",
    "from_addresses",
    "header_fields",
    "organizational_domain",
]

_POLICIES = frozenset({"none", "quarantine", "reject"})
_VERSION_RE = re.compile(r"\s*v\s*=\s*DMARC1\s*(?:;|$)")


# --------------------------------------------------------------------------- message headers


def header_fields(raw: bytes) -> list[tuple[str, str]]:
    """(lower-case name, unfolded value) of each header field, in order.

    Octets are decoded as UTF-8 with replacement: the value is only read, never hashed.
    """
    head = re.split(rb"\r?\n\r?\n", raw, maxsplit=1)[0]
    fields: list[tuple[str, list[bytes]]] = []
    for line in re.split(rb"\r?\n", head):
        if line[:1] in (b" ", b"\t"):
            if fields:
                fields[-1][1].append(line)
            continue
        name, colon, value = line.partition(b":")
        if colon and name.strip() and b" " not in name.strip():
            fields.append((name.strip().decode("ascii", "replace").lower(), [value]))
    return [(n, b"".join(v).decode("utf-8", "replace").strip()) for n, v in fields]


def _split_top_level(value: str) -> list[str]:
    """Split a mailbox-list on commas outside quotes, comments and angle brackets;
    comments are dropped, quoted strings kept."""
    parts: list[str] = []
    cur: list[str] = []
    quoted = escaped = False
    depth = angle = 0
    for ch in value:
        if escaped:
            escaped = False
            if not depth:
                cur.append(ch)
            continue
        if ch == "\\" and (quoted or depth):
            escaped = True
            if not depth:
                cur.append(ch)
            continue
        if depth:
            depth += {"(": 1, ")": -1}.get(ch, 0)
            continue
        if quoted:
            quoted = ch != '"'
            cur.append(ch)
            continue
        if ch == "(":
            depth = 1
        elif ch == '"':
            quoted = True
            cur.append(ch)
        elif ch == "<":
            angle += 1
            cur.append(ch)
        elif ch == ">":
            angle = max(0, angle - 1)
            cur.append(ch)
        elif ch == "," and not angle:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return [p.strip() for p in parts if p.strip()]


def _unquoted_positions(text: str, wanted: str) -> list[int]:
    out, quoted, escaped = [], False, False
    for i, ch in enumerate(text):
        if escaped:
            escaped = False
        elif ch == "\\" and quoted:
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif not quoted and ch in wanted:
            out.append(i)
    return out


def _mailbox_domain(mailbox: str) -> str | None:
    angles = _unquoted_positions(mailbox, "<>")
    opens = [i for i in angles if mailbox[i] == "<"]
    if opens:
        start = opens[-1]
        end = next((i for i in angles if i > start and mailbox[i] == ">"), len(mailbox))
        addr = mailbox[start + 1 : end]
    else:
        addr = mailbox
    ats = _unquoted_positions(addr, "@")
    if not ats:
        return None
    domain = addr[ats[-1] + 1 :].strip()
    if not domain or domain.startswith("["):
        return None
    return normalize_name(domain)


def from_addresses(value: str) -> list[str | None]:
    """Author domains of a From field value, one per mailbox (None: mailbox without address)."""
    colons = _unquoted_positions(value, ":<")
    if colons and value[colons[0]] == ":":  # group syntax: "Team: a@x.example, b@x.example;"
        value = value[colons[0] + 1 :].rstrip().removesuffix(";")
    return [_mailbox_domain(m) for m in _split_top_level(value)]


def author_domain(raw: bytes) -> str | None:
    """The RFC5322.From domain, or None if there is not exactly one From field naming a single
    author domain."""
    froms = [v for n, v in header_fields(raw) if n == "from"]
    if len(froms) != 1:
        return None
    domains = from_addresses(froms[0])
    if not domains or any(d is None for d in domains) or len(set(domains)) != 1:
        return None
    return domains[0]


# --------------------------------------------------------------------------- org domains


@lru_cache(maxsize=16)
def _psl(suffixes: tuple[str, ...] | None) -> PublicSuffixList:
    if suffixes is None:
        return PublicSuffixList()
    return PublicSuffixList(source=[s.strip().lower() for s in suffixes if s.strip()])


def organizational_domain(domain: str, public_suffixes: Sequence[str] | None = None) -> str:
    """The registrable domain of ``domain`` (itself when it is a public suffix)."""
    d = domain.lower().rstrip(".")
    psl = _psl(None if public_suffixes is None else tuple(public_suffixes))
    return psl.privatesuffix(d) or d


def _aligned(identifier: str, author: str, mode: str, suffixes: Sequence[str] | None) -> bool:
    ident = identifier.lower().rstrip(".")
    if not ident:
        return False
    if mode == "s":
        return ident == author
    return organizational_domain(ident, suffixes) == organizational_domain(author, suffixes)


# --------------------------------------------------------------------------- policy records


def _parse_record(text: str) -> dict[str, str] | None:
    """Tags of a DMARC record, or None when the record must be discarded (RFC 7489 6.6.3)."""
    tags: dict[str, str] = {}
    for part in text.split(";"):
        key, eq, value = part.partition("=")
        if eq and key.strip():
            tags.setdefault(key.strip().lower(), value.strip())
    p = tags.get("p", "").lower()
    sp = tags.get("sp", "").lower()
    if p not in _POLICIES or (sp and sp not in _POLICIES):
        if "mailto:" not in tags.get("rua", "").lower():
            return None
        tags["p"], sp = "none", ""  # act as if p=none was published
    tags["p"] = tags["p"].lower()
    tags["sp"] = sp or tags["p"]
    for mode in ("adkim", "aspf"):
        tags[mode] = "s" if tags.get(mode, "r").lower() == "s" else "r"
    return tags


async def _records(resolver: Resolver, domain: str) -> list[str]:
    name = normalize_name(f"_dmarc.{domain}")
    if name is None:
        return []
    records = await resolver.txt(name)
    texts = [b"".join(r).decode("utf-8", "replace") for r in records]
    return [t for t in texts if _VERSION_RE.match(t)]


async def evaluate_dmarc(
    raw: bytes,
    spf: SpfResult,
    dkim: tuple[DkimResult, ...],
    resolver: Resolver,
    public_suffixes: Sequence[str] | None = None,
) -> DmarcResult:
    """DMARC result for a message (``raw``: at least its header section).

    ``spf.domain`` is the identity SPF checked (MAIL FROM domain, or HELO domain for an empty
    MAIL FROM); ``dkim`` the per-signature results of ``verify_dkim``.
    """
    author = author_domain(raw)
    if author is None:
        return DmarcResult("permerror", None, None, None, False, False)

    def verdict(result: str, policy_domain: str | None, tags: dict[str, str] | None) -> DmarcResult:
        aspf = tags["aspf"] if tags else "r"
        adkim = tags["adkim"] if tags else "r"
        spf_ok = spf.result == "pass" and _aligned(spf.domain, author, aspf, public_suffixes)
        dkim_ok = any(
            r.result == "pass" and _aligned(r.domain, author, adkim, public_suffixes) for r in dkim
        )
        policy = None
        if tags is not None:
            policy = tags["p"] if policy_domain == author else tags["sp"]
        if result == "evaluate":
            result = "pass" if spf_ok or dkim_ok else "fail"
        return DmarcResult(result, author, policy_domain, policy, spf_ok, dkim_ok)

    org = organizational_domain(author, public_suffixes)
    try:
        policy_domain = author
        found = await _records(resolver, author)
        if not found and org != author:
            policy_domain = org
            found = await _records(resolver, org)
    except DnsTempError:
        return verdict("temperror", None, None)
    if len(found) != 1:
        return verdict("none", None, None)
    tags = _parse_record(found[0])
    if tags is None:
        return verdict("none", None, None)
    return verdict("evaluate", policy_domain, tags)
