"""authenticate() on the demo zone, with the bundled public suffix list; result round trips."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from test_auth_dkim import ED_KEY, MESSAGE, NOW, sign  # the independent test signer

from streams.auth import (
    AuthResults,
    DkimResult,
    DmarcResult,
    SpfResult,
    StaticResolver,
    authenticate,
)

ED_PUB = base64.b64encode(ED_KEY.public_key().public_bytes_raw()).decode()
DEMO: dict[str, Any] = {
    "northwind.example": [{"type": "TXT", "value": "v=spf1 include:_spf.relay.example -all"}],
    "_spf.relay.example": [{"type": "TXT", "value": "v=spf1 ip4:192.0.2.0/24 -all"}],
    "s1._domainkey.northwind.example": [
        {"type": "TXT", "value": f"v=DKIM1; k=ed25519; p={ED_PUB}"}
    ],
    "_dmarc.northwind.example": [{"type": "TXT", "value": "v=DMARC1; p=reject"}],
}


async def _auth(raw: bytes, ip: str, mail_from: str = "bounce@northwind.example") -> AuthResults:
    return await authenticate(
        raw=raw,
        client_ip=ip,
        helo="mta1.relay.example",
        mail_from=mail_from,
        resolver=StaticResolver(DEMO),
        now=NOW,
    )


async def test_demo_legitimate_mail_passes() -> None:
    signed = sign(MESSAGE, selector="s1", algorithm="ed25519-sha256")
    got = await _auth(signed, "192.0.2.10")
    assert got == AuthResults(
        spf=SpfResult("pass", "northwind.example"),
        dkim=(DkimResult("pass", "northwind.example", "s1", "ed25519-sha256"),),
        dmarc=DmarcResult("pass", "northwind.example", "northwind.example", "reject", True, True),
        from_domain="northwind.example",
    )


async def test_demo_spoofed_mail_fails_dmarc() -> None:
    got = await _auth(MESSAGE, "203.0.113.7")
    assert (got.spf.result, got.dkim, got.dmarc.result, got.dmarc.policy) == (
        "fail",
        (),
        "fail",
        "reject",
    )


@pytest.mark.parametrize("mail_from", ["", "bounce@northwind.example"])
async def test_results_are_json_round_trippable(mail_from: str) -> None:
    got = await _auth(
        sign(MESSAGE, selector="s1", algorithm="ed25519-sha256"), "192.0.2.10", mail_from
    )
    again = AuthResults.from_dict(json.loads(json.dumps(got.to_dict())))
    assert again == got


def test_result_words_are_checked() -> None:
    with pytest.raises(ValueError):
        SpfResult("hardfail", "x.example")
    with pytest.raises(ValueError):
        DkimResult("policy", "x.example", "s", "rsa-sha256")
