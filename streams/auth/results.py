"""Result types of the authentication checks: small frozen dataclasses with JSON-safe dicts.

Result words follow RFC 8601 (``Authentication-Results``): SPF results are those of RFC 7208
section 2.6, DKIM results those of RFC 8601 section 2.7.1, DMARC results those of RFC 7489.

>>> r = AuthResults(
...     spf=SpfResult("pass", "northwind.example"),
...     dkim=(DkimResult("pass", "northwind.example", "s1", "rsa-sha256"),),
...     dmarc=DmarcResult("pass", "northwind.example", "northwind.example", "reject", True, True),
...     from_domain="northwind.example",
... )
>>> AuthResults.from_dict(r.to_dict()) == r
True
>>> r.authentication_results("mx.sentinelle.example")  # doctest: +NORMALIZE_WHITESPACE
'mx.sentinelle.example; spf=pass smtp.mailfrom=northwind.example;
 dkim=pass header.d=northwind.example header.s=s1 header.a=rsa-sha256;
 dmarc=pass (p=reject) header.from=northwind.example'
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

SPF_RESULTS = frozenset({"pass", "fail", "softfail", "neutral", "none", "temperror", "permerror"})
DKIM_RESULTS = frozenset({"pass", "fail", "neutral", "permerror", "temperror"})
DMARC_RESULTS = frozenset({"pass", "fail", "none", "temperror", "permerror"})


_TOKEN_RE = re.compile(r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+")
_UNSAFE_RE = re.compile(r"[\x00-\x1f\x7f]")


def _value(text: str) -> str:
    """An RFC 8601 ``value``: a MIME token as is, else a quoted-string; control characters
    (CR, LF, ...) are dropped so hostile input cannot inject header lines."""
    text = _UNSAFE_RE.sub("", text)
    if _TOKEN_RE.fullmatch(text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _check(value: str, allowed: frozenset[str], what: str) -> None:
    if value not in allowed:
        raise ValueError(f"unknown {what} result {value!r}")


@dataclass(frozen=True, slots=True)
class SpfResult:
    """check_host() result for one identity (``domain`` is the MAIL FROM or HELO domain)."""

    result: str
    domain: str
    explanation: str = ""

    def __post_init__(self) -> None:
        _check(self.result, SPF_RESULTS, "SPF")

    def to_dict(self) -> dict[str, Any]:
        return {"result": self.result, "domain": self.domain, "explanation": self.explanation}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SpfResult:
        return cls(str(d["result"]), str(d["domain"]), str(d.get("explanation", "")))


@dataclass(frozen=True, slots=True)
class DkimResult:
    """Outcome of one DKIM-Signature field; ``reason`` says why it is not ``pass``."""

    result: str
    domain: str
    selector: str
    algorithm: str
    reason: str = ""

    def __post_init__(self) -> None:
        _check(self.result, DKIM_RESULTS, "DKIM")

    def to_dict(self) -> dict[str, Any]:
        return {
            "result": self.result,
            "domain": self.domain,
            "selector": self.selector,
            "algorithm": self.algorithm,
            "reason": self.reason,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DkimResult:
        return cls(
            str(d["result"]),
            str(d["domain"]),
            str(d["selector"]),
            str(d["algorithm"]),
            str(d.get("reason", "")),
        )


@dataclass(frozen=True, slots=True)
class DmarcResult:
    """DMARC verdict. ``spf_aligned``/``dkim_aligned`` mean "passed *and* aligned"."""

    result: str
    author_domain: str | None
    policy_domain: str | None
    policy: str | None
    spf_aligned: bool
    dkim_aligned: bool

    def __post_init__(self) -> None:
        _check(self.result, DMARC_RESULTS, "DMARC")

    def to_dict(self) -> dict[str, Any]:
        return {
            "result": self.result,
            "author_domain": self.author_domain,
            "policy_domain": self.policy_domain,
            "policy": self.policy,
            "spf_aligned": self.spf_aligned,
            "dkim_aligned": self.dkim_aligned,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DmarcResult:
        def opt(key: str) -> str | None:
            v = d.get(key)
            return None if v is None else str(v)

        return cls(
            str(d["result"]),
            opt("author_domain"),
            opt("policy_domain"),
            opt("policy"),
            bool(d.get("spf_aligned", False)),
            bool(d.get("dkim_aligned", False)),
        )


@dataclass(frozen=True, slots=True)
class AuthResults:
    """Everything the authenticate stage adds to an event."""

    spf: SpfResult
    dkim: tuple[DkimResult, ...]
    dmarc: DmarcResult
    from_domain: str | None

    def authentication_results(self, authserv_id: str) -> str:
        """The ``Authentication-Results`` field value (RFC 8601), without the field name.

        One ``resinfo`` per method: SPF for ``smtp.mailfrom`` (the identity checked), one DKIM
        entry per signature (``dkim=none`` when unsigned) with ``header.d``/``header.s``/
        ``header.a`` and a ``reason`` when not ``pass``, and DMARC with the requested policy as
        a comment and ``header.from``. Unfolded; a writer folds it when adding the header.
        """
        parts = [_value(authserv_id)]
        spf = f"spf={self.spf.result}"
        if self.spf.domain:
            spf += f" smtp.mailfrom={_value(self.spf.domain)}"
        parts.append(spf)
        if not self.dkim:
            parts.append("dkim=none")
        for d in self.dkim:
            entry = f"dkim={d.result}"
            if d.reason and d.result != "pass":
                entry += f" reason={_value(d.reason)}"
            for ptype, pvalue in (("d", d.domain), ("s", d.selector), ("a", d.algorithm)):
                if pvalue:
                    entry += f" header.{ptype}={_value(pvalue)}"
            parts.append(entry)
        dmarc = f"dmarc={self.dmarc.result}"
        if self.dmarc.policy:
            dmarc += f" (p={_UNSAFE_RE.sub('', self.dmarc.policy)})"
        if self.dmarc.author_domain:
            dmarc += f" header.from={_value(self.dmarc.author_domain)}"
        parts.append(dmarc)
        return "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "spf": self.spf.to_dict(),
            "dkim": [d.to_dict() for d in self.dkim],
            "dmarc": self.dmarc.to_dict(),
            "from_domain": self.from_domain,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AuthResults:
        fd = d.get("from_domain")
        return cls(
            spf=SpfResult.from_dict(d["spf"]),
            dkim=tuple(DkimResult.from_dict(x) for x in d.get("dkim", ())),
            dmarc=DmarcResult.from_dict(d["dmarc"]),
            from_domain=None if fd is None else str(fd),
        )
