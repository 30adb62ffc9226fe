"""SPF result cache per (client IP, domain, sender, HELO), bounded by the DNS TTLs behind it.

A result is kept no longer than the smallest remaining TTL of every DNS answer its evaluation
read (the resolver's ``remaining_ttl``; a resolver without it — static test data — counts as
``default_ttl``), never longer than ``max_ttl``, and the cache holds at most ``max_entries``
results (least recently used evicted first). ``temperror`` is never cached: it is transient.
The HELO name is part of the key because ``%{h}`` can change the result. The clock is
injected (monotonic seconds).

>>> import asyncio
>>> from streams.auth.dns import StaticResolver
>>> zone = {"a.example": [{"type": "TXT", "value": "v=spf1 ip4:192.0.2.0/24 -all"}]}
>>> cache = SpfCache(clock=lambda: 0.0)
>>> r = asyncio.run(cache.check_host("192.0.2.1", "a.example", "x@a.example", "h",
...                                  StaticResolver(zone)))
>>> r.result, cache.misses, len(cache)
('pass', 1, 1)
"""

from __future__ import annotations

import contextlib
import ipaddress
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from streams.auth.dns import Resolver, reverse_name
from streams.auth.results import SpfResult
from streams.auth.spf import check_host

__all__ = ["SpfCache"]

_Key = tuple[str, str, str, str]


class _TtlTracker:
    """Delegates to a resolver and records the smallest remaining TTL of the answers read."""

    def __init__(self, inner: Resolver, default_ttl: float) -> None:
        self._inner = inner
        self._ttl_of: Callable[[str, str], float | None] | None = getattr(
            inner, "remaining_ttl", None
        )
        self._default_ttl = default_ttl
        self.min_ttl = float("inf")

    def _note(self, name: str, rtype: str) -> None:
        if self._ttl_of is None:
            ttl: float | None = self._default_ttl
        else:
            ttl = self._ttl_of(name, rtype)
        self.min_ttl = min(self.min_ttl, 0.0 if ttl is None else ttl)

    async def txt(self, name: str) -> list[list[bytes]]:
        out = await self._inner.txt(name)
        self._note(name, "TXT")
        return out

    async def a(self, name: str) -> list[str]:
        out = await self._inner.a(name)
        self._note(name, "A")
        return out

    async def aaaa(self, name: str) -> list[str]:
        out = await self._inner.aaaa(name)
        self._note(name, "AAAA")
        return out

    async def mx(self, name: str) -> list[tuple[int, str]]:
        out = await self._inner.mx(name)
        self._note(name, "MX")
        return out

    async def ptr(self, ip: str) -> list[str]:
        out = await self._inner.ptr(ip)
        with contextlib.suppress(ValueError):
            self._note(reverse_name(ip), "PTR")
        return out


class SpfCache:
    """``check_host`` with a TTL- and size-bounded result cache."""

    def __init__(
        self,
        max_entries: int = 10_000,
        *,
        max_ttl: float = 3_600.0,
        default_ttl: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max_entries = max(0, max_entries)
        self._max_ttl = max_ttl
        self._default_ttl = default_ttl
        self._clock = clock
        self._cache: OrderedDict[_Key, tuple[float, SpfResult]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._cache)

    @staticmethod
    def _key(ip: str, domain: str, sender: str, helo: str) -> _Key:
        text = ip.strip().removeprefix("[").removesuffix("]")
        try:
            addr: Any = ipaddress.ip_address(text)
            if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
                addr = addr.ipv4_mapped
            text = str(addr)
        except ValueError:
            pass
        return (text, domain.lower().rstrip("."), sender, helo.lower())

    async def check_host(
        self,
        ip: str,
        domain: str,
        sender: str,
        helo: str,
        resolver: Resolver,
        *,
        now: float | None = None,
    ) -> SpfResult:
        key = self._key(ip, domain, sender, helo)
        entry = self._cache.get(key)
        if entry is not None:
            if entry[0] > self._clock():
                self._cache.move_to_end(key)
                self.hits += 1
                return entry[1]
            del self._cache[key]
        self.misses += 1
        tracker = _TtlTracker(resolver, self._default_ttl)
        result = await check_host(ip, domain, sender, helo, tracker, now=now)
        ttl = min(tracker.min_ttl, self._max_ttl)
        if result.result != "temperror" and ttl > 0 and self._max_entries:
            self._cache[key] = (self._clock() + ttl, result)
            self._cache.move_to_end(key)
            while len(self._cache) > self._max_entries:
                self._cache.popitem(last=False)
        return result
