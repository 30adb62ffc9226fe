"""DMARC per RFC 9989: DNS tree walk for policy discovery and organizational domains; np=."""

from __future__ import annotations

from typing import Any

import pytest

from streams.auth.dmarc import evaluate_dmarc, walk_targets
from streams.auth.dns import StaticResolver
from streams.auth.results import DkimResult, DmarcResult, SpfResult

NO_SPF = SpfResult("none", "")


def _msg(author: str) -> bytes:
    return f"From: {author}\r\nTo: bob@example.org\r\nSubject: s\r\n\r\nbody\r\n".encode()


def _txt(value: str) -> list[dict[str, Any]]:
    return [{"type": "TXT", "value": value}]


async def _dmarc(
    author: str,
    zone: dict[str, Any],
    spf: SpfResult = NO_SPF,
    dkim: tuple[DkimResult, ...] = (),
    mode: Any = "rfc9989",
) -> tuple[DmarcResult, StaticResolver]:
    resolver = StaticResolver(zone)
    got = await evaluate_dmarc(_msg(author), spf, dkim, resolver, mode=mode)
    return got, resolver


def _dmarc_queries(resolver: StaticResolver) -> list[str]:
    return [n for n, t in resolver.queries if t == "TXT" and n.startswith("_dmarc.")]


def test_walk_targets() -> None:
    assert walk_targets("a.b.example.com") == ["b.example.com", "example.com", "com"]
    assert walk_targets("com") == []
    deep = "1.2.3.4.5.6.7.8.9.example.com"  # 11 labels: cut to the last 7, then one at a time
    assert walk_targets(deep) == [
        "5.6.7.8.9.example.com",
        "6.7.8.9.example.com",
        "7.8.9.example.com",
        "8.9.example.com",
        "9.example.com",
        "example.com",
        "com",
    ]
    assert len(walk_targets("1.2.3.4.5.6.7.example")) == 7  # 8 labels: straight to 7


async def test_policy_found_by_walk_past_several_labels() -> None:
    zone = {"_dmarc.bank.example.com": _txt("v=DMARC1; p=reject; sp=quarantine")}
    got, resolver = await _dmarc("x@a.b.c.bank.example.com", zone)
    assert (got.result, got.policy_domain, got.policy) == ("fail", "bank.example.com", "quarantine")
    assert _dmarc_queries(resolver)[:4] == [
        "_dmarc.a.b.c.bank.example.com",
        "_dmarc.b.c.bank.example.com",
        "_dmarc.c.bank.example.com",
        "_dmarc.bank.example.com",
    ]


async def test_first_record_on_the_walk_wins() -> None:
    zone = {
        "_dmarc.c.bank.example.com": _txt("v=DMARC1; p=none"),
        "_dmarc.bank.example.com": _txt("v=DMARC1; p=reject"),
    }
    got, _ = await _dmarc("x@a.c.bank.example.com", zone)
    assert (got.policy_domain, got.policy) == ("c.bank.example.com", "none")


async def test_psd_record_applies_to_unpublished_org_domain() -> None:
    """A public suffix operator's record (psd=y) is found by the walk (RFC 9989 + RFC 9091)."""
    zone = {"_dmarc.gov.example": _txt("v=DMARC1; p=reject; psd=y")}
    got, _ = await _dmarc("x@agency.gov.example", zone)
    assert (got.result, got.policy_domain, got.policy) == ("fail", "gov.example", "reject")


async def test_relaxed_alignment_uses_tree_walk_org_domain() -> None:
    """Under RFC 9989 the org domain is where the walk finds a record, not a suffix list."""
    zone = {"_dmarc.shop.example.com": _txt("v=DMARC1; p=reject")}
    dkim = (DkimResult("pass", "mail.shop.example.com", "s1", "rsa-sha256"),)
    got, _ = await _dmarc("x@news.shop.example.com", zone, dkim=dkim)
    assert (got.result, got.dkim_aligned) == ("pass", True)
    # a sibling under example.com without its own record is not aligned: the org domain of
    # other.example.com is other.example.com itself (no record on its walk)
    dkim = (DkimResult("pass", "other.example.com", "s1", "rsa-sha256"),)
    got, _ = await _dmarc("x@news.shop.example.com", zone, dkim=dkim)
    assert (got.result, got.dkim_aligned) == ("fail", False)


async def test_psd_n_marks_org_domain_and_psd_y_its_child() -> None:
    zone = {
        "_dmarc.com": _txt("v=DMARC1; p=none; psd=y"),
        "_dmarc.brand.com": _txt("v=DMARC1; p=reject"),
        "_dmarc.unit.brand.com": _txt("v=DMARC1; p=reject; psd=n"),
    }
    # unit.brand.com declares itself an org domain: a.unit.brand.com aligns with it...
    dkim = (DkimResult("pass", "a.unit.brand.com", "s1", "rsa-sha256"),)
    got, _ = await _dmarc("x@unit.brand.com", zone, dkim=dkim)
    assert got.dkim_aligned
    # ...but not with brand.com (whose org domain is brand.com, child of the psd=y record)
    dkim = (DkimResult("pass", "brand.com", "s1", "rsa-sha256"),)
    got, _ = await _dmarc("x@unit.brand.com", zone, dkim=dkim)
    assert not got.dkim_aligned
    # shortest record without psd: brand.com for a.brand.com and mail.brand.com
    spf = SpfResult("pass", "mail.brand.com")
    got, _ = await _dmarc("x@a.brand.com", zone, spf=spf)
    assert (got.result, got.spf_aligned, got.policy_domain) == ("pass", True, "brand.com")


async def test_strict_alignment_needs_exact_match() -> None:
    zone = {"_dmarc.shop.example.com": _txt("v=DMARC1; p=reject; adkim=s; aspf=s")}
    dkim = (DkimResult("pass", "mail.shop.example.com", "s1", "rsa-sha256"),)
    got, _ = await _dmarc(
        "x@shop.example.com", zone, spf=SpfResult("pass", "shop.example.com"), dkim=dkim
    )
    assert (got.result, got.spf_aligned, got.dkim_aligned) == ("pass", True, False)


@pytest.mark.parametrize("mode", ["rfc9989", "rfc7489"])
async def test_np_applies_only_to_nonexistent_subdomains(mode: str) -> None:
    record = _txt("v=DMARC1; p=reject; sp=quarantine; np=reject")
    zone: dict[str, Any] = {"_dmarc.example.com": record}
    got, _ = await _dmarc("x@ghost.example.com", zone, mode=mode)
    assert (got.result, got.policy) == ("fail", "reject")
    for rtype, value in (("A", "192.0.2.1"), ("AAAA", "2001:db8::1"), ("MX", "10 mx.example.com")):
        zone = {"_dmarc.example.com": record, "real.example.com": [{"type": rtype, "value": value}]}
        got, _ = await _dmarc("x@real.example.com", zone, mode=mode)
        assert (got.result, got.policy) == ("fail", "quarantine"), rtype
    # the author domain's own record: p= regardless of np=
    got, _ = await _dmarc("x@example.com", {"_dmarc.example.com": record}, mode=mode)
    assert got.policy == "reject"


async def test_np_existence_check_temperror_keeps_sp() -> None:
    zone = {
        "_dmarc.example.com": _txt("v=DMARC1; p=reject; sp=none; np=reject"),
        "ghost.example.com": [{"type": "A", "fault": "SERVFAIL"}],
    }
    got, _ = await _dmarc("x@ghost.example.com", zone)
    assert (got.result, got.policy) == ("fail", "none")


async def test_np_without_tag_falls_back_to_sp_then_p() -> None:
    got, _ = await _dmarc("x@ghost.example.com", {"_dmarc.example.com": _txt("v=DMARC1; p=reject")})
    assert got.policy == "reject"


async def test_walk_temperror_is_temperror() -> None:
    zone = {
        "_dmarc.b.example.com": [{"type": "TXT", "fault": "TIMEOUT"}],
        "_dmarc.example.com": _txt("v=DMARC1; p=reject"),
    }
    got, _ = await _dmarc("x@a.b.example.com", zone)
    assert got.result == "temperror"


async def test_multiple_records_on_a_name_are_discarded_and_walk_continues() -> None:
    zone = {
        "_dmarc.a.example.com": _txt("v=DMARC1; p=none") + _txt("v=DMARC1; p=quarantine"),
        "_dmarc.example.com": _txt("v=DMARC1; p=reject"),
    }
    got, _ = await _dmarc("x@a.example.com", zone)
    assert (got.policy_domain, got.policy) == ("example.com", "reject")


async def test_no_record_anywhere_is_none() -> None:
    got, resolver = await _dmarc("x@a.example.com", {})
    assert got.result == "none"
    assert _dmarc_queries(resolver) == ["_dmarc.a.example.com", "_dmarc.example.com", "_dmarc.com"]


async def test_unknown_mode_is_rejected() -> None:
    with pytest.raises(ValueError, match="mode"):
        await _dmarc("x@a.example.com", {}, mode="rfc0000")
