"""Stage 2 — authenticate.

Consumes ``sentinelle.accepted.v1`` (key ``account_id``), produces
``sentinelle.authenticated.v1`` (same key): the event plus SPF, DKIM and DMARC results
(``auth``) and their RFC 8601 ``Authentication-Results`` field value
(``authentication_results``, authserv-id = the app id), checked over async DNS so the event
loop never blocks. DMARC follows ``Settings.dmarc_mode``. No table.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from streams import wire
from streams.auth.check import authenticate as check_authentication
from streams.auth.spf_cache import SpfCache
from streams.stage import Ids, consume

if TYPE_CHECKING:
    from streams.app import Pipeline


def attach(pipeline: Pipeline) -> None:
    authenticated = pipeline.topics.authenticated
    spf_cache = SpfCache()  # per worker; bounded by the TTLs of the resolver's answers

    async def handle(event: Any, ids: Ids) -> None:
        message = wire.loads(event.value)
        ids.note(message)
        results = await check_authentication(
            raw=wire.unb64(message["raw_message_b64"]),
            client_ip=message["client_ip"],
            helo=message["helo"],
            mail_from=message["envelope_from"],
            resolver=pipeline.resolver,
            now=wire.parse_rfc3339(message["timestamp"]),
            dmarc_mode=pipeline.settings.dmarc_mode,
            spf_cache=spf_cache,
        )
        message["auth"] = results.to_dict()
        message["authentication_results"] = results.authentication_results(
            pipeline.settings.app_id
        )
        await authenticated.send(key=event.key, value=wire.dumps(message))

    @pipeline.app.agent(pipeline.topics.accepted, name="authenticate", concurrency=1)
    async def authenticate(stream: Any) -> None:
        await consume(pipeline, stream, "authenticate", handle)
