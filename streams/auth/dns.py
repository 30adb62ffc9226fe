"""DNS access for the authentication checks: a small async ``Resolver`` protocol, the real
dnspython-backed ``DnsResolver`` with a bounded TTL cache, and ``StaticResolver`` for tests.

Semantics shared by every implementation:

* NXDOMAIN (RCODE 3) and NODATA (RCODE 0, empty answer) both give ``[]``: RFC 7208 counts both
  as "void lookups" and RFC 6376/7489 treat both as "no record", so callers never need to tell
  them apart.
* A timeout, SERVFAIL or any other RCODE raises ``DnsTempError``; callers turn it into
  ``temperror`` and never into a permanent verdict.
* A name that cannot be put in a query (empty label, label over 63 octets, name over 253
  octets) does not exist: ``[]`` without a query.

>>> import asyncio
>>> r = StaticResolver({"northwind.example": [{"type": "TXT", "value": ["v=spf1 ", "-all"]}]})
>>> asyncio.run(r.txt("NorthWind.Example."))
[[b'v=spf1 ', b'-all']]
>>> asyncio.run(r.a("nosuch.example"))
[]
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import dns.asyncresolver
import dns.exception
import dns.message
import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.resolver
import dns.reversename

__all__ = [
    "DnsResolver",
    "DnsTempError",
    "Resolver",
    "StaticResolver",
    "normalize_name",
    "reverse_name",
]


class DnsTempError(Exception):
    """The answer could not be obtained: timeout, SERVFAIL or another non-zero, non-3 RCODE."""


@runtime_checkable
class Resolver(Protocol):
    """What the authentication checks need from DNS. Names are absolute, no trailing dot needed."""

    async def txt(self, name: str) -> list[list[bytes]]:
        """Each TXT record as its character-strings, not joined."""
        ...

    async def a(self, name: str) -> list[str]: ...

    async def aaaa(self, name: str) -> list[str]: ...

    async def mx(self, name: str) -> list[tuple[int, str]]:
        """(preference, exchange) pairs; the exchange is lower case without trailing dot."""
        ...

    async def ptr(self, ip: str) -> list[str]:
        """Names of the reverse record of ``ip``, lower case without trailing dot."""
        ...


def normalize_name(name: str) -> str | None:
    """Lower-case ``name`` and drop one trailing dot; ``None`` if it cannot be queried.

    >>> normalize_name("Mail.Example.COM.")
    'mail.example.com'
    >>> normalize_name("a..example.com") is None
    True
    >>> normalize_name("x" * 64 + ".example") is None
    True
    """
    n = name.lower()
    if n.endswith("."):
        n = n[:-1]
    if not n or len(n) > 253:
        return None
    labels = n.split(".")
    if any(not label or len(label.encode("utf-8", "surrogateescape")) > 63 for label in labels):
        return None
    return n


def reverse_name(ip: str) -> str:
    """The in-addr.arpa / ip6.arpa name of an address (lower case, no trailing dot)."""
    return ipaddress.ip_address(ip).reverse_pointer.lower()


# --------------------------------------------------------------------------- in-process fake


class StaticResolver:
    """In-process resolver over a mapping ``name -> [{type, value} | {type, fault}]``.

    The format is the ``dns`` section of ``auth-cases.yml``: TXT values are a string or a list of
    character-strings; MX values are ``"10 mx.example.com"`` (or ``[10, "mx.example.com"]``);
    ``fault: TIMEOUT`` / ``fault: SERVFAIL`` make that query type fail. A name without records
    is NXDOMAIN, a name with records of other types answers NODATA. ``CNAME`` records are
    followed (a loop is a server failure). Every query is recorded in ``queries``.
    """

    MAX_CNAME_CHAIN = 8

    def __init__(self, zone: Mapping[str, Sequence[Mapping[str, Any]]]) -> None:
        self._zone: dict[str, list[Mapping[str, Any]]] = {}
        for name, records in zone.items():
            key = name.lower().rstrip(".")
            self._zone.setdefault(key, []).extend(records)
        self.queries: list[tuple[str, str]] = []

    async def _lookup(self, name: str, rtype: str) -> list[Any]:
        self.queries.append((name, rtype))
        n = normalize_name(name)
        if n is None:
            return []
        seen = {n}
        for _ in range(self.MAX_CNAME_CHAIN + 1):
            records = self._zone.get(n, [])
            cname = [
                r for r in records if str(r.get("type", "")).upper() == "CNAME" and "value" in r
            ]
            if not cname or rtype == "CNAME":
                break
            target = normalize_name(str(cname[0]["value"]))
            if target is None:
                return []
            if target in seen:
                raise DnsTempError(f"CNAME loop at {n}")
            seen.add(target)
            n = target
        else:
            raise DnsTempError(f"CNAME chain too long at {name}")
        out: list[Any] = []
        for r in self._zone.get(n, []):
            if str(r.get("type", "")).upper() != rtype:
                continue
            fault = r.get("fault")
            if fault is not None:
                raise DnsTempError(f"{fault} for {n}/{rtype}")
            out.append(r["value"])
        return out

    async def txt(self, name: str) -> list[list[bytes]]:
        return [
            [_to_bytes(s) for s in (v if isinstance(v, list | tuple) else [v])]
            for v in await self._lookup(name, "TXT")
        ]

    async def a(self, name: str) -> list[str]:
        return [str(ipaddress.IPv4Address(str(v))) for v in await self._lookup(name, "A")]

    async def aaaa(self, name: str) -> list[str]:
        return [str(ipaddress.IPv6Address(str(v))) for v in await self._lookup(name, "AAAA")]

    async def mx(self, name: str) -> list[tuple[int, str]]:
        out = []
        for v in await self._lookup(name, "MX"):
            if isinstance(v, list | tuple):
                pref, host = v
            else:
                pref, _, host = str(v).strip().partition(" ")
            out.append((int(pref), str(host).strip().lower().rstrip(".")))
        return out

    async def ptr(self, ip: str) -> list[str]:
        return [str(v).lower().rstrip(".") for v in await self._lookup(reverse_name(ip), "PTR")]


def _to_bytes(s: Any) -> bytes:
    if isinstance(s, bytes):
        return s
    text = str(s)
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode("utf-8")


# --------------------------------------------------------------------------- real resolver


_Key = tuple[str, int]


class DnsResolver:
    """dnspython asyncio resolver with a TTL-bounded positive and negative cache.

    * Positive answers are cached for their TTL (at most ``max_ttl``), NXDOMAIN/NODATA for the
      SOA negative TTL of the answer (RFC 2308; ``default_negative_ttl`` without SOA, at most
      ``max_negative_ttl``). Failures are not cached.
    * The cache holds at most ``cache_size`` entries, least recently used evicted first.
    * Concurrent identical queries share one upstream query.
    * Every query has an overall deadline of ``timeout`` seconds. dnspython retries a truncated
      UDP answer over TCP; ``tcp=True`` sends every query over TCP.
    """

    def __init__(
        self,
        nameservers: list[str] | None = None,
        port: int = 53,
        timeout: float = 2.0,
        cache_size: int = 50_000,
        clock: Callable[[], float] = time.monotonic,
        *,
        max_ttl: float = 86_400.0,
        default_negative_ttl: float = 60.0,
        max_negative_ttl: float = 3_600.0,
        tcp: bool = False,
    ) -> None:
        if nameservers:
            resolver = dns.asyncresolver.Resolver(configure=False)
            resolver.nameservers = list(nameservers)
        else:
            resolver = dns.asyncresolver.Resolver(configure=True)
        resolver.port = port
        resolver.timeout = timeout
        resolver.lifetime = timeout
        resolver.cache = None
        self._resolver = resolver
        self._timeout = timeout
        self._tcp = tcp
        self._cache_size = max(0, cache_size)
        self._clock = clock
        self._max_ttl = max_ttl
        self._default_negative_ttl = default_negative_ttl
        self._max_negative_ttl = max_negative_ttl
        self._cache: OrderedDict[_Key, tuple[float, list[Any]]] = OrderedDict()
        self._inflight: dict[_Key, asyncio.Future[list[Any]]] = {}
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._cache)

    # public protocol ------------------------------------------------------------------------

    async def txt(self, name: str) -> list[list[bytes]]:
        return await self._get(name, dns.rdatatype.TXT)

    async def a(self, name: str) -> list[str]:
        return await self._get(name, dns.rdatatype.A)

    async def aaaa(self, name: str) -> list[str]:
        return await self._get(name, dns.rdatatype.AAAA)

    async def mx(self, name: str) -> list[tuple[int, str]]:
        return await self._get(name, dns.rdatatype.MX)

    async def ptr(self, ip: str) -> list[str]:
        try:
            name = reverse_name(ip)
        except ValueError:
            return []
        return await self._get(name, dns.rdatatype.PTR)

    def remaining_ttl(self, name: str, rtype: str) -> float | None:
        """Seconds the cached answer for (``name``, ``rtype``) stays valid; None if not cached.

        For PTR give the reverse name. Used to bound caches of results derived from answers.
        """
        n = normalize_name(name)
        if n is None:
            return None
        entry = self._cache.get((n, int(dns.rdatatype.from_text(rtype))))
        if entry is None:
            return None
        return max(0.0, entry[0] - self._clock())

    # cache ----------------------------------------------------------------------------------

    async def _get(self, name: str, rdtype: int) -> list[Any]:
        n = normalize_name(name)
        if n is None:
            return []
        key = (n, int(rdtype))
        now = self._clock()
        entry = self._cache.get(key)
        if entry is not None:
            if entry[0] > now:
                self._cache.move_to_end(key)
                self.hits += 1
                return list(entry[1])
            del self._cache[key]
        pending = self._inflight.get(key)
        if pending is not None:
            return list(await asyncio.shield(pending))
        self.misses += 1
        fut: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._inflight[key] = fut
        try:
            values, ttl = await self._query(n, rdtype)
        except BaseException as exc:
            if isinstance(exc, DnsTempError):
                fut.set_exception(exc)
                fut.exception()  # mark retrieved: waiters (if any) re-raise it themselves
            else:
                fut.cancel()
            raise
        finally:
            self._inflight.pop(key, None)
        fut.set_result(values)
        if ttl > 0 and self._cache_size > 0:
            self._cache[key] = (self._clock() + ttl, values)
            self._cache.move_to_end(key)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return list(values)

    async def _query(self, name: str, rdtype: int) -> tuple[list[Any], float]:
        try:
            qname = _query_name(name)
        except (dns.exception.DNSException, UnicodeError):
            return [], self._default_negative_ttl  # not a name DNS can carry: it does not exist
        try:
            answer = await self._resolver.resolve(
                qname,
                dns.rdatatype.RdataType.make(rdtype),
                raise_on_no_answer=False,
                search=False,
                lifetime=self._timeout,
                tcp=self._tcp,
            )
        except dns.resolver.NXDOMAIN as exc:
            return [], self._negative_ttl_of(_nxdomain_responses(exc))
        except dns.resolver.NoNameservers as exc:
            raise DnsTempError(f"no server answered {name}: {exc}") from exc
        except dns.exception.Timeout as exc:
            raise DnsTempError(f"timeout for {name}") from exc
        except (dns.exception.DNSException, OSError) as exc:
            raise DnsTempError(f"DNS error for {name}: {exc}") from exc
        if answer.rrset is None:
            return [], self._negative_ttl_of([answer.response])
        values = [_rdata_value(rd) for rd in answer.rrset]
        return values, min(float(answer.rrset.ttl), self._max_ttl)

    def _negative_ttl_of(self, responses: Sequence[dns.message.Message]) -> float:
        for msg in responses:
            for rrset in msg.authority:
                if rrset.rdtype == dns.rdatatype.SOA and len(rrset):
                    ttl = min(rrset.ttl, rrset[0].minimum)
                    return float(min(ttl, self._max_negative_ttl))
        return self._default_negative_ttl


def _query_name(name: str) -> dns.name.Name:
    """Labels taken literally (``from_text`` would read backslashes as escapes); IDNA otherwise."""
    try:
        labels = [label.encode("ascii") for label in name.split(".")]
    except UnicodeEncodeError:
        return dns.name.from_text(name)
    return dns.name.Name([*labels, b""])


def _nxdomain_responses(exc: dns.resolver.NXDOMAIN) -> list[dns.message.Message]:
    responses = exc.kwargs.get("responses") or {}
    return [r for r in responses.values() if isinstance(r, dns.message.Message)]


def _rdata_value(rd: Any) -> Any:
    rdtype = rd.rdtype
    if rdtype == dns.rdatatype.TXT:
        return list(rd.strings)
    if rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
        return str(rd.address)
    if rdtype == dns.rdatatype.MX:
        exchange = rd.exchange.to_text(omit_final_dot=True).lower()
        return (int(rd.preference), "" if exchange == "." else exchange)
    if rdtype == dns.rdatatype.PTR:
        return rd.target.to_text(omit_final_dot=True).lower()
    return rd.to_text()
