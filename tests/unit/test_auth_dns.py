"""DnsResolver against a tiny in-test UDP DNS server, and StaticResolver semantics."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest

from streams.auth.dns import DnsResolver, DnsTempError, Resolver, StaticResolver

# --------------------------------------------------------------------------- tiny server


@dataclass
class _Zone:
    """name -> {rdtype text: (ttl, [rdata text])}; special behaviours per name."""

    records: dict[str, dict[str, tuple[int, list[str]]]] = field(default_factory=dict)
    servfail: set[str] = field(default_factory=set)
    drop: set[str] = field(default_factory=set)
    soa_minimum: int = 30
    queries: list[tuple[str, str]] = field(default_factory=list)


class _Server(asyncio.DatagramProtocol):
    def __init__(self, zone: _Zone) -> None:
        self.zone = zone
        self.transport: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        query = dns.message.from_wire(data)
        q = query.question[0]
        name = q.name.to_text(omit_final_dot=True).lower()
        rtype = dns.rdatatype.to_text(q.rdtype)
        self.zone.queries.append((name, rtype))
        if name in self.zone.drop:
            return
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        if name in self.zone.servfail:
            response.set_rcode(dns.rcode.SERVFAIL)
        elif name not in self.zone.records:
            response.set_rcode(dns.rcode.NXDOMAIN)
            response.authority.append(self._soa())
        elif rtype in self.zone.records[name]:
            ttl, values = self.zone.records[name][rtype]
            response.answer.append(
                dns.rrset.from_text_list(q.name, ttl, dns.rdataclass.IN, q.rdtype, values)
            )
        else:
            response.authority.append(self._soa())
        assert self.transport is not None
        self.transport.sendto(response.to_wire(), addr)

    def _soa(self) -> dns.rrset.RRset:
        return dns.rrset.from_text(
            "example.",
            3600,
            "IN",
            "SOA",
            f"ns.example. host.example. 1 3600 600 86400 {self.zone.soa_minimum}",
        )


class _Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
async def server() -> AsyncIterator[tuple[_Zone, int]]:
    zone = _Zone(
        records={
            "northwind.example": {
                "TXT": (300, ['"v=spf1 include:_spf.relay.example" " -all"']),
                "MX": (300, ["10 mx1.northwind.example.", "0 ."]),
            },
            "mx1.northwind.example": {"A": (60, ["192.0.2.25"]), "AAAA": (60, ["2001:db8::25"])},
            "25.2.0.192.in-addr.arpa": {"PTR": (60, ["mx1.northwind.example."])},
            "zero.example": {"A": (0, ["192.0.2.99"])},
        },
        servfail={"broken.example"},
        drop={"slow.example"},
    )
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        lambda: _Server(zone), local_addr=("127.0.0.1", 0)
    )
    port = transport.get_extra_info("sockname")[1]
    try:
        yield zone, port
    finally:
        transport.close()


def _resolver(port: int, clock: _Clock | None = None, **kw: Any) -> DnsResolver:
    return DnsResolver(
        nameservers=["127.0.0.1"], port=port, timeout=0.5, clock=clock or _Clock(), **kw
    )


# --------------------------------------------------------------------------- DnsResolver


async def test_answers_of_each_type(server: tuple[_Zone, int]) -> None:
    _, port = server
    r = _resolver(port)
    assert isinstance(r, Resolver)
    assert await r.txt("northwind.example") == [[b"v=spf1 include:_spf.relay.example", b" -all"]]
    assert await r.a("mx1.northwind.example") == ["192.0.2.25"]
    assert await r.aaaa("MX1.northwind.example.") == ["2001:db8::25"]
    assert sorted(await r.mx("northwind.example")) == [(0, ""), (10, "mx1.northwind.example")]
    assert await r.ptr("192.0.2.25") == ["mx1.northwind.example"]


async def test_cache_hit_until_ttl_expires(server: tuple[_Zone, int]) -> None:
    zone, port = server
    clock = _Clock()
    r = _resolver(port, clock)
    for _ in range(3):
        assert await r.a("mx1.northwind.example") == ["192.0.2.25"]
    assert zone.queries.count(("mx1.northwind.example", "A")) == 1
    assert (r.hits, r.misses) == (2, 1)
    clock.t += 59
    await r.a("mx1.northwind.example")
    assert zone.queries.count(("mx1.northwind.example", "A")) == 1
    clock.t += 2  # past the 60 s TTL
    await r.a("mx1.northwind.example")
    assert zone.queries.count(("mx1.northwind.example", "A")) == 2


async def test_ttl_zero_is_not_cached(server: tuple[_Zone, int]) -> None:
    zone, port = server
    r = _resolver(port)
    await r.a("zero.example")
    await r.a("zero.example")
    assert zone.queries.count(("zero.example", "A")) == 2


async def test_negative_answers_are_cached_for_the_soa_minimum(server: tuple[_Zone, int]) -> None:
    zone, port = server
    clock = _Clock()
    r = _resolver(port, clock)
    assert await r.txt("nosuch.example") == []  # NXDOMAIN
    assert await r.txt("mx1.northwind.example") == []  # NODATA
    assert await r.txt("nosuch.example") == []
    assert await r.txt("mx1.northwind.example") == []
    assert zone.queries.count(("nosuch.example", "TXT")) == 1
    assert zone.queries.count(("mx1.northwind.example", "TXT")) == 1
    clock.t += zone.soa_minimum + 1
    await r.txt("nosuch.example")
    assert zone.queries.count(("nosuch.example", "TXT")) == 2


async def test_cache_is_bounded_lru(server: tuple[_Zone, int]) -> None:
    zone, port = server
    r = _resolver(port, cache_size=2)
    await r.a("mx1.northwind.example")
    await r.txt("northwind.example")
    await r.a("mx1.northwind.example")  # refresh: now most recently used
    await r.mx("northwind.example")  # evicts the TXT entry
    assert len(r) == 2
    await r.a("mx1.northwind.example")
    await r.txt("northwind.example")
    assert zone.queries.count(("mx1.northwind.example", "A")) == 1
    assert zone.queries.count(("northwind.example", "TXT")) == 2


async def test_servfail_and_timeout_are_temporary_and_not_cached(
    server: tuple[_Zone, int],
) -> None:
    zone, port = server
    r = _resolver(port)
    for name in ("broken.example", "slow.example"):
        with pytest.raises(DnsTempError):
            await r.txt(name)
    with pytest.raises(DnsTempError):
        await r.txt("broken.example")
    assert zone.queries.count(("broken.example", "TXT")) >= 2
    assert len(r) == 0


async def test_concurrent_identical_queries_share_one_upstream_query(
    server: tuple[_Zone, int],
) -> None:
    zone, port = server
    r = _resolver(port)
    got = await asyncio.gather(*(r.a("mx1.northwind.example") for _ in range(5)))
    assert got == [["192.0.2.25"]] * 5
    assert zone.queries.count(("mx1.northwind.example", "A")) == 1


async def test_unqueryable_names_do_not_exist(server: tuple[_Zone, int]) -> None:
    zone, port = server
    r = _resolver(port)
    assert await r.a("a..example") == []
    assert await r.a("x" * 64 + ".example") == []
    assert await r.ptr("not-an-ip") == []
    assert zone.queries == []


# --------------------------------------------------------------------------- StaticResolver


async def test_static_resolver_semantics() -> None:
    r = StaticResolver(
        {
            "Example.com": [
                {"type": "TXT", "value": ["a", "b"]},
                {"type": "MX", "value": "10 MX1.example.com."},
                {"type": "A", "fault": "SERVFAIL"},
            ],
            "slow.example.com": [{"type": "TXT", "fault": "TIMEOUT"}],
            "alias.example.com": [{"type": "CNAME", "value": "example.com"}],
            "loop.example.com": [{"type": "CNAME", "value": "loop.example.com"}],
            "4.3.2.1.in-addr.arpa": [{"type": "PTR", "value": "Host.example.com."}],
        }
    )
    assert await r.txt("example.com") == [[b"a", b"b"]]
    assert await r.txt("alias.example.com") == [[b"a", b"b"]]
    assert await r.mx("example.com") == [(10, "mx1.example.com")]
    assert await r.aaaa("example.com") == []  # NODATA
    assert await r.txt("nosuch.example.com") == []  # NXDOMAIN
    assert await r.ptr("1.2.3.4") == ["host.example.com"]
    for coro in (r.a("example.com"), r.txt("slow.example.com"), r.a("loop.example.com")):
        with pytest.raises(DnsTempError):
            await coro
    assert ("slow.example.com", "TXT") in r.queries
