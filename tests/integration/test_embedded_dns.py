"""The embedded DNS server answers like an authoritative server over real UDP and TCP."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import dns.edns
import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.resolver
import pytest

from streams.embedded.dns_server import (
    DnsServer,
    default_zones_dir,
    load_zones,
    parse_fault,
    start_dns_server,
)

pytestmark = pytest.mark.integration

LONG_TXT = " ".join(f'"{"k" * 200}{i}"' for i in range(4))  # ≈ 800 bytes of TXT

ZONE = f"""$ORIGIN mail.test.
$TTL 300
@    IN SOA ns1.mail.test. hostmaster.mail.test. ( 1 3600 600 86400 60 )
@    IN NS  ns1.mail.test.
ns1  IN A   127.0.0.1
@    IN TXT "v=spf1 ip4:192.0.2.0/24 -all"
@    IN MX  10 mx.mail.test.
mx   IN A   192.0.2.25
www  IN CNAME mx
s1._domainkey IN TXT "v=DKIM1; k=rsa; p=MIIB"
big._domainkey IN TXT {LONG_TXT}
slow IN TXT "never answered"
broken IN TXT "answered with servfail"
*.wild IN TXT "from the wildcard"
"""


@pytest.fixture(scope="module")
def zones_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("zones")
    (directory / "mail.test.zone").write_text(ZONE)
    return directory


@pytest.fixture(scope="module")
def server(zones_dir: Path) -> Iterator[tuple[str, int]]:
    faults = {
        ("slow.mail.test", "TXT"): "timeout",
        ("broken.mail.test", "*"): "servfail",
        ("mx.mail.test", "A"): "nxdomain",
    }
    with start_dns_server(zones_dir, faults=faults) as address:  # type: ignore[arg-type]
        yield address


def udp(server: tuple[str, int], name: str, rdtype: str, **kw: object) -> dns.message.Message:
    host, port = server
    query = dns.message.make_query(name, rdtype, **kw)  # type: ignore[arg-type]
    return dns.query.udp(query, host, port=port, timeout=2)


def tcp(server: tuple[str, int], name: str, rdtype: str) -> dns.message.Message:
    host, port = server
    return dns.query.tcp(dns.message.make_query(name, rdtype), host, port=port, timeout=2)


def test_answer_over_udp_is_authoritative(server: tuple[str, int]) -> None:
    r = udp(server, "mail.test", "TXT")
    assert r.rcode() == dns.rcode.NOERROR
    assert r.flags & dns.flags.AA
    assert not r.flags & dns.flags.RA
    assert r.answer[0].to_text().endswith('"v=spf1 ip4:192.0.2.0/24 -all"')


def test_answer_over_tcp(server: tuple[str, int]) -> None:
    r = tcp(server, "s1._domainkey.mail.test", "TXT")
    assert r.rcode() == dns.rcode.NOERROR and r.flags & dns.flags.AA
    assert "v=DKIM1" in r.answer[0].to_text()


def test_unknown_name_is_nxdomain_with_soa(server: tuple[str, int]) -> None:
    r = udp(server, "nobody.mail.test", "TXT")
    assert r.rcode() == dns.rcode.NXDOMAIN
    assert r.flags & dns.flags.AA
    assert not r.answer
    assert r.authority[0].rdtype == dns.rdatatype.SOA
    assert r.authority[0].ttl == 60  # min(SOA TTL, SOA minimum), RFC 2308


def test_existing_name_other_type_is_nodata(server: tuple[str, int]) -> None:
    r = udp(server, "mx.mail.test", "TXT")
    assert r.rcode() == dns.rcode.NOERROR
    assert not r.answer
    assert r.authority[0].rdtype == dns.rdatatype.SOA


def test_empty_non_terminal_is_nodata_not_nxdomain(server: tuple[str, int]) -> None:
    r = udp(server, "_domainkey.mail.test", "TXT")
    assert r.rcode() == dns.rcode.NOERROR and not r.answer


def test_outside_zones_is_refused(server: tuple[str, int]) -> None:
    r = udp(server, "example.org", "A")
    assert r.rcode() == dns.rcode.REFUSED
    assert not r.flags & dns.flags.AA


def test_a_closed_world_has_nothing_outside_its_zones() -> None:
    closed = DnsServer(load_zones(default_zones_dir()), closed_world=True)
    query = dns.message.make_query("_dmarc.example", "TXT")
    answer = dns.message.from_wire(closed.handle(query.to_wire(), "udp") or b"")
    assert answer.rcode() == dns.rcode.NXDOMAIN


def test_cname_is_chased_inside_the_zone(server: tuple[str, int]) -> None:
    r = udp(server, "www.mail.test", "A")
    texts = [rrset.to_text() for rrset in r.answer]
    assert "CNAME mx.mail.test." in texts[0]
    assert texts[1].endswith("A 192.0.2.25")


def test_wildcard(server: tuple[str, int]) -> None:
    r = udp(server, "anything.wild.mail.test", "TXT")
    assert r.answer[0].name.to_text() == "anything.wild.mail.test."
    assert "from the wildcard" in r.answer[0].to_text()


def test_long_answer_truncates_over_udp_without_edns(server: tuple[str, int]) -> None:
    r = udp(server, "big._domainkey.mail.test", "TXT")
    assert r.flags & dns.flags.TC
    assert not r.answer
    full = tcp(server, "big._domainkey.mail.test", "TXT")
    assert not full.flags & dns.flags.TC
    assert len(full.to_wire()) > 512
    assert "k" * 200 in full.answer[0].to_text()


def test_edns_payload_lets_the_long_answer_through_udp(server: tuple[str, int]) -> None:
    r = udp(server, "big._domainkey.mail.test", "TXT", use_edns=0, payload=1232)
    assert not r.flags & dns.flags.TC
    assert r.edns == 0
    assert len(r.answer[0]) == 1


def test_resolver_falls_back_to_tcp(server: tuple[str, int]) -> None:
    """The stub resolver the auth stage uses sees TC and retries over TCP by itself."""
    host, port = server
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [host]
    resolver.port = port
    resolver.use_edns(-1)  # classic 512-byte UDP, so the answer must truncate
    answer = resolver.resolve("big._domainkey.mail.test", "TXT", lifetime=3)
    assert "k" * 200 in answer.rrset.to_text()  # type: ignore[union-attr]


def test_fault_timeout_drops_the_query(server: tuple[str, int]) -> None:
    with pytest.raises(dns.exception.Timeout):
        host, port = server
        q = dns.message.make_query("slow.mail.test", "TXT")
        dns.query.udp(q, host, port=port, timeout=0.5)
    assert udp(server, "slow.mail.test", "A").rcode() == dns.rcode.NOERROR  # only TXT


def test_fault_servfail_any_type(server: tuple[str, int]) -> None:
    assert udp(server, "broken.mail.test", "TXT").rcode() == dns.rcode.SERVFAIL
    assert tcp(server, "broken.mail.test", "A").rcode() == dns.rcode.SERVFAIL


def test_fault_nxdomain_denies_an_existing_name(server: tuple[str, int]) -> None:
    assert udp(server, "mx.mail.test", "A").rcode() == dns.rcode.NXDOMAIN
    assert tcp(server, "mx.mail.test", "A").rcode() == dns.rcode.NXDOMAIN
    assert udp(server, "mx.mail.test", "TXT").rcode() == dns.rcode.NOERROR  # only A


def test_fault_parsing_names_every_kind() -> None:
    assert parse_fault("mx.mail.test/A=nxdomain") == (("mx.mail.test.", "A"), "nxdomain")
    with pytest.raises(ValueError, match=re.escape("timeout|servfail|nxdomain")):
        parse_fault("mx.mail.test/A=refused")


def test_garbage_gets_formerr_in_process(zones_dir: Path) -> None:
    server = DnsServer(load_zones(zones_dir))
    wire = b"\x12\x34\x01\x00" + b"\x00\x01" + b"\x00" * 6 + b"\xff\xff"
    reply = server.handle(wire, "udp")
    assert reply is not None and reply[:2] == b"\x12\x34"
    assert reply[3] & 0x0F == dns.rcode.FORMERR
    assert server.handle(b"\x00", "udp") is None


def test_bad_zone_directory_fails_with_the_childs_error(tmp_path: Path) -> None:
    (tmp_path / "bad.test.zone").write_text("$TTL 300\n@ IN A 127.0.0.1\n")
    with pytest.raises(RuntimeError, match="no SOA"), start_dns_server(tmp_path, timeout=10):
        pass


def test_demo_zones_are_served(dns_server: tuple[str, int]) -> None:
    """The package's demo zones load and answer (the shared session fixture)."""
    host, port = dns_server
    q = dns.message.make_query("_dmarc.contoso.example", "TXT")
    r = dns.query.udp(q, host, port=port, timeout=2)
    assert r.rcode() == dns.rcode.NOERROR and r.flags & dns.flags.AA
    assert "v=DMARC1" in r.answer[0].to_text()
