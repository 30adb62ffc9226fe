"""Auth over the embedded DNS server (``streams.embedded.dns_server``, UDP and TCP) with faults.

* The RFC 7208 suite over the real server, through ``DnsResolver`` over UDP and over TCP only
  (``test_auth_cases_dns.py`` covers UDP against a small test server; this one uses the
  project's own server, its RCODEs, SOA-bearing negative answers and its TCP listener).
* Injected timeouts and SERVFAIL give ``temperror`` for SPF, DKIM and DMARC — never ``fail``
  or ``permerror`` — both on targeted lookups and on a random share of every auth case's lookups.
* Injected NXDOMAIN is an answer, not a transient fault: never ``temperror``, and every result
  equals the one for the same zone without the denied records.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from types import ModuleType
from typing import Any

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TXT
import dns.zone
import pytest
from unit_modules import load_unit_module

from streams.auth.check import authenticate
from streams.auth.dkim import verify_dkim
from streams.auth.dmarc import evaluate_dmarc
from streams.auth.dns import DnsResolver, StaticResolver
from streams.auth.results import SpfResult
from streams.auth.spf import check_host, spf_domain_of
from streams.embedded.dns_server import DnsServer, serve
from streams.embedded.procs import LOOPBACK, free_port

pytestmark = pytest.mark.integration


def _load(name: str) -> ModuleType:
    return load_unit_module(name, "_faults_")


SUITE = _load("test_auth_spf_suite")
CASES = _load("test_auth_cases")
DKIM = _load("test_auth_dkim")

Zone = dict[str, list[dict[str, Any]]]
Faults = dict[tuple[str, str], str]


def _owner(name: str) -> dns.name.Name | None:
    try:
        return dns.name.Name([lbl.encode("latin-1") for lbl in name.split(".")] + [b""])
    except (dns.name.NameTooLong, dns.name.LabelTooLong, dns.name.EmptyLabel, UnicodeError):
        return None


def _rdata(rtype: str, value: Any) -> Any:
    if rtype == "TXT":
        parts = value if isinstance(value, list) else [value]
        octets = [
            p.encode("latin-1") if all(ord(c) < 256 for c in p) else p.encode() for p in parts
        ]  # a string longer than DNS allows is served as 255-octet character-strings
        strings = [o[i : i + 255] for o in octets for i in range(0, max(len(o), 1), 255)] or [b""]
        return dns.rdtypes.ANY.TXT.TXT(dns.rdataclass.IN, dns.rdatatype.TXT, strings)
    text = str(value)
    if rtype in ("MX", "PTR", "CNAME") and not text.endswith(" ."):
        text = text.rstrip(".") + "."
    return dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.from_text(rtype), text)


def _zone_and_faults(zone: Zone, extra: Faults | None = None) -> tuple[dns.zone.Zone, Faults]:
    """A root zone holding the test records (SOA at the root for negative answers)."""
    z = dns.zone.Zone(dns.name.root, relativize=False)
    soa = dns.rdata.from_text("IN", "SOA", "ns.invalid. hostmaster.invalid. 1 3600 600 86400 60")
    z.find_rdataset(dns.name.root, dns.rdatatype.SOA, create=True).add(soa, 60)
    faults: Faults = dict(extra or {})
    for name, records in zone.items():
        owner = _owner(name.lower().rstrip("."))
        if owner is None:
            continue
        node = z.find_node(owner, create=True)
        for r in records:
            rtype = str(r["type"]).upper()
            if "fault" in r:
                faults[(name, rtype)] = str(r["fault"]).lower()
                continue
            rds = node.find_rdataset(dns.rdataclass.IN, dns.rdatatype.from_text(rtype), create=True)
            rds.add(_rdata(rtype, r["value"]), 60)
    return z, faults


@pytest.fixture
async def real_dns() -> AsyncIterator[Any]:
    """``start(zone, faults, tcp=...)`` → a ``DnsResolver`` talking to a fresh embedded server."""
    handles: list[Any] = []

    async def start(
        zone: Zone, faults: Faults | None = None, *, tcp: bool = False, timeout: float = 0.3
    ) -> DnsResolver:
        z, all_faults = _zone_and_faults(zone, faults)
        server = DnsServer({dns.name.root: z}, all_faults)  # type: ignore[arg-type]
        port = free_port("both")
        handles.extend(await serve(server, LOOPBACK, port))
        return DnsResolver(nameservers=[LOOPBACK], port=port, timeout=timeout, tcp=tcp)

    yield start
    for h in handles:
        h.close()


# --------------------------------------------------------------------------- the SPF suite


@pytest.mark.parametrize("transport", ["udp", "tcp"])
@pytest.mark.parametrize(("scenario", "zone", "test"), SUITE.CASES)
async def test_rfc7208_over_embedded_server(
    scenario: str, zone: Zone, test: dict[str, Any], transport: str, real_dns: Any
) -> None:
    resolver = await real_dns(zone, tcp=transport == "tcp")
    helo = str(test["helo"])
    sender, domain = spf_domain_of(str(test["mailfrom"]), helo)
    got = await check_host(str(test["host"]), domain, sender, helo, resolver)
    expected = test["result"] if isinstance(test["result"], list) else [test["result"]]
    assert got.result in expected, f"{scenario}: {test.get('description', '')}"


# --------------------------------------------------------------------------- targeted faults

SPF_ZONE: Zone = {
    "northwind.example": [
        {
            "type": "TXT",
            "value": "v=spf1 a:web.northwind.example mx include:_spf.relay.example -all",
        },
        {"type": "MX", "value": "10 mx.northwind.example"},
    ],
    "web.northwind.example": [{"type": "A", "value": "198.51.100.1"}],
    "mx.northwind.example": [{"type": "A", "value": "198.51.100.2"}],
    "_spf.relay.example": [{"type": "TXT", "value": "v=spf1 ip4:192.0.2.0/24 -all"}],
}


@pytest.mark.parametrize("kind", ["timeout", "servfail"])
@pytest.mark.parametrize(
    "fault",
    [
        ("northwind.example", "TXT"),
        ("web.northwind.example", "A"),
        ("northwind.example", "MX"),
        ("mx.northwind.example", "A"),
        ("_spf.relay.example", "TXT"),
    ],
)
async def test_spf_fault_is_temperror(fault: tuple[str, str], kind: str, real_dns: Any) -> None:
    for transport in (False, True):
        clean = await real_dns(SPF_ZONE, tcp=transport)
        ok = await check_host("192.0.2.9", "northwind.example", "a@northwind.example", "h", clean)
        assert ok.result == "pass"
        resolver = await real_dns(SPF_ZONE, {fault: kind}, tcp=transport)
        got = await check_host(
            "192.0.2.9", "northwind.example", "a@northwind.example", "h", resolver
        )
        assert got.result == "temperror"


def _dkim_zone() -> Zone:
    return {
        **DKIM._zone(),
        "_dmarc.northwind.example": [{"type": "TXT", "value": "v=DMARC1; p=reject"}],
    }


@pytest.mark.parametrize("kind", ["timeout", "servfail"])
@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_dkim_key_fault_is_temperror(kind: str, transport: str, real_dns: Any) -> None:
    raw = DKIM.sign(DKIM.MESSAGE)
    clean = await real_dns(_dkim_zone(), tcp=transport == "tcp")
    assert [r.result for r in await verify_dkim(raw, clean, now=DKIM.NOW)] == ["pass"]
    faults = {("s1._domainkey.northwind.example", "TXT"): kind}
    resolver = await real_dns(_dkim_zone(), faults, tcp=transport == "tcp")
    assert [r.result for r in await verify_dkim(raw, resolver, now=DKIM.NOW)] == ["temperror"]
    # and DMARC, which would pass on that signature, does not "fail" (p=reject) because of it
    dkim = await verify_dkim(raw, resolver, now=DKIM.NOW)
    got = await evaluate_dmarc(raw, SpfResult("none", ""), dkim, resolver)
    assert got.result == "temperror"


@pytest.mark.parametrize("kind", ["timeout", "servfail"])
@pytest.mark.parametrize("mode", ["rfc9989", "rfc7489"])
@pytest.mark.parametrize(
    ("author", "faulted"),
    [
        ("northwind.example", "_dmarc.northwind.example"),
        ("news.northwind.example", "_dmarc.news.northwind.example"),
        ("news.northwind.example", "_dmarc.northwind.example"),
    ],
)
async def test_dmarc_fault_is_temperror(
    author: str, faulted: str, mode: str, kind: str, real_dns: Any
) -> None:
    raw = DKIM.MESSAGE.replace(b"alice@northwind.example", f"alice@{author}".encode())
    zone = {"_dmarc.northwind.example": [{"type": "TXT", "value": "v=DMARC1; p=reject"}]}
    clean = await real_dns(zone)
    ok = await evaluate_dmarc(raw, SpfResult("none", ""), (), clean, mode=mode)  # type: ignore[arg-type]
    assert (ok.result, ok.policy) == ("fail", "reject")
    resolver = await real_dns(zone, {(faulted, "TXT"): kind})
    got = await evaluate_dmarc(raw, SpfResult("none", ""), (), resolver, mode=mode)  # type: ignore[arg-type]
    assert got.result == "temperror"


# --------------------------------------------------------------------------- random share


def _acceptable(value: Any) -> list[str]:
    return [str(v) for v in CASES._acceptable(value)]


@pytest.mark.parametrize("kind", ["timeout", "servfail"])
@pytest.mark.parametrize("case", [c for c in CASES.CASES if "envelope" in c], ids=lambda c: c["id"])
async def test_random_faults_only_ever_add_temperror(
    case: dict[str, Any], kind: str, real_dns: Any
) -> None:
    """A third of the lookups a case makes fail transiently: every result is the expected one
    or ``temperror`` — a transient fault never produces fail, softfail or permerror."""
    env, expect, raw = case["envelope"], case["expect"], CASES.raw_message(case)

    async def run(resolver: Any) -> Any:
        return await authenticate(
            raw=raw,
            client_ip=env["client_ip"],
            helo=env["helo"],
            mail_from=env["mail_from"],
            resolver=resolver,
            now=case.get("now"),
            public_suffixes=CASES.SUFFIXES,
            dmarc_mode="rfc7489",
        )

    probe = StaticResolver(case["dns"])
    await run(probe)
    asked = sorted({(n.lower().rstrip("."), t) for n, t in probe.queries if _owner(n)})
    rng = random.Random(f"{case['id']}-{kind}")
    for _ in range(2):
        chosen = [q for q in asked if rng.random() < 1 / 3] or asked[:1]
        resolver = await real_dns(case["dns"], dict.fromkeys(chosen, kind), timeout=0.2)
        got = await run(resolver)
        spf_domain = spf_domain_of(env["mail_from"], env["helo"])[1].lower()
        if (spf_domain, "TXT") in chosen:  # the faults are live: the first lookup failed
            assert got.spf.result == "temperror"
        if "spf" in expect:
            assert got.spf.result in [*_acceptable(expect["spf"]), "temperror"], chosen
        if "dkim" in expect:
            assert len(got.dkim) == len(expect["dkim"])
            for r, want in zip(got.dkim, expect["dkim"], strict=True):
                assert r.result in [*_acceptable(want), "temperror"], chosen
        if "dmarc" in expect:
            allowed = [*_acceptable(expect["dmarc"]["result"]), "temperror"]
            assert got.dmarc.result in allowed, chosen


def _without(zone: Zone, denied: list[tuple[str, str]]) -> Zone:
    """``zone`` minus the records an NXDOMAIN fault denies (what an authoritative no means)."""
    gone = set(denied)
    return {
        name: [r for r in records if (name.lower().rstrip("."), str(r["type"]).upper()) not in gone]
        for name, records in zone.items()
    }


def _summary(result: Any) -> tuple[Any, ...]:
    return (
        result.spf.result,
        tuple(r.result for r in result.dkim),
        result.dmarc.result,
        result.dmarc.policy,
    )


@pytest.mark.parametrize("case", [c for c in CASES.CASES if "envelope" in c], ids=lambda c: c["id"])
async def test_random_nxdomain_is_an_answer_not_a_temperror(
    case: dict[str, Any], real_dns: Any
) -> None:
    """A third of a case's lookups answered NXDOMAIN give exactly the results of a zone without
    those records (RFC 7208 §4.6.4 counts both as void; DKIM/DMARC see "no record") — and no
    ``temperror`` that the clean zone would not give."""
    env, raw = case["envelope"], CASES.raw_message(case)

    async def run(resolver: Any) -> Any:
        return await authenticate(
            raw=raw,
            client_ip=env["client_ip"],
            helo=env["helo"],
            mail_from=env["mail_from"],
            resolver=resolver,
            now=case.get("now"),
            public_suffixes=CASES.SUFFIXES,
            dmarc_mode="rfc7489",
        )

    faulted = {
        (n.lower().rstrip("."), str(r["type"]).upper())
        for n, records in case["dns"].items()
        for r in records
        if "fault" in r
    }  # the case's own transient faults stay as they are
    probe = StaticResolver(case["dns"])
    await run(probe)
    asked = sorted(
        {(n.lower().rstrip("."), t) for n, t in probe.queries if _owner(n)} - faulted
    )
    if not asked:
        pytest.skip("every lookup of this case is already a transient fault")
    rng = random.Random(f"{case['id']}-nxdomain")
    for _ in range(2):
        chosen = [q for q in asked if rng.random() < 1 / 3] or asked[:1]
        denied = await run(await real_dns(case["dns"], dict.fromkeys(chosen, "nxdomain")))
        absent = await run(await real_dns(_without(case["dns"], chosen)))
        assert _summary(denied) == _summary(absent), chosen
        if not faulted:
            assert "temperror" not in _summary(denied), chosen


# --------------------------------------------------------------------------- SPF cache, real TTLs


async def test_spf_cache_follows_the_resolvers_ttls(real_dns: Any) -> None:
    """Every record is served with TTL 60: the cached result lives 60 s on the shared clock."""
    from streams.auth.spf_cache import SpfCache

    clock = [0.0]
    served = await real_dns(SPF_ZONE)
    resolver = DnsResolver(
        nameservers=[LOOPBACK], port=served._resolver.port, timeout=0.3, clock=lambda: clock[0]
    )
    cache = SpfCache(clock=lambda: clock[0])
    args = ("192.0.2.9", "northwind.example", "a@northwind.example", "h", resolver)
    assert resolver.remaining_ttl("northwind.example", "TXT") is None
    assert (await cache.check_host(*args)).result == "pass"
    assert resolver.remaining_ttl("northwind.example", "TXT") == 60
    clock[0] = 59
    assert (await cache.check_host(*args)).result == "pass"
    assert (cache.hits, cache.misses) == (1, 1)
    clock[0] = 61
    assert (await cache.check_host(*args)).result == "pass"
    assert cache.misses == 2
