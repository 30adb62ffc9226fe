"""The replay builder's helpers, the committed test-only keys and the demo zone files."""

from __future__ import annotations

import base64
from pathlib import Path
from types import ModuleType

import dkim
import dns.rdatatype
import dns.zone
import pytest
from replay_tool import load_build_tool

ROOT = Path(__file__).resolve().parents[2]
ZONES = ROOT / "streams" / "embedded" / "zones"
KEYS = ROOT / "streams" / "embedded" / "keys"
CUSTOMERS = ("northwind.example", "contoso.example", "fabrikam.example",
             "tailspin.example", "wingtip.example", "adatum.example")
ED25519 = {"tailspin.example", "adatum.example"}


def load_tool() -> ModuleType:
    return load_build_tool()


@pytest.fixture(scope="module")
def tool() -> ModuleType:
    return load_tool()


@pytest.fixture(scope="module")
def zones() -> dict[str, dns.zone.Zone]:
    return {p.name[: -len(".zone")]: dns.zone.from_file(str(p), p.name[: -len(".zone")],
                                                         relativize=False)
            for p in sorted(ZONES.glob("*.zone"))}


def txt(zones: dict[str, dns.zone.Zone], name: str) -> list[str]:
    for origin, zone in zones.items():
        if name == origin or name.endswith("." + origin):
            rdataset = zone.get_rdataset(name + ".", dns.rdatatype.TXT)
            if rdataset is None:
                return []
            return [b"".join(r.strings).decode() for r in rdataset]
    return []


# ---------------------------------------------------------------------------- zones
def test_every_zone_file_parses_with_dnspython(zones: dict[str, dns.zone.Zone]) -> None:
    assert set(zones) >= {*CUSTOMERS, "relay.example", "cheapdeals.example"}
    for origin, zone in zones.items():
        assert zone.get_rdataset(origin + ".", dns.rdatatype.SOA) is not None, origin
        assert zone.get_rdataset(origin + ".", dns.rdatatype.NS) is not None, origin


def test_relay_zone(zones: dict[str, dns.zone.Zone]) -> None:
    relay = zones["relay.example"]
    for n in range(1, 5):
        rdataset = relay.get_rdataset(f"mta{n}.relay.example.", dns.rdatatype.A)
        assert rdataset is not None
        (a,) = list(rdataset)
        assert a.address == f"192.0.2.{9 + n}"
    assert txt(zones, "_spf.relay.example") == ["v=spf1 ip4:192.0.2.0/24 -all"]


@pytest.mark.parametrize("domain", [*CUSTOMERS, "cheapdeals.example"])
def test_sending_domain_records(zones: dict[str, dns.zone.Zone], domain: str) -> None:
    assert txt(zones, domain) == ["v=spf1 include:_spf.relay.example -all"]
    policy = "none" if domain == "cheapdeals.example" else "reject"
    assert txt(zones, f"_dmarc.{domain}") == [f"v=DMARC1; p={policy}; adkim=r; aspf=r"]
    (key,) = txt(zones, f"s1._domainkey.{domain}")
    algorithm = "ed25519" if domain in ED25519 else "rsa"
    assert key.startswith(f"v=DKIM1; k={algorithm}; p=")


def test_long_txt_values_are_split_into_255_octet_strings(
        zones: dict[str, dns.zone.Zone]) -> None:
    split = 0
    for zone in zones.values():
        for _name, _ttl, rdata in zone.iterate_rdatas(dns.rdatatype.TXT):
            strings = getattr(rdata, "strings", ())
            assert strings and all(len(s) <= 255 for s in strings)
            split += len(strings) > 1
    assert split >= 5  # every RSA-2048 key record


def test_txt_rdata_chunks(tool: ModuleType) -> None:
    assert tool.txt_rdata("abc") == '"abc"'
    assert tool.txt_rdata("x" * 300) == '"' + "x" * 255 + '" "' + "x" * 45 + '"'


# ---------------------------------------------------------------------------- keys
def test_keys_are_documented_as_test_only() -> None:
    readme = (KEYS / "README.md").read_text(encoding="utf-8").lower()
    assert "test-only" in readme or "test only" in readme


def test_committed_keys_match_the_zones_and_are_reused(
        tool: ModuleType, zones: dict[str, dns.zone.Zone], tmp_path: Path) -> None:
    before = {p.name: p.read_bytes() for p in KEYS.glob("*.pem")}
    keys = tool.load_or_create_keys(KEYS)
    assert {p.name: p.read_bytes() for p in KEYS.glob("*.pem")} == before  # nothing regenerated
    assert set(keys) == {*CUSTOMERS, "cheapdeals.example"}
    for domain, key in keys.items():
        assert key.algorithm == ("ed25519" if domain in ED25519 else "rsa")
        assert txt(zones, f"s1._domainkey.{domain}") == [key.txt]
    # the committed zone files are exactly what the builder writes from the committed keys
    tool.write_zones(tmp_path, keys)
    for path in ZONES.glob("*.zone"):
        assert (tmp_path / path.name).read_text() == path.read_text(), path.name


def test_missing_keys_are_generated_once(tool: ModuleType, tmp_path: Path) -> None:
    first = tool.load_or_create_keys(tmp_path)
    again = tool.load_or_create_keys(tmp_path)
    assert first == again
    assert len(list(tmp_path.glob("*.pem"))) == 7


def test_ed25519_signing_through_dkimpy_round_trips(tool: ModuleType) -> None:
    tool.ensure_ed25519_support()
    key = tool.load_or_create_keys(KEYS)["tailspin.example"]
    raw = tool.message_bytes("a@tailspin.example", ["b@partner1.example"], "Hi", 988899730,
                             "x1@tailspin.example", "Hello.\n")
    signed = tool.sign(raw, key, 988899730)
    assert b"a=ed25519-sha256" in signed and b"t=988899730" in signed
    record = key.txt.encode()
    assert dkim.verify(signed, dnsfunc=lambda name, timeout=5: record)
    tampered = signed.replace(b"Hello.", b"Hullo.")
    assert not dkim.verify(tampered, dnsfunc=lambda name, timeout=5: record)


def test_signing_is_deterministic(tool: ModuleType) -> None:
    key = tool.load_or_create_keys(KEYS)["contoso.example"]
    raw = tool.message_bytes("a@contoso.example", ["b@partner1.example"], "Hi", 988899730,
                             "x2@contoso.example", "Hello.\n")
    assert tool.sign(raw, key, 988899730) == tool.sign(raw, key, 988899730)
    assert base64.b64encode(tool.sign(raw, key, 988899730))  # bytes, CRLF message


# ---------------------------------------------------------------------------- pseudonyms
def test_pseudonyms_are_stable_and_opaque(tool: ModuleType) -> None:
    assert tool.pseudonym("20") == tool.pseudonym("20")
    assert tool.pseudonym("20") != tool.pseudonym("59")
    assert tool.pseudonym("20").startswith("user-") and len(tool.pseudonym("20")) == 11


def test_addresses_are_rewritten(tool: ModuleType) -> None:
    out = tool.scrub_addresses("write to someone.real@corp.com or Other@Mail.Org.")
    assert "corp.com" not in out and "Mail.Org" not in out
    assert out.count("@example.com") == 2
    assert tool.scrub_addresses("a@b.com") == tool.scrub_addresses("A@B.com")


def test_clean_text_wraps_without_breaking_links(tool: ModuleType) -> None:
    url = "http://example.org/" + "a" * 120
    text = tool.clean_text("word " * 40 + url + "\t\t tail\r\n\r\n\r\n\r\nend")
    assert url in text.split("\n")
    assert max(len(line) for line in text.split("\n") if "http" not in line) <= 76
    assert "\n\n\n" not in text and text.endswith("end\n")
