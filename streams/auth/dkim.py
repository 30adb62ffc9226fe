"""DKIM verification (RFC 6376, RFC 8463) with dkimpy as the verifier and our async DNS.

Every DKIM-Signature field (at most ``MAX_SIGNATURES``, topmost first) gets one ``DkimResult``
with the RFC 8601 result classes of ``/work/shared/cases/README.md``:

* the signature field is checked here (tag-list syntax, required tags, ``v=``, ``a=``,
  ``i=`` within ``d=``, From signed, ``t=``/``x=`` against the injected ``now``, ``l=`` not
  beyond the body, at most ``MAX_SIGNED_HEADERS`` ``h=`` entries) -> ``neutral``;
* the key records of all signatures are fetched concurrently through the ``Resolver``:
  timeout/SERVFAIL -> ``temperror`` (dkimpy would call that "no key"), no record -> ``permerror``;
* the key record is checked here (syntax, ``v=``, revoked ``p=``, ``k=``, ``s=``, the key's
  ``h=`` hash list that dkimpy ignores, key size) -> ``permerror``;
* dkimpy then canonicalises, selects the signed fields, hashes and checks the RSA signature
  (``DKIM.verify_sig_process``) -> ``pass`` / ``fail``. The key is handed over already parsed,
  so dkimpy does no DNS of its own. Ed25519 signatures are checked with ``cryptography`` (dkimpy
  would need PyNaCl for them) over the header hash dkimpy computes.

dkimpy's choice to hash one extra ``From`` instance (its bug #644046 hardening) is not RFC 6376
behaviour and is switched off: a prepended second From is caught by DMARC (several From fields
are a permerror there), not by failing a signature that did verify.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import re
import time
from dataclasses import dataclass
from typing import Any

import dkim
import dkim.crypto
import dkim.util
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from dkim.canonicalization import CanonicalizationPolicy, InvalidCanonicalizationPolicyError

from streams.auth.dns import DnsTempError, Resolver, normalize_name
from streams.auth.results import DkimResult

__all__ = [
    "MAX_KEY_BITS",
    "MAX_SIGNATURES",
    "MAX_SIGNED_HEADERS",
    "MIN_RSA_KEY_BITS",
    "verify_dkim",
]

MAX_SIGNATURES = 10
MAX_SIGNED_HEADERS = 50
MAX_KEY_BITS = 8192
MIN_RSA_KEY_BITS = 1024

_REQUIRED = (b"v", b"a", b"b", b"bh", b"d", b"h", b"s")
_ALGORITHMS = {b"rsa-sha256": (b"rsa", b"sha256"), b"ed25519-sha256": (b"ed25519", b"sha256")}
_B64_RE = re.compile(rb"[A-Za-z0-9+/\s]*=?\s*=?\s*")
_DIGITS_RE = re.compile(rb"[0-9]{1,16}")

_quiet = logging.getLogger("sentinelle.auth.dkimpy")
_quiet.addHandler(logging.NullHandler())
_quiet.propagate = False


class _Outcome(Exception):
    """A final result found before dkimpy's cryptographic check."""

    def __init__(self, result: str, reason: str) -> None:
        super().__init__(reason)
        self.result = result
        self.reason = reason


@dataclass(slots=True)
class _Signature:
    header: tuple[bytes, bytes]
    tags: dict[bytes, bytes]
    include_headers: list[bytes]
    key_name: str
    domain: str
    selector: str
    algorithm: str


class _SignedFields(list[bytes]):
    """The h= list exactly as signed: dkimpy's extra ``append(b'from')`` is ignored."""

    def append(self, item: bytes) -> None:
        return None


class _Ed25519Key:
    """Stands in for a PyNaCl VerifyKey inside dkimpy; records the outcome in ``valid``."""

    def __init__(self, raw: bytes) -> None:
        self._key = Ed25519PublicKey.from_public_bytes(raw)
        self.valid = False

    def verify(self, message: bytes, signature: bytes) -> None:
        try:
            self._key.verify(signature, message)
            self.valid = True
        except InvalidSignature:
            self.valid = False


def _text(v: bytes | None) -> str:
    return "" if v is None else v.decode("ascii", "replace").strip()


async def verify_dkim(
    raw: bytes, resolver: Resolver, now: float | None = None
) -> tuple[DkimResult, ...]:
    """Verify every DKIM-Signature of ``raw`` (at most MAX_SIGNATURES), topmost first.

    ``now`` (Unix time) is the verification time for ``x=``; default: the wall clock.
    An unsigned message gives ``()``.
    """
    when = time.time() if now is None else now
    try:
        verifier = dkim.DKIM(raw, logger=_quiet, minkey=MIN_RSA_KEY_BITS)
    except dkim.DKIMException as exc:
        count = min(_count_signature_fields(raw), MAX_SIGNATURES)
        return (DkimResult("neutral", "", "", "", f"unparsable message: {exc}"),) * count
    fields = [
        (bytes(n), bytes(v)) for n, v in verifier.headers if bytes(n).lower() == b"dkim-signature"
    ][:MAX_SIGNATURES]
    if not fields:
        return ()
    prepared: list[_Signature | DkimResult] = [_prepare(verifier, field, when) for field in fields]
    names = sorted({p.key_name for p in prepared if isinstance(p, _Signature)})
    fetched = await asyncio.gather(*(_fetch_key(resolver, n) for n in names))
    keys = dict(zip(names, fetched, strict=True))
    out = []
    for p in prepared:
        if isinstance(p, DkimResult):
            out.append(p)
            continue
        try:
            out.append(_verify(verifier, p, keys[p.key_name]))
        except _Outcome as o:
            out.append(DkimResult(o.result, p.domain, p.selector, p.algorithm, o.reason))
    return tuple(out)


def _count_signature_fields(raw: bytes) -> int:
    head = re.split(rb"\r?\n\r?\n", raw, maxsplit=1)[0]
    return len(re.findall(rb"(?im)^dkim-signature\s*:", head))


def _prepare(
    verifier: dkim.DKIM, field: tuple[bytes, bytes], now: float
) -> _Signature | DkimResult:
    """Check the signature field itself; a problem gives a final ``neutral`` result."""
    tags: dict[bytes, bytes] = {}
    try:
        tags = dkim.util.parse_tag_value(field[1])
        domain_b = tags.get(b"d", b"")
        result = _check_signature_tags(verifier, tags, now)
    except dkim.util.InvalidTagValueList as exc:
        return DkimResult("neutral", "", "", "", f"signature tag-list syntax error: {exc}")
    except _Outcome as o:
        return DkimResult(
            o.result,
            _text(tags.get(b"d")).lower(),
            _text(tags.get(b"s")),
            _text(tags.get(b"a")),
            o.reason,
        )
    key_name, include = result
    return _Signature(
        header=field,
        tags=tags,
        include_headers=include,
        key_name=key_name,
        domain=_text(domain_b).lower(),
        selector=_text(tags.get(b"s")),
        algorithm=_text(tags.get(b"a")),
    )


def _check_signature_tags(
    verifier: dkim.DKIM, tags: dict[bytes, bytes], now: float
) -> tuple[str, list[bytes]]:
    for tag in _REQUIRED:
        if tag not in tags:
            raise _Outcome("neutral", f"missing {tag.decode()}= tag")
    if tags[b"v"] != b"1":
        raise _Outcome("neutral", "unsupported version")
    if tags[b"a"] not in _ALGORITHMS:
        raise _Outcome("neutral", f"unsupported algorithm {_text(tags[b'a'])}")
    try:
        policy = CanonicalizationPolicy.from_c_value(tags.get(b"c", b"simple/simple"))
    except InvalidCanonicalizationPolicyError:
        raise _Outcome("neutral", "unknown canonicalization") from None
    if b"q" in tags and b"dns/txt" not in [q.strip() for q in tags[b"q"].split(b":")]:
        raise _Outcome("neutral", "unsupported query method")
    for tag in (b"b", b"bh"):
        value = tags[tag]
        if not _B64_RE.fullmatch(value) or not value.strip():
            raise _Outcome("neutral", f"{tag.decode()}= is not base64")
        try:
            base64.b64decode(re.sub(rb"\s+", b"", value), validate=True)
        except (binascii.Error, ValueError):
            raise _Outcome("neutral", f"{tag.decode()}= is not base64") from None
    domain = normalize_name(_text(tags[b"d"]))
    selector = _text(tags[b"s"])
    key_name = normalize_name(f"{selector}._domainkey.{domain}") if domain and selector else None
    if domain is None or key_name is None or not re.fullmatch(r"[A-Za-z0-9._-]+", key_name):
        raise _Outcome("neutral", "malformed d= or s=")
    if b"i" in tags:
        i_domain = normalize_name(_text(tags[b"i"]).rpartition("@")[2])
        if i_domain is None or not (i_domain == domain or i_domain.endswith("." + domain)):
            raise _Outcome("neutral", "i= not within d=")
    include = [h.strip().lower() for h in tags[b"h"].split(b":")]
    if len(include) > MAX_SIGNED_HEADERS:
        raise _Outcome("neutral", f"more than {MAX_SIGNED_HEADERS} h= entries")
    if any(not h for h in include):
        raise _Outcome("neutral", "empty h= entry")
    if b"from" not in include:
        raise _Outcome("neutral", "From not signed")
    t = _number(tags, b"t")
    x = _number(tags, b"x")
    if x is not None:
        if t is not None and x <= t:
            raise _Outcome("neutral", "x= not later than t=")
        if now > x:
            raise _Outcome("neutral", "signature expired")
    length = _number(tags, b"l")
    if length is not None and length > len(policy.canonicalize_body(verifier.body)):
        raise _Outcome("neutral", "l= larger than the body")
    return key_name, include


def _number(tags: dict[bytes, bytes], tag: bytes) -> int | None:
    if tag not in tags:
        return None
    if not _DIGITS_RE.fullmatch(tags[tag]):
        raise _Outcome("neutral", f"{tag.decode()}= is not a number")
    return int(tags[tag])


async def _fetch_key(resolver: Resolver, name: str) -> bytes | _Outcome:
    try:
        records = await resolver.txt(name)
    except DnsTempError as exc:
        return _Outcome("temperror", f"key lookup failed: {exc}")
    if not records:
        return _Outcome("permerror", "no key record")
    return b"".join(records[0])


def _parse_key(record: bytes, algorithm: bytes) -> tuple[Any, int, bytes]:
    """(dkimpy key object, bits, ktag) or raise a ``permerror`` outcome."""
    try:
        key = dkim.util.parse_tag_value(record.strip())
    except dkim.util.InvalidTagValueList:
        raise _Outcome("permerror", "key record syntax error") from None
    if b"v" in key and key[b"v"] != b"DKIM1":
        raise _Outcome("permerror", "key record has an unknown version")
    if b"p" not in key:
        raise _Outcome("permerror", "key record without p=")
    p = re.sub(rb"\s+", b"", key[b"p"])
    if not p:
        raise _Outcome("permerror", "key revoked")
    services = [s.strip() for s in key.get(b"s", b"*").split(b":")]
    if not any(s in (b"*", b"email") for s in services):
        raise _Outcome("permerror", "key not for email (s=)")
    key_type, hash_name = _ALGORITHMS[algorithm]
    if b"h" in key and hash_name not in [h.strip() for h in key[b"h"].split(b":")]:
        raise _Outcome("permerror", f"key h= does not allow {hash_name.decode()}")
    k = key.get(b"k", b"rsa")
    if k not in (b"rsa", b"ed25519"):
        raise _Outcome("permerror", f"unknown key type k={_text(k)}")
    if k != key_type:
        raise _Outcome("permerror", "key type does not match a=")
    try:
        data = base64.b64decode(p, validate=True)
    except (binascii.Error, ValueError):
        raise _Outcome("permerror", "key p= is not base64") from None
    if k == b"ed25519":
        if len(data) != 32:
            raise _Outcome("permerror", "Ed25519 key is not 32 octets")
        return _Ed25519Key(data), 256, b"ed25519"
    if len(data) > MAX_KEY_BITS // 8 + 64:
        raise _Outcome("permerror", f"key larger than {MAX_KEY_BITS} bits")
    try:
        pk = dkim.crypto.parse_public_key(data)
    except (dkim.crypto.UnparsableKeyError, ValueError, TypeError, IndexError):
        raise _Outcome("permerror", "RSA key cannot be parsed") from None
    bits = int(pk["modulus"]).bit_length()
    if bits > MAX_KEY_BITS:
        raise _Outcome("permerror", f"key larger than {MAX_KEY_BITS} bits")
    if bits < MIN_RSA_KEY_BITS:
        raise _Outcome("permerror", f"key smaller than {MIN_RSA_KEY_BITS} bits")
    return pk, bits, b"rsa"


def _verify(verifier: dkim.DKIM, sig: _Signature, key: bytes | _Outcome) -> DkimResult:
    if isinstance(key, _Outcome):
        raise key
    pk, bits, ktag = _parse_key(key, sig.tags[b"a"])
    verifier.pk, verifier.keysize, verifier.ktag, verifier.seqtlsrpt = pk, bits, ktag, False
    verifier.signature_fields = sig.tags
    verifier.domain, verifier.selector = sig.tags[b"d"], sig.tags[b"s"]
    try:
        ok = verifier.verify_sig_process(
            sig.tags, _SignedFields(sig.include_headers), sig.header, _no_dns
        )
    except dkim.ValidationError as exc:
        if "body hash" in str(exc):
            raise _Outcome("fail", "body hash did not verify") from None
        raise _Outcome("neutral", str(exc)) from None
    except dkim.KeyFormatError as exc:
        raise _Outcome("permerror", str(exc)) from None
    except dkim.DKIMException as exc:
        raise _Outcome("neutral", str(exc)) from None
    if isinstance(pk, _Ed25519Key):
        ok = bool(ok) and pk.valid
    if not ok:
        raise _Outcome("fail", "signature did not verify")
    return DkimResult("pass", sig.domain, sig.selector, sig.algorithm)


def _no_dns(name: bytes, timeout: float = 5) -> bytes:
    raise AssertionError("dkimpy must not query DNS: the key is fetched by verify_dkim")
