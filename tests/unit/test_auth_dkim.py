"""verify_dkim: RFC vectors, and each correction of dkimpy's verdicts, with fresh signatures.

Signatures are made here by an independent relaxed/relaxed signer (``cryptography``), with the
test-only keys of ``shared/cases/auth-cases.yml``.
"""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from streams.auth import dkim as dkim_mod
from streams.auth.dkim import verify_dkim
from streams.auth.dns import StaticResolver

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared"
T = 1704067200
NOW = T + 100


def _shared(*parts: str) -> Path:
    path = SHARED.joinpath(*parts)
    if not path.is_file():
        raise FileNotFoundError(f"shared test data missing: {path}")
    return path


_FIXTURES: dict[str, Any] = yaml.safe_load(
    _shared("cases", "auth-cases.yml").read_text(encoding="utf-8")
)["fixtures"]
RSA_KEY = serialization.load_pem_private_key(
    _FIXTURES["keys"]["rsa-2048"]["private_key_pem"].encode(), password=None
)
ED_KEY = Ed25519PrivateKey.from_private_bytes(
    base64.b64decode(_FIXTURES["keys"]["ed25519"]["private_seed_b64"])
)
RSA_RECORD = "".join(_FIXTURES["dkim_key_records"]["rsa-2048"]["value"])
ED_RECORD = _FIXTURES["dkim_key_records"]["ed25519"]["value"]

MESSAGE = (
    b"From: Alice <alice@northwind.example>\r\n"
    b"To: bob@example.org\r\n"
    b"Subject: quarterly  report\r\n"
    b"Date: Mon, 01 Jan 2024 00:00:00 +0000\r\n"
    b"Message-ID: <q1@northwind.example>\r\n"
    b"\r\n"
    b"Numbers attached.\r\n"
    b"\r\n"
)


def _zone(rsa_record: str = RSA_RECORD, ed_record: str = ED_RECORD) -> dict[str, Any]:
    return {
        "s1._domainkey.northwind.example": [{"type": "TXT", "value": rsa_record}],
        "ed1._domainkey.northwind.example": [{"type": "TXT", "value": ed_record}],
    }


def _relaxed_header(name: bytes, value: bytes) -> bytes:
    value = re.sub(rb"\r\n", b"", value)
    value = re.sub(rb"[ \t]+", b" ", value).strip()
    return name.strip().lower() + b":" + value


def _relaxed_body(body: bytes) -> bytes:
    lines = [re.sub(rb"[ \t]+", b" ", line).rstrip(b" ") for line in body.split(b"\r\n")]
    while lines and lines[-1] == b"":
        lines.pop()
    return b"".join(line + b"\r\n" for line in lines)


def sign(
    message: bytes,
    *,
    selector: str = "s1",
    algorithm: str = "rsa-sha256",
    headers: str = "from:to:subject:date:message-id",
    extra: str = "",
    length: bool = False,
) -> bytes:
    head, body = message.split(b"\r\n\r\n", 1)
    fields = [
        (m.group(1), m.group(2))
        for m in re.finditer(rb"(?m)^([^:\r\n]+):(.*(?:\r\n[ \t].*)*)", head)
    ]
    cbody = _relaxed_body(body)
    bh = base64.b64encode(hashlib.sha256(cbody).digest()).decode()
    tags = f"v=1; a={algorithm}; c=relaxed/relaxed; d=northwind.example; s={selector}; t={T};"
    if length:
        tags += f" l={len(cbody)};"
    tags += f"{extra} h={headers}; bh={bh}; b="
    data = b""
    remaining = list(fields)
    for h in headers.split(":"):
        for i in range(len(remaining) - 1, -1, -1):
            if remaining[i][0].strip().lower() == h.encode():
                data += _relaxed_header(*remaining.pop(i)) + b"\r\n"
                break
    data += _relaxed_header(b"DKIM-Signature", b" " + tags.encode())
    if algorithm == "ed25519-sha256":
        sig = ED_KEY.sign(hashlib.sha256(data).digest())
    else:
        assert isinstance(RSA_KEY, rsa.RSAPrivateKey)
        sig = RSA_KEY.sign(data, padding.PKCS1v15(), hashes.SHA256())
    b = base64.b64encode(sig).decode()
    return f"DKIM-Signature: {tags}{b}\r\n".encode() + message


async def _verify(message: bytes, zone: dict[str, Any] | None = None, now: float = NOW) -> Any:
    return await verify_dkim(message, StaticResolver(zone or _zone()), now=now)


# --------------------------------------------------------------------------- vectors


def _vector(name: str) -> tuple[dict[str, Any], bytes]:
    text = _shared("data", "dkim", "rfc8463", name).read_bytes()
    records, message = text.split(b"\n\n", 1)
    zone = {}
    for line in records.decode().splitlines():
        owner, _, value = line.partition(" ")
        zone[owner] = [{"type": "TXT", "value": value}]
    return zone, message.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


@pytest.mark.parametrize(
    ("name", "algorithms"),
    [
        ("rfc8463-a3.txt", ["ed25519-sha256", "rsa-sha256"]),
        ("rfc6376-resigned.txt", ["rsa-sha256"]),
    ],
)
async def test_rfc_vectors_pass(name: str, algorithms: list[str]) -> None:
    zone, message = _vector(name)
    t = int(re.search(rb"t=(\d+)", message).group(1))  # type: ignore[union-attr]
    got = await verify_dkim(message, StaticResolver(zone), now=t)
    assert [(r.result, r.algorithm) for r in got] == [("pass", a) for a in algorithms]
    tampered = message.replace(b"We lost the game", b"We lost the match")
    assert tampered != message
    again = await verify_dkim(tampered, StaticResolver(zone), now=t)
    assert [r.result for r in again] == ["fail"] * len(algorithms)


# --------------------------------------------------------------------------- basics


@pytest.mark.parametrize(
    ("selector", "algorithm"), [("s1", "rsa-sha256"), ("ed1", "ed25519-sha256")]
)
async def test_fresh_signatures_pass_and_tampering_fails(selector: str, algorithm: str) -> None:
    signed = sign(MESSAGE, selector=selector, algorithm=algorithm)
    (ok,) = await _verify(signed)
    assert (ok.result, ok.domain, ok.selector, ok.algorithm) == (
        "pass",
        "northwind.example",
        selector,
        algorithm,
    )
    (body,) = await _verify(signed.replace(b"Numbers", b"Payment"))
    assert (body.result, body.reason) == ("fail", "body hash did not verify")
    (head,) = await _verify(signed.replace(b"quarterly", b"urgent"))
    assert (head.result, head.reason) == ("fail", "signature did not verify")


async def test_unsigned_message_has_no_results() -> None:
    assert await _verify(MESSAGE) == ()


async def test_keys_are_fetched_once_per_name() -> None:
    signed = sign(sign(MESSAGE), selector="ed1", algorithm="ed25519-sha256")
    signed = sign(signed)
    resolver = StaticResolver(_zone())
    got = await verify_dkim(signed, resolver, now=NOW)
    assert [r.result for r in got] == ["pass", "pass", "pass"]
    assert sorted(resolver.queries) == [
        ("ed1._domainkey.northwind.example", "TXT"),
        ("s1._domainkey.northwind.example", "TXT"),
    ]


# --------------------------------------------------------------------------- corrections of dkimpy


async def test_key_dns_failure_is_temperror_and_missing_key_permerror() -> None:
    signed = sign(MESSAGE)
    for fault in ("TIMEOUT", "SERVFAIL"):
        zone = {"s1._domainkey.northwind.example": [{"type": "TXT", "fault": fault}]}
        assert [r.result for r in await _verify(signed, zone)] == ["temperror"]
    assert [r.result for r in await _verify(signed, {"x.example": []})] == ["permerror"]


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        (RSA_RECORD.replace("k=rsa;", "k=rsa; h=sha1;"), "key h= does not allow sha256"),
        (RSA_RECORD.replace("k=rsa;", "k=rsa; s=tlsrpt;"), "key not for email (s=)"),
        ("v=DKIM1; k=rsa; p=", "key revoked"),
        (RSA_RECORD.replace("k=rsa", "k=dsa"), "unknown key type k=dsa"),
        (ED_RECORD, "key type does not match a="),
        ("v=DKIM2; " + RSA_RECORD[8:], "key record has an unknown version"),
        ("v=DKIM1; k=rsa; k=rsa; p=AAAA", "key record syntax error"),
        ("v=DKIM1; k=rsa; p=!!!!", "key p= is not base64"),
    ],
)
async def test_key_record_problems_are_permerror(record: str, reason: str) -> None:
    (got,) = await _verify(sign(MESSAGE), _zone(rsa_record=record))
    assert (got.result, got.reason) == ("permerror", reason)


async def test_key_h_listing_sha256_is_accepted() -> None:
    record = RSA_RECORD.replace("k=rsa;", "k=rsa; h=sha1:sha256;")
    assert [r.result for r in await _verify(sign(MESSAGE), _zone(rsa_record=record))] == ["pass"]


async def test_oversized_and_undersized_keys_are_permerror() -> None:
    big = rsa.RSAPublicNumbers(65537, (1 << 8200) | 1).public_key()
    small = rsa.generate_private_key(65537, 768 + 256).public_key()  # 1024 bits: accepted
    for key, want in ((big, "permerror"), (small, "fail")):
        der = key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        record = f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode()}"
        assert [r.result for r in await _verify(sign(MESSAGE), _zone(rsa_record=record))] == [want]


async def test_body_length_limit() -> None:
    signed = sign(MESSAGE, length=True)
    appended = signed + b"-- \r\nadded by a list\r\n"
    assert [r.result for r in await _verify(appended)] == ["pass"]
    truncated = signed.replace(b"Numbers attached.\r\n", b"Numbers\r\n")
    (got,) = await _verify(truncated)
    assert (got.result, got.reason) == ("neutral", "l= larger than the body")


async def test_expiry_uses_the_injected_clock() -> None:
    signed = sign(MESSAGE, extra=f" x={T + 3600};")
    assert [r.result for r in await _verify(signed, now=T + 3599)] == ["pass"]
    (late,) = await _verify(signed, now=T + 3601)
    assert (late.result, late.reason) == ("neutral", "signature expired")
    (bad,) = await _verify(sign(MESSAGE, extra=f" x={T};"), now=T)
    assert (bad.result, bad.reason) == ("neutral", "x= not later than t=")


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda s: s.replace(b"v=1;", b"v=1; v=1;"), "signature tag-list syntax error"),
        (lambda s: s.replace(b"v=1;", b"v=2;"), "unsupported version"),
        (lambda s: s.replace(b" bh=", b" xbh="), "missing bh= tag"),
        (lambda s: s.replace(b"a=rsa-sha256", b"a=rsa-sha1"), "unsupported algorithm rsa-sha1"),
        (lambda s: s.replace(b"t=", b"i=@evil.example; t="), "i= not within d="),
        (lambda s: s.replace(b"h=from:", b"h="), "From not signed"),
    ],
)
async def test_signature_field_problems_are_neutral(change: Any, reason: str) -> None:
    (got,) = await _verify(change(sign(MESSAGE)))
    assert got.result == "neutral"
    assert got.reason.startswith(reason)


async def test_i_subdomain_of_d_is_fine() -> None:
    signed = sign(MESSAGE, extra=" i=alice@mail.northwind.example;")
    assert [r.result for r in await _verify(signed)] == ["pass"]


async def test_work_bounds() -> None:
    many = MESSAGE
    for _ in range(dkim_mod.MAX_SIGNATURES + 2):
        many = sign(many)
    got = await _verify(many)
    assert len(got) == dkim_mod.MAX_SIGNATURES
    assert {r.result for r in got} == {"pass"}
    headers = ":".join(["from"] + ["x-pad"] * dkim_mod.MAX_SIGNED_HEADERS)
    (wide,) = await _verify(sign(MESSAGE, headers=headers))
    assert (wide.result, wide.reason) == ("neutral", "more than 50 h= entries")


async def test_extra_from_in_h_detects_a_prepended_from() -> None:
    once = sign(MESSAGE)
    twice = sign(MESSAGE, headers="from:to:subject:date:message-id:from")
    prepend = b"From: Billing <billing@northwind.example>\r\n"
    assert [r.result for r in await _verify(prepend + once)] == ["pass"]
    assert [r.result for r in await _verify(prepend + twice)] == ["fail"]
