"""DKIM verification speed: Sentinelle's ``verify_dkim`` against stock dkimpy.

Signs a relaxed/relaxed RSA-2048 message of 1 KB, 10 KB and 100 KB once (dkimpy), then times
``dkim.verify`` (stock, key served by ``dnsfunc``) and ``streams.auth.dkim.verify_dkim`` (key
served by an in-process resolver, so no network in either) and prints both and the ratio.
Both must agree (pass) on every message. Run: ``.venv/bin/python bench/dkim_speed.py [-n N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import random
import time

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from streams.auth.dkim import verify_dkim
from streams.auth.dns import StaticResolver

NOW = 1_704_067_300
SIZES = {"1 KB": 1_024, "10 KB": 10_240, "100 KB": 102_400}


def _message(size: int, rng: random.Random) -> bytes:
    head = (
        b"From: Alice <alice@northwind.example>\r\nTo: bob@example.org\r\n"
        b"Subject: quarterly report\r\nDate: Mon, 01 Jan 2024 00:00:00 +0000\r\n"
        b"Message-ID: <q1@northwind.example>\r\n\r\n"
    )
    words = [b"alpha", b"beta ", b"gamma\t", b"delta  ", b"epsilon"]
    lines: list[bytes] = []
    total = len(head)
    while total < size:
        line = b" ".join(rng.choice(words) for _ in range(rng.randint(3, 14)))
        lines.append(line)
        total += len(line) + 2
    return head + b"\r\n".join(lines) + b"\r\n"


async def _ours(msg: bytes, resolver: StaticResolver, n: int) -> tuple[float, str]:
    result = (await verify_dkim(msg, resolver, now=NOW))[0].result
    start = time.perf_counter()
    for _ in range(n):
        await verify_dkim(msg, resolver, now=NOW)
    return (time.perf_counter() - start) / n, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=200, help="verifications per size")
    args = parser.parse_args()
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    pub = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(pub)
    name = "s1._domainkey.northwind.example"
    resolver = StaticResolver({name: [{"type": "TXT", "value": record.decode()}]})

    def dnsfunc(qname: bytes, timeout: float = 5) -> bytes:
        return record if qname.decode().rstrip(".") == name else b""

    rng = random.Random(7)
    print(f"{'size':>7} {'dkimpy ms':>10} {'sentinelle ms':>14} {'ratio':>6}  verdicts")
    for label, size in SIZES.items():
        body = _message(size, rng)
        sig = dkim.sign(
            body, b"s1", b"northwind.example", pem,
            canonicalize=(b"relaxed", b"relaxed"),
            include_headers=[b"from", b"to", b"subject", b"date", b"message-id"],
        )
        msg = sig + body
        stock_ok = dkim.verify(msg, dnsfunc=dnsfunc)
        start = time.perf_counter()
        for _ in range(args.n):
            dkim.verify(msg, dnsfunc=dnsfunc)
        stock = (time.perf_counter() - start) / args.n
        ours, verdict = asyncio.run(_ours(msg, resolver, args.n))
        same = "same" if (verdict == "pass") == bool(stock_ok) else "DIFFERENT"
        print(
            f"{label:>7} {stock * 1e3:10.3f} {ours * 1e3:14.3f} {stock / ours:6.2f}  "
            f"dkimpy={'pass' if stock_ok else 'fail'} sentinelle={verdict} ({same})"
        )


if __name__ == "__main__":
    main()
