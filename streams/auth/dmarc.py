"""DMARC: author domain, policy discovery, identifier alignment — RFC 9989 or RFC 7489.

Two modes (``mode=``):

* ``"rfc9989"`` (default; RFC 9989 obsoletes RFC 7489): policy discovery and organizational
  domains by the DNS tree walk (RFC 9989 section 4.10): ``_dmarc.<author domain>``, then at most
  seven more names obtained by removing labels from the left (a name of eight labels or more is
  first cut to its last seven); the first valid record is the policy. The organizational domain
  of a name is where a ``psd=n`` record sits, or the child of a ``psd=y`` record's domain, or
  else the shortest name holding a record, or else the name itself.
* ``"rfc7489"``: ``_dmarc.<author domain>`` then ``_dmarc.<organizational domain>``, the
  organizational domain derived from a public suffix list: the one bundled with
  ``publicsuffixlist`` by default, or an explicit list of suffixes (tests, demos). Under the PSL
  algorithm a top-level label that the list does not know is itself a public suffix, so
  ``northwind.example`` is its own organizational domain either way.

A ``fail`` is reported as ``temperror`` when SPF or a DKIM signature had a temporary error:
the fault may have hidden an aligned pass.

In both modes a record found above the author domain applies ``sp=`` (default ``p=``), or
``np=`` (RFC 9091 / RFC 9989) when the author domain does not exist: no A, AAAA nor MX records
(NXDOMAIN or NODATA, RFC 9091 section 2.7). A temporary DNS error on that existence check keeps
``sp=``: a transient fault never makes the requested policy stricter.

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
from typing import Literal

from publicsuffixlist import PublicSuffixList

from streams.auth.dns import DnsTempError, Resolver, normalize_name
from streams.auth.results import DkimResult, DmarcResult, SpfResult

__all__ = [
    "DmarcMode",
    "author_domain",
    "evaluate_dmarc",
    "from_addresses",
    "header_fields",
    "organizational_domain",
]

DmarcMode = Literal["rfc9989", "rfc7489"]
DMARC_MODES: tuple[str, ...] = ("rfc9989", "rfc7489")
MAX_WALK_LABELS = 7  # RFC 9989 section 4.10: longer names are cut to their last seven labels
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


def walk_targets(domain: str) -> list[str]:
    """The names the RFC 9989 tree walk queries after ``domain`` itself, in order.

    >>> walk_targets("a.b.example.com")
    ['b.example.com', 'example.com', 'com']
    >>> walk_targets("1.2.3.4.5.6.7.8.example")[0]
    '3.4.5.6.7.8.example'
    """
    labels = domain.split(".")
    labels = labels[-MAX_WALK_LABELS:] if len(labels) > MAX_WALK_LABELS else labels[1:]
    out = []
    while labels:
        out.append(".".join(labels))
        labels = labels[1:]
    return out


class _Discovery:
    """DMARC record lookups of one evaluation, memoized (alignment walks share names)."""

    def __init__(self, resolver: Resolver, mode: str, suffixes: Sequence[str] | None) -> None:
        if mode not in DMARC_MODES:
            raise ValueError(f"unknown DMARC mode {mode!r}")
        self.resolver, self.mode, self.suffixes = resolver, mode, suffixes
        self._memo: dict[str, dict[str, str] | None] = {}

    async def record(self, domain: str) -> dict[str, str] | None:
        """The tags of the single valid DMARC record at ``domain``, else None."""
        if domain not in self._memo:
            found = await _records(self.resolver, domain)
            self._memo[domain] = _parse_record(found[0]) if len(found) == 1 else None
        return self._memo[domain]

    async def policy(self, author: str) -> tuple[str | None, dict[str, str] | None]:
        """(policy domain, tags) by the mode's discovery, or (None, None)."""
        tags = await self.record(author)
        if tags is not None:
            return author, tags
        if self.mode == "rfc7489":
            org = organizational_domain(author, self.suffixes)
            targets = [org] if org != author else []
        else:
            targets = walk_targets(author)
        for target in targets:
            tags = await self.record(target)
            if tags is not None:
                return target, tags
        return None, None

    async def org(self, domain: str) -> str:
        """Organizational domain of ``domain`` under the mode."""
        if self.mode == "rfc7489":
            return organizational_domain(domain, self.suffixes)
        found: list[str] = []
        for i, name in enumerate([domain, *walk_targets(domain)]):
            tags = await self.record(name)
            if tags is None:
                continue
            psd = tags.get("psd", "u").lower()
            if psd == "n":
                return name
            if psd == "y" and i > 0:
                return ".".join(domain.split(".")[-(name.count(".") + 2) :])
            found.append(name)
        return min(found, key=lambda n: n.count(".")) if found else domain

    async def aligned(self, identifier: str, author: str, mode: str) -> bool:
        ident = identifier.lower().rstrip(".")
        if not ident:
            return False
        if ident == author:
            return True
        if mode == "s":
            return False
        return await self.org(ident) == await self.org(author)


async def _nonexistent(resolver: Resolver, domain: str) -> bool:
    """RFC 9091 section 2.7: no A, AAAA nor MX records (NXDOMAIN or NODATA)."""
    try:
        for lookup in (resolver.a, resolver.aaaa, resolver.mx):
            if await lookup(domain):
                return False
    except DnsTempError:
        return False
    return True


async def evaluate_dmarc(
    raw: bytes,
    spf: SpfResult,
    dkim: tuple[DkimResult, ...],
    resolver: Resolver,
    public_suffixes: Sequence[str] | None = None,
    *,
    mode: DmarcMode = "rfc9989",
) -> DmarcResult:
    """DMARC result for a message (``raw``: at least its header section).

    ``spf.domain`` is the identity SPF checked (MAIL FROM domain, or HELO domain for an empty
    MAIL FROM); ``dkim`` the per-signature results of ``verify_dkim``. ``public_suffixes`` is
    used in ``"rfc7489"`` mode only.
    """
    author = author_domain(raw)
    if author is None:
        return DmarcResult("permerror", None, None, None, False, False)
    disc = _Discovery(resolver, mode, public_suffixes)
    try:
        policy_domain, tags = await disc.policy(author)
        if tags is None:
            return DmarcResult("none", author, None, None, False, False)
        spf_ok = spf.result == "pass" and await disc.aligned(spf.domain, author, tags["aspf"])
        dkim_ok = False
        for r in dkim:
            if r.result == "pass" and await disc.aligned(r.domain, author, tags["adkim"]):
                dkim_ok = True
                break
    except DnsTempError:
        return DmarcResult("temperror", author, None, None, False, False)
    if policy_domain == author:
        policy = tags["p"]
    elif tags.get("np", "").lower() in _POLICIES and await _nonexistent(resolver, author):
        policy = tags["np"].lower()
    else:
        policy = tags["sp"]
    result = "pass" if spf_ok or dkim_ok else "fail"
    if result == "fail" and (
        spf.result == "temperror" or any(r.result == "temperror" for r in dkim)
    ):
        # A transient DNS fault in SPF or DKIM may have hidden an aligned pass: never report
        # "fail" (and trigger p=reject) because of it.
        result = "temperror"
    return DmarcResult(result, author, policy_domain, policy, spf_ok, dkim_ok)
