"""Pure e-mail authentication cores: SPF (RFC 7208), DKIM (RFC 6376/8463), DMARC (RFC 7489).

No Faust or Kafka imports; DNS comes in through the ``Resolver`` protocol of ``streams.auth.dns``.
"""

from streams.auth.check import authenticate
from streams.auth.dkim import verify_dkim
from streams.auth.dmarc import evaluate_dmarc
from streams.auth.dns import DnsResolver, DnsTempError, Resolver, StaticResolver
from streams.auth.results import AuthResults, DkimResult, DmarcResult, SpfResult
from streams.auth.spf import check_host

__all__ = [
    "AuthResults",
    "DkimResult",
    "DmarcResult",
    "DnsResolver",
    "DnsTempError",
    "Resolver",
    "SpfResult",
    "StaticResolver",
    "authenticate",
    "check_host",
    "evaluate_dmarc",
    "verify_dkim",
]
