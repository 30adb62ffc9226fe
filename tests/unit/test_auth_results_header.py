"""Authentication-Results (RFC 8601) field values built from AuthResults."""

from __future__ import annotations

from streams.auth.results import AuthResults, DkimResult, DmarcResult, SpfResult

DMARC_NONE = DmarcResult("none", "northwind.example", None, None, False, False)


def _ar(
    spf: SpfResult, dkim: tuple[DkimResult, ...] = (), dmarc: DmarcResult = DMARC_NONE
) -> AuthResults:
    return AuthResults(spf=spf, dkim=dkim, dmarc=dmarc, from_domain=dmarc.author_domain)


def test_unsigned_message() -> None:
    got = _ar(SpfResult("softfail", "northwind.example")).authentication_results("mx.example")
    assert got == (
        "mx.example; spf=softfail smtp.mailfrom=northwind.example; dkim=none; "
        "dmarc=none header.from=northwind.example"
    )


def test_one_resinfo_per_signature_with_reasons() -> None:
    dkim = (
        DkimResult("pass", "northwind.example", "s1", "ed25519-sha256"),
        DkimResult("fail", "relay.example", "k2", "rsa-sha256", "body hash mismatch"),
    )
    dmarc = DmarcResult("pass", "northwind.example", "northwind.example", "reject", False, True)
    got = _ar(SpfResult("none", "northwind.example"), dkim, dmarc).authentication_results("mx")
    assert got.split("; ") == [
        "mx",
        "spf=none smtp.mailfrom=northwind.example",
        "dkim=pass header.d=northwind.example header.s=s1 header.a=ed25519-sha256",
        'dkim=fail reason="body hash mismatch" header.d=relay.example header.s=k2 '
        "header.a=rsa-sha256",
        "dmarc=pass (p=reject) header.from=northwind.example",
    ]


def test_missing_identities_are_omitted() -> None:
    dkim = (DkimResult("permerror", "", "", "", "no d= tag"),)
    dmarc = DmarcResult("permerror", None, None, None, False, False)
    got = _ar(SpfResult("none", ""), dkim, dmarc).authentication_results("mx")
    assert got == 'mx; spf=none; dkim=permerror reason="no d= tag"; dmarc=permerror'


def test_hostile_values_are_quoted_and_cannot_inject_lines() -> None:
    dkim = (DkimResult("fail", 'ev"il\r\nX-Injected: 1', "s;1", "rsa-sha256", "a\\b"),)
    got = _ar(SpfResult("pass", "northwind.example"), dkim).authentication_results("mx")
    assert "\r" not in got and "\n" not in got
    assert 'header.d="ev\\"ilX-Injected: 1"' in got
    assert 'header.s="s;1"' in got
    assert 'reason="a\\\\b"' in got


def test_authserv_id_is_quoted_when_not_a_token() -> None:
    got = _ar(SpfResult("pass", "a.example")).authentication_results("my server")
    assert got.startswith('"my server"; spf=pass')
