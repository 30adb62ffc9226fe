"""One call for the authenticate stage: SPF, DKIM and DMARC of one outbound message.

Pure (no Faust, no Kafka): the resolver and the verification time are injected.
SPF and DKIM run concurrently; DMARC then combines them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from streams.auth.dkim import verify_dkim
from streams.auth.dmarc import DmarcMode, evaluate_dmarc
from streams.auth.dns import Resolver
from streams.auth.results import AuthResults
from streams.auth.spf import check_host, spf_domain_of
from streams.auth.spf_cache import SpfCache

__all__ = ["authenticate"]


async def authenticate(
    *,
    raw: bytes,
    client_ip: str,
    helo: str,
    mail_from: str,
    resolver: Resolver,
    now: float | None = None,
    public_suffixes: Sequence[str] | None = None,
    dmarc_mode: DmarcMode = "rfc9989",
    spf_cache: SpfCache | None = None,
) -> AuthResults:
    """SPF for the MAIL FROM identity (``postmaster@<helo>`` when empty), every DKIM signature,
    and DMARC for the RFC5322.From domain.

    ``now`` is the Unix time used for DKIM ``x=`` checks and SPF's ``%{t}``; ``public_suffixes``
    replaces the bundled public suffix list for organizational domains (tests, demos) in
    ``dmarc_mode="rfc7489"``; the default ``"rfc9989"`` uses the DNS tree walk.
    """
    sender, domain = spf_domain_of(mail_from, helo)
    spf, dkim = await asyncio.gather(
        (spf_cache.check_host if spf_cache is not None else check_host)(
            client_ip, domain, sender, helo, resolver, now=now
        ),
        verify_dkim(raw, resolver, now=now),
    )
    dmarc = await evaluate_dmarc(raw, spf, dkim, resolver, public_suffixes, mode=dmarc_mode)
    return AuthResults(spf=spf, dkim=dkim, dmarc=dmarc, from_domain=dmarc.author_domain)
