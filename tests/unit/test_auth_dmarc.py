"""DMARC discovery, policy selection, alignment and From parsing."""

from __future__ import annotations

from typing import Any

import pytest

from streams.auth.dmarc import author_domain, evaluate_dmarc, from_addresses, organizational_domain
from streams.auth.dns import StaticResolver
from streams.auth.results import DkimResult, DmarcResult, SpfResult

SUFFIXES = ["com", "org", "net", "example", "co.example"]


def _msg(*froms: str) -> bytes:
    head = "".join(f"From: {f}\r\n" for f in froms)
    return (head + "To: bob@example.org\r\nSubject: s\r\n\r\nbody\r\n").encode()


def _dkim(domain: str, result: str = "pass") -> tuple[DkimResult, ...]:
    return (DkimResult(result, domain, "s1", "rsa-sha256"),)


NO_SPF = SpfResult("none", "")


async def _dmarc(
    raw: bytes, zone: dict[str, Any], spf: SpfResult = NO_SPF, dkim: tuple[DkimResult, ...] = ()
) -> DmarcResult:
    return await evaluate_dmarc(
        raw, spf, dkim, StaticResolver(zone), public_suffixes=SUFFIXES, mode="rfc7489"
    )


def _txt(value: str) -> list[dict[str, Any]]:
    return [{"type": "TXT", "value": value}]


@pytest.mark.parametrize(
    ("value", "domains"),
    [
        ("Alice <alice@Example.COM>", ["example.com"]),
        ('"Doe, Jane" <jane@example.com>', ["example.com"]),
        ('"Someone <someone@example.net>"@example.com', ["example.com"]),
        ("alice@example.com (Alice, Ops)", ["example.com"]),
        ("a@x.example, b@y.example", ["x.example", "y.example"]),
        ("Team: a@x.example, b@x.example;", ["x.example", "x.example"]),
        ('"Joe User"', [None]),
        ("alice@[192.0.2.1]", [None]),
        ("", []),
    ],
)
def test_from_parsing(value: str, domains: list[str | None]) -> None:
    assert from_addresses(value) == domains


def test_author_domain_needs_exactly_one_from_and_one_domain() -> None:
    assert author_domain(_msg("a@x.example")) == "x.example"
    assert author_domain(_msg("a@x.example", "b@x.example")) is None
    assert author_domain(b"To: b@y.example\r\n\r\nhi\r\n") is None
    assert author_domain(_msg("a@x.example, b@y.example")) is None
    assert author_domain(_msg("a@x.example, b@x.example")) == "x.example"
    assert (
        author_domain(b"From: =?utf-8?q?Ren=C3=A9e?= <r@x.example>\r\nSubject: caf\xe9\r\n\r\n")
        == "x.example"
    )


def test_organizational_domain() -> None:
    assert organizational_domain("a.b.co.example", SUFFIXES) == "b.co.example"
    assert organizational_domain("mail.northwind.example", SUFFIXES) == "northwind.example"
    assert organizational_domain("co.example", SUFFIXES) == "co.example"
    # the bundled list: unknown top-level labels are public suffixes (PSL "*" rule)
    assert organizational_domain("mail.northwind.example") == "northwind.example"
    assert organizational_domain("a.b.example.co.uk") == "example.co.uk"


async def test_policy_from_author_domain_and_org_domain_sp() -> None:
    zone = {"_dmarc.northwind.example": _txt("v=DMARC1; p=reject; sp=quarantine")}
    top = await _dmarc(_msg("a@northwind.example"), zone)
    assert (top.result, top.policy, top.policy_domain) == ("fail", "reject", "northwind.example")
    sub = await _dmarc(_msg("a@news.northwind.example"), zone)
    assert (sub.result, sub.policy, sub.policy_domain, sub.author_domain) == (
        "fail",
        "quarantine",
        "northwind.example",
        "news.northwind.example",
    )
    zone_no_sp = {"_dmarc.northwind.example": _txt("v=DMARC1; p=reject")}
    assert (await _dmarc(_msg("a@news.northwind.example"), zone_no_sp)).policy == "reject"


async def test_alignment_modes() -> None:
    zone = {"_dmarc.northwind.example": _txt("v=DMARC1; p=reject")}
    raw = _msg("a@news.northwind.example")
    relaxed = await _dmarc(raw, zone, dkim=_dkim("northwind.example"))
    assert (relaxed.result, relaxed.dkim_aligned, relaxed.spf_aligned) == ("pass", True, False)
    spf = SpfResult("pass", "bounces.northwind.example")
    assert (await _dmarc(raw, zone, spf=spf)).spf_aligned
    strict = {"_dmarc.northwind.example": _txt("v=DMARC1; p=reject; adkim=s; aspf=s")}
    assert (await _dmarc(raw, strict, spf=spf, dkim=_dkim("northwind.example"))).result == "fail"
    assert (await _dmarc(raw, zone, dkim=_dkim("northwind.example", "fail"))).result == "fail"
    other = await _dmarc(
        raw, zone, dkim=_dkim("relay.example"), spf=SpfResult("pass", "relay.example")
    )
    assert other.result == "fail"


@pytest.mark.parametrize(
    ("zone", "want"),
    [
        ({}, "none"),
        ({"_dmarc.northwind.example": _txt("v=spf1 -all")}, "none"),
        (
            {"_dmarc.northwind.example": _txt("v=DMARC1; p=reject") + _txt("v=DMARC1; p=none")},
            "none",
        ),
        ({"_dmarc.northwind.example": _txt("v=DMARC1; p=bogus")}, "none"),
        ({"_dmarc.northwind.example": [{"type": "TXT", "fault": "SERVFAIL"}]}, "temperror"),
        ({"_dmarc.news.northwind.example": [{"type": "TXT", "fault": "TIMEOUT"}]}, "temperror"),
    ],
)
async def test_no_usable_record(zone: dict[str, Any], want: str) -> None:
    got = await _dmarc(_msg("a@news.northwind.example"), zone)
    assert got.result == want
    assert got.policy is None


async def test_invalid_p_with_rua_acts_as_p_none() -> None:
    zone = {"_dmarc.northwind.example": _txt("v=DMARC1; p=bogus; rua=mailto:d@northwind.example")}
    got = await _dmarc(_msg("a@northwind.example"), zone)
    assert (got.result, got.policy) == ("fail", "none")


async def test_author_record_wins_over_org_record() -> None:
    zone = {
        "_dmarc.news.northwind.example": _txt("v=DMARC1; p=none"),
        "_dmarc.northwind.example": _txt("v=DMARC1; p=reject"),
    }
    got = await _dmarc(_msg("a@news.northwind.example"), zone)
    assert (got.policy, got.policy_domain) == ("none", "news.northwind.example")


async def test_from_problems_are_permerror() -> None:
    zone = {"_dmarc.northwind.example": _txt("v=DMARC1; p=reject")}
    for raw in (_msg(), _msg("a@northwind.example", "b@northwind.example"), _msg('"Joe"')):
        got = await _dmarc(raw, zone, dkim=_dkim("northwind.example"))
        assert got == DmarcResult("permerror", None, None, None, False, False)
