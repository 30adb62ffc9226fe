"""Feature extraction: tolerant parsing, normalisation, auth mapping."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from streams.model.features import MessageFeatures, extract_features


def _extract(raw: bytes, **kw: Any) -> MessageFeatures:
    args: dict[str, Any] = {"message_id": "m", "raw": raw, "recipients": ["A@B.example"],
                            "timestamp": 1.0}
    args.update(kw)
    return extract_features(**args)


def test_plain_message() -> None:
    raw = (b"From: \"Ann\" <ann@Shop.Example>\r\nTo: b@c.example\r\n"
           b"Subject: =?utf-8?q?Facture_=C3=A9t=C3=A9?= report\r\n\r\n"
           b"Hello, see http://docs.shop.example/x and WWW.Files.example.\r\n")
    f = _extract(raw)
    assert f.recipients == ("a@b.example",)
    assert f.subject_tokens == ("facture", "été", "report")
    assert f.body_tokens == ("hello", "see", "docs", "shop", "example", "files")
    assert f.link_domains == ("docs.shop.example", "files.example")
    assert f.from_domain == "shop.example"
    assert f.dkim_domains == () and f.dmarc_pass is False


def test_html_multipart_links_from_href() -> None:
    raw = (b"From: x@y.example\r\nSubject: hi\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: multipart/alternative; boundary=BB\r\n\r\n--BB\r\n"
           b"Content-Type: text/html; charset=utf-8\r\n\r\n"
           b"<p>Click <a href=\"https://login.evil.example/a\">here</a></p>\r\n--BB--\r\n")
    f = _extract(raw)
    assert "login.evil.example" in f.link_domains
    assert "click" in f.body_tokens and "href" not in f.body_tokens


def test_auth_mapping_and_missing_keys() -> None:
    auth = {
        "spf": {"result": "pass", "domain": "shop.example"},
        "dkim": [{"result": "pass", "domain": "Shop.example", "selector": "s1"},
                 {"result": "fail", "domain": "other.example"}],
        "dmarc": {"result": "pass", "author_domain": "shop.example"},
        "from_domain": "shop.example",
    }
    f = _extract(b"Subject: x\r\n\r\n", auth=auth)
    assert f.dkim_domains == ("shop.example",) and f.dmarc_pass and f.from_domain == "shop.example"
    for partial in ({}, {"dkim": None}, {"dkim": "junk"}, {"dmarc": "pass"}, {"dkim": [1, None]},
                    {"dkim": {"result": "pass", "domain": "d.example"}}):
        g = _extract(b"", auth=partial)
        assert isinstance(g, MessageFeatures)
    assert _extract(b"", auth={"dkim": {"result": "pass", "domain": "d.example"}}).dkim_domains \
        == ("d.example",)


@pytest.mark.parametrize("seed", range(40))
def test_never_raises_on_odd_octets(seed: int) -> None:
    rng = random.Random(seed)
    pieces = [b"Subject: ", b"\r\n", b"Content-Type: multipart/mixed; boundary=", b"--",
              b"=?utf-8?b?", b"?=", b"Content-Transfer-Encoding: base64\r\n", b"\xff\xfe",
              b"charset=\"no-such-charset\"", b"From: <@>", b"<a href=", b"http://"]
    raw = b"".join(rng.choice(pieces) + bytes(rng.randrange(256) for _ in range(rng.randrange(30)))
                   for _ in range(rng.randrange(1, 30)))
    f = _extract(raw, recipients=[b"\xff@x", "ok@x.example", 3])
    json.dumps(f.as_dict())


def test_as_dict_is_river_style_and_fresh() -> None:
    f = _extract(b"Subject: quarterly numbers\r\n\r\n")
    x = f.as_dict()
    assert x["message_id"] == "m" and x["subject_tokens"] == ("quarterly", "numbers")
    x["recipients"] = ()
    assert f.as_dict()["recipients"] == ("a@b.example",)
