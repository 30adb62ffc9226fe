"""check_host() behaviour the conformance suite does not pin down."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from streams.auth.dns import DnsTempError, StaticResolver
from streams.auth.results import SpfResult
from streams.auth.spf import check_host, spf_domain_of

DEMO = {
    "northwind.example": [{"type": "TXT", "value": "v=spf1 include:_spf.relay.example -all"}],
    "_spf.relay.example": [{"type": "TXT", "value": "v=spf1 ip4:192.0.2.0/24 -all"}],
}


async def _spf(
    ip: str, mail_from: str, zone: dict[str, Any], helo: str = "mta.relay.example"
) -> Any:
    sender, domain = spf_domain_of(mail_from, helo)
    return await check_host(ip, domain, sender, helo, StaticResolver(zone))


@pytest.mark.parametrize(
    ("ip", "want"),
    [
        ("192.0.2.44", "pass"),
        ("::ffff:192.0.2.44", "pass"),
        ("198.51.100.1", "fail"),
        ("2001:db8::1", "fail"),
    ],
)
async def test_demo_zone(ip: str, want: str) -> None:
    got = await _spf(ip, "bounce@northwind.example", DEMO)
    assert got == SpfResult(want, "northwind.example", "")


async def test_empty_mail_from_checks_postmaster_at_helo() -> None:
    zone = {
        "mta.relay.example": [{"type": "TXT", "value": "v=spf1 exists:%{l}.%{d} -all"}],
        "postmaster.mta.relay.example": [{"type": "A", "value": "127.0.0.2"}],
    }
    got = await _spf("192.0.2.1", "", zone)
    assert (got.result, got.domain) == ("pass", "mta.relay.example")


async def test_ipv6_reverse_nibbles_macro() -> None:
    name = (
        "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6._spf.northwind.example"
    )
    zone = {
        "northwind.example": [{"type": "TXT", "value": "v=spf1 exists:%{ir}.%{v}._spf.%{d} -all"}],
        name: [{"type": "A", "value": "127.0.0.2"}],
    }
    assert (await _spf("2001:db8::1", "a@northwind.example", zone)).result == "pass"
    assert (await _spf("2001:db8::2", "a@northwind.example", zone)).result == "fail"


@pytest.mark.parametrize(
    "faulty",
    [
        {"_spf.relay.example": [{"type": "TXT", "fault": "TIMEOUT"}]},
        {"_spf.relay.example": [{"type": "TXT", "fault": "SERVFAIL"}]},
    ],
)
async def test_dns_trouble_is_temperror_never_fail(faulty: dict[str, Any]) -> None:
    zone = {**DEMO, **faulty}
    assert (await _spf("198.51.100.1", "a@northwind.example", zone)).result == "temperror"


async def test_void_lookups_do_not_include_mx_host_addresses() -> None:
    # Three MX hosts without AAAA for an IPv6 client: one term, no void lookup (pyspf counts 3).
    zone = {
        "northwind.example": [
            {"type": "TXT", "value": "v=spf1 mx ?all"},
            {"type": "MX", "value": "10 a.northwind.example"},
            {"type": "MX", "value": "20 b.northwind.example"},
            {"type": "MX", "value": "30 c.northwind.example"},
        ],
        **{f"{h}.northwind.example": [{"type": "A", "value": "192.0.2.9"}] for h in "abc"},
    }
    assert (await _spf("2001:db8::1", "a@northwind.example", zone)).result == "neutral"


async def test_does_not_block_the_event_loop() -> None:
    class SlowResolver(StaticResolver):
        async def txt(self, name: str) -> list[list[bytes]]:
            await asyncio.sleep(0.05)
            return await super().txt(name)

    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.005)

    task = asyncio.create_task(ticker())
    got = await check_host(
        "192.0.2.1", "northwind.example", "a@northwind.example", "h", SlowResolver(DEMO)
    )
    task.cancel()
    assert got.result == "pass"
    assert ticks >= 10


async def test_invalid_client_ip_is_permerror_not_an_exception() -> None:
    got = await check_host(
        "not-an-ip", "northwind.example", "a@northwind.example", "h", StaticResolver(DEMO)
    )
    assert got.result == "permerror"


def test_dns_temp_error_is_an_exception() -> None:
    assert issubclass(DnsTempError, Exception)
