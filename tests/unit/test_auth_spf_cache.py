"""SPF result cache: TTL-bounded by the answers behind each result, size-bounded, injected clock."""

from __future__ import annotations

from typing import Any

from streams.auth.dns import StaticResolver, normalize_name
from streams.auth.spf_cache import SpfCache

ZONE: dict[str, Any] = {
    "a.example": [{"type": "TXT", "value": "v=spf1 include:_spf.relay.example -all"}],
    "_spf.relay.example": [{"type": "TXT", "value": "v=spf1 ip4:192.0.2.0/24 -all"}],
    "b.example": [{"type": "TXT", "value": "v=spf1 -all"}],
    "t.example": [{"type": "TXT", "fault": "TIMEOUT"}],
    "m.example": [{"type": "TXT", "value": "v=spf1 exists:%{h}.allow.example -all"}],
    "good.allow.example": [{"type": "A", "value": "127.0.0.2"}],
}


class TtlResolver(StaticResolver):
    """StaticResolver whose answers have TTLs counting down on a shared fake clock."""

    def __init__(self, zone: dict[str, Any], ttls: dict[str, float], clock: list[float]) -> None:
        super().__init__(zone)
        self._ttls, self._clock = ttls, clock
        self._fetched: dict[tuple[str | None, str], float] = {}
        self.default = 600.0

    async def _lookup(self, name: str, rtype: str) -> list[Any]:
        self._fetched[(normalize_name(name), rtype)] = self._clock[0]
        return await super()._lookup(name, rtype)

    def remaining_ttl(self, name: str, rtype: str) -> float | None:
        at = self._fetched.get((normalize_name(name), rtype))
        if at is None:
            return None
        ttl = self._ttls.get(str(normalize_name(name)), self.default)
        return max(0.0, ttl - (self._clock[0] - at))


def _cache(clock: list[float], **kw: Any) -> SpfCache:
    return SpfCache(clock=lambda: clock[0], **kw)


async def test_hit_until_the_smallest_ttl_of_the_chain_expires() -> None:
    clock = [1000.0]
    resolver = TtlResolver(ZONE, {"a.example": 300, "_spf.relay.example": 60}, clock)
    cache = _cache(clock)
    args = ("192.0.2.7", "a.example", "x@a.example", "mta.example", resolver)
    assert (await cache.check_host(*args)).result == "pass"
    n = len(resolver.queries)
    clock[0] += 59
    assert (await cache.check_host(*args)).result == "pass"
    assert (len(resolver.queries), cache.hits, cache.misses) == (n, 1, 1)
    clock[0] += 2  # past the include's 60 s TTL, though a.example's 300 s has not run out
    assert (await cache.check_host(*args)).result == "pass"
    assert len(resolver.queries) > n and cache.misses == 2


async def test_max_ttl_bounds_long_ttls() -> None:
    clock = [0.0]
    resolver = TtlResolver(ZONE, {"b.example": 86_400}, clock)
    cache = _cache(clock, max_ttl=10)
    args = ("192.0.2.7", "b.example", "x@b.example", "h", resolver)
    await cache.check_host(*args)
    clock[0] = 11
    await cache.check_host(*args)
    assert cache.misses == 2


async def test_key_is_ip_domain_sender_and_helo() -> None:
    clock = [0.0]
    cache = _cache(clock)
    resolver = TtlResolver(ZONE, {}, clock)
    await cache.check_host("192.0.2.7", "a.example", "x@a.example", "h", resolver)
    await cache.check_host("::ffff:192.0.2.7", "A.Example.", "x@a.example", "H", resolver)
    assert (cache.hits, cache.misses) == (1, 1)  # IPv4-mapped = IPv4; names case-insensitive
    await cache.check_host("192.0.2.8", "a.example", "x@a.example", "h", resolver)
    await cache.check_host("192.0.2.7", "a.example", "y@a.example", "h", resolver)
    await cache.check_host("192.0.2.7", "b.example", "x@a.example", "h", resolver)
    assert cache.misses == 4


async def test_helo_macro_results_are_not_shared_across_helo_names() -> None:
    clock = [0.0]
    cache = _cache(clock)
    resolver = TtlResolver(ZONE, {}, clock)
    ok = await cache.check_host("192.0.2.7", "m.example", "x@m.example", "good", resolver)
    bad = await cache.check_host("192.0.2.7", "m.example", "x@m.example", "bad", resolver)
    assert (ok.result, bad.result) == ("pass", "fail")


async def test_temperror_is_never_cached() -> None:
    clock = [0.0]
    cache = _cache(clock)
    resolver = TtlResolver(ZONE, {}, clock)
    for _ in range(3):
        got = await cache.check_host("192.0.2.7", "t.example", "x@t.example", "h", resolver)
        assert got.result == "temperror"
    assert (len(cache), cache.misses) == (0, 3)


async def test_uncached_answer_means_uncached_result() -> None:
    clock = [0.0]
    resolver = TtlResolver(ZONE, {"b.example": 0}, clock)
    cache = _cache(clock)
    await cache.check_host("192.0.2.7", "b.example", "x@b.example", "h", resolver)
    assert len(cache) == 0


async def test_size_bound_evicts_least_recently_used() -> None:
    clock = [0.0]
    resolver = TtlResolver(ZONE, {}, clock)
    cache = _cache(clock, max_entries=2)
    for ip in ("192.0.2.1", "192.0.2.2", "192.0.2.1", "192.0.2.3"):
        await cache.check_host(ip, "b.example", "x@b.example", "h", resolver)
    assert len(cache) == 2
    await cache.check_host("192.0.2.1", "b.example", "x@b.example", "h", resolver)
    assert cache.hits == 2  # .1 was used recently, so .2 was evicted
    await cache.check_host("192.0.2.2", "b.example", "x@b.example", "h", resolver)
    assert cache.misses == 4


async def test_resolver_without_ttls_uses_default_ttl() -> None:
    clock = [0.0]
    cache = _cache(clock, default_ttl=30)
    resolver = StaticResolver(ZONE)
    args = ("192.0.2.7", "b.example", "x@b.example", "h", resolver)
    await cache.check_host(*args)
    clock[0] = 29
    await cache.check_host(*args)
    clock[0] = 31
    await cache.check_host(*args)
    assert (cache.hits, cache.misses) == (1, 2)
