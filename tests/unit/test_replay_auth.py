"""The replay's messages authenticate (or fail) against the demo zone files as each label says.

DKIM is checked with dkimpy and a ``dnsfunc`` that answers from the zone files through
dnspython; SPF with a minimal evaluator covering the terms the demo zones use (``ip4``,
``include``, ``all``).
"""

from __future__ import annotations

import email.utils
import ipaddress
from collections.abc import Callable
from pathlib import Path

import dkim
import dns.rdatatype
import dns.zone
import pytest
from replay_tool import load_build_tool

from streams.replay.events import (
    COMPROMISED,
    LEGIT,
    SPOOF_BAD_DKIM,
    SPOOF_UNAUTHORISED_IP,
    ReplayItem,
    decode_event,
    load_replay,
    raw_message,
)

ROOT = Path(__file__).resolve().parents[2]
ZONES = ROOT / "streams" / "embedded" / "zones"
PER_DOMAIN = 40  # legit messages verified per signing domain (dkimpy is pure Python)


def _enable_ed25519() -> None:
    """dkimpy needs PyNaCl for Ed25519; the builder's cryptography-backed stand-in replaces it."""
    load_build_tool().ensure_ed25519_support()


class ZoneResolver:
    def __init__(self, directory: Path) -> None:
        self.zones = {p.name[: -len(".zone")]: dns.zone.from_file(str(p), p.name[: -len(".zone")],
                                                                   relativize=False)
                      for p in directory.glob("*.zone")}

    def txt(self, name: str) -> list[str]:
        name = name.rstrip(".").lower()
        for origin, zone in self.zones.items():
            if name == origin or name.endswith("." + origin):
                rdataset = zone.get_rdataset(name + ".", dns.rdatatype.TXT)
                return [b"".join(r.strings).decode() for r in rdataset or []]
        return []

    def dnsfunc(self) -> Callable[..., bytes | None]:
        def get_txt(name: bytes, timeout: float = 5) -> bytes | None:
            records = self.txt(name.decode())
            return records[0].encode() if records else None
        return get_txt

    def spf(self, ip: str, domain: str, depth: int = 0) -> str:
        records = [r for r in self.txt(domain) if r.startswith("v=spf1 ")]
        if len(records) != 1 or depth > 10:
            return "permerror" if records else "none"
        results = {"+": "pass", "-": "fail", "~": "softfail", "?": "neutral"}
        for term in records[0].split()[1:]:
            qualifier = "+"
            if term[0] in results:
                qualifier, term = term[0], term[1:]
            if term == "all":
                return results[qualifier]
            if term.startswith("ip4:"):
                if ipaddress.ip_address(ip) in ipaddress.ip_network(term[4:]):
                    return results[qualifier]
            elif term.startswith("include:"):
                if self.spf(ip, term[8:], depth + 1) == "pass":
                    return results[qualifier]
            else:
                return "permerror"
        return "neutral"


@pytest.fixture(scope="module")
def resolver() -> ZoneResolver:
    _enable_ed25519()
    return ZoneResolver(ZONES)


@pytest.fixture(scope="module")
def items() -> list[ReplayItem]:
    return load_replay()


def dkim_domain_result(raw: bytes, resolver: ZoneResolver) -> tuple[str | None, bool]:
    d = dkim.DKIM(raw)
    if not d.present():
        return None, False
    ok = d.verify(dnsfunc=resolver.dnsfunc())
    return d.domain.decode(), bool(ok)


def from_domain(raw: bytes) -> str:
    msg = email.message_from_bytes(raw)
    return email.utils.parseaddr(msg["From"])[1].rsplit("@", 1)[1].lower()


def sample_legit(items: list[ReplayItem]) -> list[ReplayItem]:
    per: dict[str, list[ReplayItem]] = {}
    for item in items:
        if item.label == LEGIT:
            domain = (item.message_id or "").rsplit("@", 1)[-1]
            bucket = per.setdefault(domain, [])
            if len(bucket) < PER_DOMAIN:
                bucket.append(item)
    assert len(per) == 6
    return [i for bucket in per.values() for i in bucket]


def test_legit_messages_pass_spf_dkim_and_dmarc(items: list[ReplayItem],
                                                resolver: ZoneResolver) -> None:
    algorithms = set()
    for item in sample_legit(items):
        event, raw = decode_event(item), raw_message(item)
        envelope_domain = event["envelope_from"].rsplit("@", 1)[1]
        assert resolver.spf(event["client_ip"], envelope_domain) == "pass"
        domain, ok = dkim_domain_result(raw, resolver)
        assert ok and domain == from_domain(raw) == envelope_domain, item.message_id
        algorithms.add(b"a=ed25519-sha256" in raw)
    assert algorithms == {True, False}


def test_compromised_messages_authenticate_perfectly(items: list[ReplayItem],
                                                     resolver: ZoneResolver) -> None:
    burst = [i for i in items if i.label == COMPROMISED]
    assert len(burst) == 30
    for item in burst:
        event, raw = decode_event(item), raw_message(item)
        assert resolver.spf(event["client_ip"], event["envelope_from"].rsplit("@", 1)[1]) == "pass"
        domain, ok = dkim_domain_result(raw, resolver)
        assert ok and domain == from_domain(raw), item.message_id


def test_spoofer_outside_the_relay_fails_spf_and_is_unsigned(items: list[ReplayItem],
                                                             resolver: ZoneResolver) -> None:
    spoofs = [i for i in items if i.label == SPOOF_UNAUTHORISED_IP]
    assert spoofs
    for item in spoofs:
        event, raw = decode_event(item), raw_message(item)
        envelope_domain = event["envelope_from"].rsplit("@", 1)[1]
        assert envelope_domain == from_domain(raw)
        assert envelope_domain in resolver.zones  # a real customer domain
        assert resolver.spf(event["client_ip"], envelope_domain) == "fail"
        assert dkim_domain_result(raw, resolver) == (None, False)


def test_cheapdeals_passes_spf_unaligned_and_fails_dkim(items: list[ReplayItem],
                                                        resolver: ZoneResolver) -> None:
    spoofs = [i for i in items if i.label == SPOOF_BAD_DKIM]
    assert spoofs
    for item in spoofs:
        event, raw = decode_event(item), raw_message(item)
        envelope_domain = event["envelope_from"].rsplit("@", 1)[1]
        assert envelope_domain == "cheapdeals.example"
        assert resolver.spf(event["client_ip"], envelope_domain) == "pass"
        assert from_domain(raw) == "contoso.example" != envelope_domain  # SPF not aligned
        assert dkim_domain_result(raw, resolver) == ("contoso.example", False)
        assert resolver.txt("_dmarc.contoso.example")[0].startswith("v=DMARC1; p=reject")
