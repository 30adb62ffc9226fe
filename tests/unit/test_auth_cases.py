"""Every case of ``shared/cases/auth-cases.yml`` (see its README) against the auth cores."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
import yaml

from streams.auth.check import authenticate
from streams.auth.dkim import verify_dkim
from streams.auth.dmarc import DmarcMode, author_domain, evaluate_dmarc
from streams.auth.dns import StaticResolver
from streams.auth.results import SpfResult
from streams.auth.spf import check_host, spf_domain_of

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared"
CASES_FILE = SHARED / "cases" / "auth-cases.yml"


def _load() -> dict[str, Any]:
    if not CASES_FILE.is_file():
        raise FileNotFoundError(
            f"authentication cases missing: {CASES_FILE} (the shared data must sit beside the "
            "project root as ../shared)"
        )
    with CASES_FILE.open(encoding="utf-8") as fh:
        doc: dict[str, Any] = yaml.safe_load(fh)
    assert doc["schema_version"] == 1
    return doc


DOC = _load()
SUFFIXES: list[str] = DOC["fixtures"]["public_suffix_list"]
CASES: list[dict[str, Any]] = DOC["cases"]


def raw_message(case: dict[str, Any]) -> bytes:
    if "message_b64" in case:
        return base64.b64decode(case["message_b64"])
    return str(case.get("message", "")).replace("\n", "\r\n").encode("ascii")


def _acceptable(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _ids(area: str) -> list[Any]:
    return [pytest.param(c, id=c["id"]) for c in CASES if area in c["expect"]]


def test_every_case_is_checked() -> None:
    known = {"spf", "dkim", "dmarc", "parse"}
    assert CASES, "no cases loaded"
    for case in CASES:
        assert set(case["expect"]) & known, case["id"]


@pytest.mark.parametrize("case", _ids("spf"))
async def test_spf(case: dict[str, Any]) -> None:
    env = case["envelope"]
    sender, domain = spf_domain_of(env["mail_from"], env["helo"])
    got = await check_host(
        env["client_ip"], domain, sender, env["helo"], StaticResolver(case["dns"])
    )
    assert got.result in _acceptable(case["expect"]["spf"]), case["summary"]


@pytest.mark.parametrize("case", _ids("dkim"))
async def test_dkim(case: dict[str, Any]) -> None:
    got = await verify_dkim(raw_message(case), StaticResolver(case["dns"]), now=case.get("now"))
    expected = case["expect"]["dkim"]
    assert len(got) == len(expected), (case["summary"], got)
    for result, want in zip(got, expected, strict=True):
        assert result.result in _acceptable(want), (case["summary"], result)


@pytest.mark.parametrize("mode", ["rfc7489", "rfc9989"])
@pytest.mark.parametrize("case", _ids("dmarc"))
async def test_dmarc(case: dict[str, Any], mode: DmarcMode) -> None:
    """The cases follow RFC 7489 with the fixture suffix list; their DNS data also gives the
    same answers under the RFC 9989 tree walk (no record sits on a fixture public suffix)."""
    raw = raw_message(case)
    resolver = StaticResolver(case["dns"])
    env = case.get("envelope")
    if env is not None:
        sender, domain = spf_domain_of(env["mail_from"], env["helo"])
        spf = await check_host(env["client_ip"], domain, sender, env["helo"], resolver)
    else:  # the case claims no SPF result: DMARC must not depend on one
        spf = SpfResult("none", "")
    dkim = await verify_dkim(raw, resolver, now=case.get("now"))
    got = await evaluate_dmarc(raw, spf, dkim, resolver, public_suffixes=SUFFIXES, mode=mode)
    want = case["expect"]["dmarc"]
    assert got.result in _acceptable(want["result"]), (case["summary"], got)
    for key in ("policy", "author_domain", "policy_domain"):
        if key in want:
            assert getattr(got, key) == want[key], (case["summary"], key, got)


@pytest.mark.parametrize("case", [c for c in CASES if "envelope" in c])
async def test_authenticate_end_to_end(case: dict[str, Any]) -> None:
    """The combined call agrees with every claim of the case."""
    env = case["envelope"]
    got = await authenticate(
        raw=raw_message(case),
        client_ip=env["client_ip"],
        helo=env["helo"],
        mail_from=env["mail_from"],
        resolver=StaticResolver(case["dns"]),
        now=case.get("now"),
        public_suffixes=SUFFIXES,
        dmarc_mode="rfc7489",
    )
    expect = case["expect"]
    if "spf" in expect:
        assert got.spf.result in _acceptable(expect["spf"])
    if "dkim" in expect:
        assert [r.result for r in got.dkim] == [_acceptable(w)[0] for w in expect["dkim"]]
    if "dmarc" in expect:
        assert got.dmarc.result in _acceptable(expect["dmarc"]["result"])
        assert got.from_domain == expect["dmarc"].get("author_domain", got.from_domain)
    assert type(got).from_dict(got.to_dict()) == got


@pytest.mark.parametrize("case", _ids("parse"))
async def test_parse(case: dict[str, Any]) -> None:
    raw = raw_message(case)
    resolver = StaticResolver(case["dns"])
    author_domain(raw)  # must not raise on 8-bit octets
    got = await authenticate(
        raw=raw,
        client_ip="192.0.2.1",
        helo="mta.example.com",
        mail_from="bounce@example.com",
        resolver=resolver,
        now=case.get("now"),
        public_suffixes=SUFFIXES,
        dmarc_mode="rfc7489",
    )
    assert got.from_domain is not None
    assert got.to_dict()["dkim"]
