"""SPF check_host() (RFC 7208), asynchronous, over an injected ``Resolver``.

Pure: no Faust, no global resolver, no blocking call. Limits of RFC 7208 section 4.6.4: at most
10 DNS-querying terms (include, a, mx, ptr, exists, redirect) per evaluation, at most 2 void
lookups (NXDOMAIN or empty answer of the term's own query), at most 10 MX names per ``mx``
(more is permerror) and 10 PTR names per ``ptr`` / ``%{p}`` (the rest ignored). DNS trouble
gives ``temperror``, never ``fail``.

>>> import asyncio
>>> from streams.auth.dns import StaticResolver
>>> zone = {
...     "northwind.example": [{"type": "TXT", "value": "v=spf1 include:_spf.relay.example -all"}],
...     "_spf.relay.example": [{"type": "TXT", "value": "v=spf1 ip4:192.0.2.0/24 -all"}],
... }
>>> r = StaticResolver(zone)
>>> asyncio.run(check_host("192.0.2.7", "northwind.example", "a@northwind.example", "mx", r)).result
'pass'
>>> asyncio.run(check_host("203.0.113.9", "northwind.example", "a@northwind.example", "mx", r))
SpfResult(result='fail', domain='northwind.example', explanation='')
"""

from __future__ import annotations

import ipaddress
import re
import time
from dataclasses import dataclass, field
from urllib.parse import quote

from streams.auth.dns import DnsTempError, Resolver, normalize_name
from streams.auth.results import SpfResult

__all__ = ["MAX_DNS_TERMS", "MAX_VOID_LOOKUPS", "check_host", "spf_domain_of"]

MAX_DNS_TERMS = 10
MAX_VOID_LOOKUPS = 2
MAX_MX_NAMES = 10
MAX_PTR_NAMES = 10
MAX_DOMAIN_LENGTH = 253

_QUALIFIERS = {"+": "pass", "-": "fail", "~": "softfail", "?": "neutral"}
_MECHANISMS = frozenset({"all", "include", "a", "mx", "ptr", "ip4", "ip6", "exists"})
_DNS_TERMS = frozenset({"include", "a", "mx", "ptr", "exists"})
_MODIFIER_RE = re.compile(r"([A-Za-z][A-Za-z0-9\-_.]*)=(.*)", re.S)
_MECHANISM_RE = re.compile(r"([+\-~?]?)([^:/]*)(.*)", re.S)
_DUAL_CIDR_RE = re.compile(r"(?::(?P<domain>.*?))?(?:/(?P<c4>[0-9]+))?(?://(?P<c6>[0-9]+))?", re.S)
_IP4_NET_RE = re.compile(
    r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])"
    r"(?:\.(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])){3}"
)
_CIDR_RE = re.compile(r"0|[1-9][0-9]*")
_TOPLABEL_RE = re.compile(r"[A-Za-z0-9]*[A-Za-z][A-Za-z0-9]*|[A-Za-z0-9]+-[A-Za-z0-9-]*[A-Za-z0-9]")
_MACRO_BODY_RE = re.compile(r"([A-Za-z])([0-9]*)([rR]?)([.\-+,/_=]*)", re.S)
_DOMAIN_LETTERS = frozenset("slodiphv")
_EXPLAIN_LETTERS = _DOMAIN_LETTERS | frozenset("crt")


class _PermError(Exception):
    pass


class _TempError(Exception):
    pass


# --------------------------------------------------------------------------- macros


@dataclass(frozen=True, slots=True)
class _Macro:
    letter: str  # as written: upper case means URL-escape the value
    digits: int  # 0 = all parts
    reverse: bool
    delimiters: str


_Token = str | _Macro


def _parse_macro_string(s: str, *, explain: bool = False) -> list[_Token]:
    """Tokenise a macro-string (RFC 7208 section 7.1); raise _PermError on bad syntax."""
    letters = _EXPLAIN_LETTERS if explain else _DOMAIN_LETTERS
    tokens: list[_Token] = []
    i = 0
    while i < len(s):
        c = s[i]
        if c == "%":
            nxt = s[i + 1 : i + 2]
            if nxt == "%":
                tokens.append("%")
                i += 2
            elif nxt == "_":
                tokens.append(" ")
                i += 2
            elif nxt == "-":
                tokens.append("%20")
                i += 2
            elif nxt == "{":
                end = s.find("}", i + 2)
                m = _MACRO_BODY_RE.fullmatch(s, i + 2, end) if end > 0 else None
                if m is None or m.group(1).lower() not in letters:
                    raise _PermError(f"bad macro in {s!r}")
                digits = int(m.group(2)) if m.group(2) else 0
                if m.group(2) and digits == 0:
                    raise _PermError(f"zero digit transformer in {s!r}")
                tokens.append(_Macro(m.group(1), digits, bool(m.group(3)), m.group(4) or "."))
                i = end + 1
            else:
                raise _PermError(f"bad % escape in {s!r}")
        else:
            if not ("\x21" <= c <= "\x7e" or (explain and c == " ")):
                raise _PermError(f"bad character in {s!r}")
            tokens.append(c)
            i += 1
    return tokens


def _parse_domain_spec(s: str) -> list[_Token]:
    """A domain-spec: macro-string ending in a macro-expand or in "." toplabel ["."]."""
    if not s:
        raise _PermError("empty domain-spec")
    tokens = _parse_macro_string(s)
    if isinstance(tokens[-1], _Macro) or s.endswith(("%%", "%_", "%-")):
        return tokens
    tail = []
    for t in reversed(tokens):
        if isinstance(t, _Macro):
            break
        tail.append(t)
    literal = "".join(reversed(tail))
    if literal.endswith("."):
        literal = literal[:-1]
    _, dot, top = literal.rpartition(".")
    if not dot or not _TOPLABEL_RE.fullmatch(top):
        raise _PermError(f"bad domain-spec {s!r}")
    return tokens


# --------------------------------------------------------------------------- records


@dataclass(frozen=True, slots=True)
class _Directive:
    qualifier: str
    mechanism: str
    domain: list[_Token] | None = None
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None
    cidr4: int = 32
    cidr6: int = 128


@dataclass(slots=True)
class _Record:
    directives: list[_Directive] = field(default_factory=list)
    redirect: list[_Token] | None = None
    exp: list[_Token] | None = None
    has_all: bool = False


def _is_spf_record(text: str) -> bool:
    return text[:6].lower() == "v=spf1" and (len(text) == 6 or text[6] == " ")


def _cidr(value: str | None, maximum: int, default: int) -> int:
    if value is None:
        return default
    if not _CIDR_RE.fullmatch(value) or int(value) > maximum:
        raise _PermError(f"bad CIDR length /{value}")
    return int(value)


def _parse_record(text: str) -> _Record:
    if any(not ("\x20" <= c <= "\x7e") for c in text):
        raise _PermError("record holds characters outside printable ASCII")
    rec = _Record()
    for term in text[6:].split(" "):
        if not term:
            continue
        mod = _MODIFIER_RE.fullmatch(term)
        if mod is not None:
            name, value = mod.group(1).lower(), mod.group(2)
            if name in ("redirect", "exp"):
                if getattr(rec, name) is not None:
                    raise _PermError(f"{name}= given twice")
                setattr(rec, name, _parse_domain_spec(value))
            else:
                _parse_macro_string(value)
            continue
        rec.directives.append(_parse_directive(term))
    rec.has_all = any(d.mechanism == "all" for d in rec.directives)
    return rec


def _parse_directive(term: str) -> _Directive:
    m = _MECHANISM_RE.fullmatch(term)
    assert m is not None  # the pattern matches any string
    qualifier = _QUALIFIERS[m.group(1) or "+"]
    name, rest = m.group(2).lower(), m.group(3)
    if name not in _MECHANISMS:
        raise _PermError(f"unknown mechanism {term!r}")
    if name == "all":
        if rest:
            raise _PermError(f"bad all {term!r}")
        return _Directive(qualifier, name)
    if name in ("include", "exists"):
        if not rest.startswith(":"):
            raise _PermError(f"{name} needs a domain")
        return _Directive(qualifier, name, domain=_parse_domain_spec(rest[1:]))
    if name == "ptr":
        if rest and not rest.startswith(":"):
            raise _PermError(f"bad ptr {term!r}")
        return _Directive(qualifier, name, domain=_parse_domain_spec(rest[1:]) if rest else None)
    if name in ("a", "mx"):
        dm = _DUAL_CIDR_RE.fullmatch(rest)
        if dm is None:
            raise _PermError(f"bad {name} {term!r}")
        dom = dm.group("domain")
        if dom is None and rest.startswith(":"):
            raise _PermError(f"empty domain in {term!r}")
        return _Directive(
            qualifier,
            name,
            domain=_parse_domain_spec(dom) if dom is not None else None,
            cidr4=_cidr(dm.group("c4"), 32, 32),
            cidr6=_cidr(dm.group("c6"), 128, 128),
        )
    # ip4 / ip6
    if not rest.startswith(":"):
        raise _PermError(f"{name} needs an address")
    addr, slash, length = rest[1:].partition("/")
    try:
        if name == "ip4":
            if not _IP4_NET_RE.fullmatch(addr):
                raise _PermError(f"bad ip4 {term!r}")
            net: ipaddress.IPv4Network | ipaddress.IPv6Network = ipaddress.IPv4Network(
                f"{addr}/{_cidr(length if slash else None, 32, 32)}", strict=False
            )
        else:
            if "%" in addr or not addr:
                raise _PermError(f"bad ip6 {term!r}")
            net = ipaddress.IPv6Network(
                f"{addr}/{_cidr(length if slash else None, 128, 128)}", strict=False
            )
    except ValueError as exc:
        raise _PermError(f"bad {name} {term!r}") from exc
    return _Directive(qualifier, name, network=net)


# --------------------------------------------------------------------------- evaluation


@dataclass(slots=True)
class _Context:
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address
    sender: str
    local: str
    sender_domain: str
    helo: str
    resolver: Resolver
    now: float
    dns_terms: int = 0
    void_lookups: int = 0
    validated_names: dict[str, str] = field(default_factory=dict)

    def count_term(self) -> None:
        self.dns_terms += 1
        if self.dns_terms > MAX_DNS_TERMS:
            raise _PermError("more than 10 DNS-querying terms")

    def count_void(self, answers: list[object]) -> None:
        if not answers:
            self.void_lookups += 1
            if self.void_lookups > MAX_VOID_LOOKUPS:
                raise _PermError("more than 2 void lookups")

    async def addresses(self, name: str) -> list[str]:
        if self.ip.version == 4:
            return await self.resolver.a(name)
        return await self.resolver.aaaa(name)

    def matches(self, addresses: list[str], cidr4: int, cidr6: int) -> bool:
        length = cidr4 if self.ip.version == 4 else cidr6
        for text in addresses:
            try:
                net = ipaddress.ip_network(f"{text}/{length}", strict=False)
            except ValueError:
                continue
            if net.version == self.ip.version and self.ip in net:
                return True
        return False


def _client_ip(ip: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    addr = ipaddress.ip_address(ip.strip().removeprefix("[").removesuffix("]"))
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def _valid_fqdn(domain: str) -> str | None:
    """The <domain> of check_host() if it is a well-formed multi-label name (RFC 7208 4.3)."""
    if "[" in domain or "]" in domain:
        return None
    n = normalize_name(domain)
    if n is None or "." not in n or n.rsplit(".", 1)[1].isdigit():
        return None
    return n


def spf_domain_of(mail_from: str, helo: str) -> tuple[str, str]:
    """(sender, domain) checked for a MAIL FROM: ``postmaster@helo`` when it is empty.

    >>> spf_domain_of("", "mta.example.com")
    ('postmaster@mta.example.com', 'mta.example.com')
    >>> spf_domain_of("bounce@Example.COM", "mta")
    ('bounce@Example.COM', 'example.com')
    """
    sender = mail_from.strip().removeprefix("<").removesuffix(">")
    if not sender:
        sender = f"postmaster@{helo}"
    domain = sender.rpartition("@")[2] if "@" in sender else sender
    return sender, domain.lower().rstrip(".")


async def check_host(
    ip: str,
    domain: str,
    sender: str,
    helo: str,
    resolver: Resolver,
    *,
    now: float | None = None,
) -> SpfResult:
    """RFC 7208 check_host(): the SPF result for ``domain`` and client ``ip``.

    ``sender`` is the MAIL FROM address (or ``postmaster@<helo>``); ``now`` only feeds the
    ``%{t}`` macro of explanations.
    """
    try:
        client = _client_ip(ip)
    except ValueError:
        return SpfResult("permerror", domain, "")
    local, at, sender_domain = sender.rpartition("@")
    if not at:
        local, sender_domain = "", sender
    ctx = _Context(
        ip=client,
        sender=sender if local else f"postmaster@{sender_domain}",
        local=local or "postmaster",
        sender_domain=sender_domain,
        helo=helo,
        resolver=resolver,
        now=time.time() if now is None else now,
    )
    start = _valid_fqdn(domain)
    if start is None:
        return SpfResult("none", domain, "")
    try:
        result, exp = await _check(ctx, start)
    except _TempError:
        return SpfResult("temperror", start, "")
    except _PermError:
        return SpfResult("permerror", start, "")
    explanation = ""
    if result == "fail" and exp is not None:
        explanation = await _explain(ctx, *exp)
    return SpfResult(result, start, explanation)


async def _txt(ctx: _Context, name: str) -> list[str]:
    try:
        records = await ctx.resolver.txt(name)
    except DnsTempError as exc:
        raise _TempError(str(exc)) from exc
    return [b"".join(r).decode("latin-1") for r in records]


async def _check(ctx: _Context, domain: str) -> tuple[str, tuple[list[_Token], str] | None]:
    """Evaluate the record of ``domain``: (result, (exp domain-spec, domain) or None)."""
    spf = [t for t in await _txt(ctx, domain) if _is_spf_record(t)]
    if not spf:
        return "none", None
    if len(spf) > 1:
        raise _PermError(f"{len(spf)} SPF records at {domain}")
    record = _parse_record(spf[0])
    exp = (record.exp, domain) if record.exp is not None else None
    for directive in record.directives:
        if await _match(ctx, directive, domain):
            return directive.qualifier, exp
    if record.redirect is not None and not record.has_all:
        ctx.count_term()
        target = await _target(ctx, record.redirect, domain)
        if target is None:
            raise _PermError("redirect to a malformed domain")
        result, redirected_exp = await _check(ctx, target)
        if result == "none":
            raise _PermError(f"redirect target {target} has no SPF record")
        return result, redirected_exp
    return "neutral", exp


async def _match(ctx: _Context, d: _Directive, domain: str) -> bool:
    mech = d.mechanism
    if mech == "all":
        return True
    if mech in ("ip4", "ip6"):
        net = d.network
        return net is not None and net.version == ctx.ip.version and ctx.ip in net
    if mech in _DNS_TERMS:
        ctx.count_term()
    target = domain if d.domain is None else await _target(ctx, d.domain, domain)
    if target is None:  # not a queryable name: it does not exist
        return False
    try:
        if mech == "include":
            result, _ = await _check(ctx, target)
            if result == "none":
                raise _PermError(f"include:{target} has no SPF record")
            return result == "pass"
        if mech == "a":
            addrs = await ctx.addresses(target)
            ctx.count_void(list(addrs))
            return ctx.matches(addrs, d.cidr4, d.cidr6)
        if mech == "mx":
            mxs = await ctx.resolver.mx(target)
            ctx.count_void(list(mxs))
            if len(mxs) > MAX_MX_NAMES:
                raise _PermError(f"{len(mxs)} MX records at {target}")
            for _, host in sorted(mxs):
                if not host or host == ".":
                    continue  # null MX (RFC 7505)
                if ctx.matches(await ctx.addresses(host), d.cidr4, d.cidr6):
                    return True
            return False
        if mech == "exists":
            found = await ctx.resolver.a(target)
            ctx.count_void(list(found))
            return bool(found)
    except DnsTempError as exc:
        raise _TempError(str(exc)) from exc
    # ptr
    names = await _validated_names(ctx, count_void=True)
    return any(n == target or n.endswith("." + target) for n in names)


async def _validated_names(ctx: _Context, *, count_void: bool = False) -> list[str]:
    """Names of the client's PTR records whose forward lookup gives the client address back."""
    try:
        names = await ctx.resolver.ptr(str(ctx.ip))
    except DnsTempError:
        return []  # RFC 7208 5.5: a PTR lookup error makes ptr not match
    if count_void:
        ctx.count_void(list(names))
    out = []
    for name in names[:MAX_PTR_NAMES]:
        n = normalize_name(name)
        if n is None:
            continue
        try:
            addrs = await ctx.addresses(n)
        except DnsTempError:
            continue  # RFC 7208 5.5: skip the name and go on
        if any(_same_ip(a, ctx.ip) for a in addrs):
            out.append(n)
    return out


def _same_ip(text: str, ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    try:
        return ipaddress.ip_address(text) == ip
    except ValueError:
        return False


async def _target(ctx: _Context, spec: list[_Token], domain: str) -> str | None:
    """Expand a domain-spec into a queryable name, or None if the result is not one."""
    name = await _expand(ctx, spec, domain)
    if name.endswith("."):
        name = name[:-1]
    while len(name) > MAX_DOMAIN_LENGTH and "." in name:  # RFC 7208 7.3: drop labels on the left
        name = name.split(".", 1)[1]
    return normalize_name(name)


async def _expand(ctx: _Context, tokens: list[_Token], domain: str) -> str:
    out: list[str] = []
    for t in tokens:
        if isinstance(t, str):
            out.append(t)
            continue
        value = await _macro_value(ctx, t.letter.lower(), domain)
        parts = re.split("[" + re.escape(t.delimiters) + "]", value)
        if t.reverse:
            parts.reverse()
        if t.digits:
            parts = parts[-t.digits :]
        value = ".".join(parts)
        if t.letter.isupper():
            value = quote(value, safe="")
        out.append(value)
    return "".join(out)


async def _macro_value(ctx: _Context, letter: str, domain: str) -> str:
    ip = ctx.ip
    if letter == "s":
        return ctx.sender
    if letter == "l":
        return ctx.local
    if letter == "o":
        return ctx.sender_domain
    if letter == "d":
        return domain
    if letter == "i":
        if ip.version == 4:
            return str(ip)
        return ".".join(ip.exploded.replace(":", ""))
    if letter == "v":
        return "in-addr" if ip.version == 4 else "ip6"
    if letter == "h":
        return ctx.helo
    if letter == "c":
        return str(ip)
    if letter == "r":
        return "unknown"
    if letter == "t":
        return str(int(ctx.now))
    # "p": the validated name, preferring <domain> itself, then a subdomain of it
    if domain not in ctx.validated_names:
        names = await _validated_names(ctx)
        best = next((n for n in names if n == domain), None)
        best = best or next((n for n in names if n.endswith("." + domain)), None)
        ctx.validated_names[domain] = best or (names[0] if names else "unknown")
    return ctx.validated_names[domain]


async def _explain(ctx: _Context, spec: list[_Token], domain: str) -> str:
    """The exp= text (RFC 7208 6.2); any problem means no explanation."""
    try:
        target = await _target(ctx, spec, domain)
        if target is None:
            return ""
        records = await ctx.resolver.txt(target)
        if len(records) != 1:
            return ""
        text = b"".join(records[0]).decode("ascii")
        return await _expand(ctx, _parse_macro_string(text, explain=True), domain)
    except (DnsTempError, _PermError, UnicodeDecodeError):
        return ""
