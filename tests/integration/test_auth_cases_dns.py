"""The SPF conformance suite and the auth cases over real DNS: ``DnsResolver`` talking UDP to a
small authoritative server started by each test (not the embedded demo server), serving the
same zones the unit tests give ``StaticResolver``. TIMEOUT is a dropped query, SERVFAIL RCODE 2.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import ModuleType
from typing import Any

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TXT
import dns.rrset
import pytest
from unit_modules import load_unit_module

from streams.auth.dkim import verify_dkim
from streams.auth.dmarc import evaluate_dmarc
from streams.auth.dns import DnsResolver
from streams.auth.results import SpfResult
from streams.auth.spf import check_host, spf_domain_of

pytestmark = pytest.mark.integration


def _load(name: str) -> ModuleType:
    return load_unit_module(name, "_auth_")


SUITE = _load("test_auth_spf_suite")
CASES = _load("test_auth_cases")


class _ZoneServer(asyncio.DatagramProtocol):
    def __init__(self, zone: dict[str, list[dict[str, Any]]]) -> None:
        self.zone = {k.lower().rstrip("."): v for k, v in zone.items()}
        self.transport: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        query = dns.message.from_wire(data)
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        q = query.question[0]
        rtype = dns.rdatatype.to_text(q.rdtype)
        name = b".".join(q.name.labels[:-1]).decode("latin-1").lower()
        owner = q.name
        for _ in range(9):
            records = self.zone.get(name)
            if records is None:
                response.set_rcode(dns.rcode.NXDOMAIN)
                break
            cname = [r for r in records if r["type"] == "CNAME" and "value" in r]
            if cname and rtype != "CNAME":
                target = dns.name.from_text(cname[0]["value"].rstrip(".") + ".")
                response.answer.append(
                    dns.rrset.from_text(owner, 60, "IN", "CNAME", target.to_text())
                )
                owner = target
                name = b".".join(target.labels[:-1]).decode("latin-1").lower()
                continue
            wanted = [r for r in records if r["type"] == rtype]
            if any(r.get("fault") == "TIMEOUT" for r in wanted):
                return
            if any(r.get("fault") for r in wanted):
                response.set_rcode(dns.rcode.SERVFAIL)
                break
            if wanted:
                response.answer.append(self._rrset(owner, rtype, [r["value"] for r in wanted]))
            break
        else:
            response.set_rcode(dns.rcode.SERVFAIL)  # CNAME loop
        self.transport.sendto(response.to_wire(), addr)

    @staticmethod
    def _rrset(owner: dns.name.Name, rtype: str, values: list[Any]) -> dns.rrset.RRset:
        rrset = dns.rrset.RRset(owner, dns.rdataclass.IN, dns.rdatatype.from_text(rtype))
        for v in values:
            if rtype == "TXT":
                parts = v if isinstance(v, list) else [v]
                strings = [
                    p.encode("latin-1") if all(ord(c) < 256 for c in p) else p.encode()
                    for p in parts
                ] or [b""]
                rd: Any = dns.rdtypes.ANY.TXT.TXT(dns.rdataclass.IN, dns.rdatatype.TXT, strings)
            else:
                text = str(v)
                if rtype in ("MX", "PTR", "CNAME"):
                    text = text.rstrip(".") + "." if not text.endswith(" .") else text
                rd = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.from_text(rtype), text)
            rrset.add(rd, 60)
        return rrset


@pytest.fixture
async def serve() -> AsyncIterator[Any]:
    transports = []

    async def start(zone: dict[str, list[dict[str, Any]]]) -> DnsResolver:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _ZoneServer(zone), local_addr=("127.0.0.1", 0)
        )
        transports.append(transport)
        port = transport.get_extra_info("sockname")[1]
        return DnsResolver(nameservers=["127.0.0.1"], port=port, timeout=0.3)

    yield start
    for t in transports:
        t.close()


@pytest.mark.parametrize(("scenario", "zone", "test"), SUITE.CASES)
async def test_rfc7208_over_dns(scenario: str, zone: Any, test: dict[str, Any], serve: Any) -> None:
    resolver = await serve(zone)
    helo = str(test["helo"])
    sender, domain = spf_domain_of(str(test["mailfrom"]), helo)
    got = await check_host(str(test["host"]), domain, sender, helo, resolver)
    expected = test["result"] if isinstance(test["result"], list) else [test["result"]]
    assert got.result in expected, scenario


@pytest.mark.parametrize("case", [pytest.param(c, id=c["id"]) for c in CASES.CASES])
async def test_auth_case_over_dns(case: dict[str, Any], serve: Any) -> None:
    resolver = await serve(case["dns"])
    raw = CASES.raw_message(case)
    expect = case["expect"]
    spf = SpfResult("none", "")
    if "envelope" in case:
        env = case["envelope"]
        sender, domain = spf_domain_of(env["mail_from"], env["helo"])
        spf = await check_host(env["client_ip"], domain, sender, env["helo"], resolver)
        if "spf" in expect:
            assert spf.result in CASES._acceptable(expect["spf"])
    dkim = await verify_dkim(raw, resolver, now=case.get("now"))
    if "dkim" in expect:
        assert [r.result for r in dkim] == [CASES._acceptable(w)[0] for w in expect["dkim"]]
    if "dmarc" in expect:
        got = await evaluate_dmarc(
            raw, spf, dkim, resolver, public_suffixes=CASES.SUFFIXES, mode="rfc7489"
        )
        assert got.result in CASES._acceptable(expect["dmarc"]["result"])
        for key in ("policy", "author_domain", "policy_domain"):
            if key in expect["dmarc"]:
                assert getattr(got, key) == expect["dmarc"][key]
