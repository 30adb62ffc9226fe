"""The MTA hand-off against a real SMTP server: what is retried, deferred and refused."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from streams.embedded.procs import free_port
from streams.embedded.smtp_sink import read_deliveries, start_smtp_sink
from streams.settings import SmtpSettings
from streams.smtp_client import PermanentDeliveryError, SmtpHandoff

pytestmark = pytest.mark.integration

RAW = b"From: a@northwind.example\r\nTo: x@y.example\r\nMessage-ID: <h1@n.example>\r\n\r\nhi\r\n"


def handoff(port: int, deadline: float = 2.0) -> SmtpHandoff:
    return SmtpHandoff(SmtpSettings(port=port, retry_backoff_s=0.05, retry_backoff_max_s=0.2,
                                    retry_deadline_s=deadline))


async def test_refused_and_deferred_recipients_are_reported_apart(tmp_path: Path) -> None:
    with start_smtp_sink(tmp_path, reject=["gone@*"], tempfail=["full@*"]) as (_, port):
        started = time.monotonic()
        result = await handoff(port, deadline=0.5).send(
            "b@n.example", ["ok@y.example", "gone@y.example", "full@y.example"], RAW)
        assert time.monotonic() - started < 5, "a deferred recipient must not block for ever"
    assert result.accepted == ["ok@y.example"]
    assert list(result.refused) == ["gone@y.example"]
    assert result.refused["gone@y.example"].startswith("550")
    assert list(result.deferred) == ["full@y.example"]
    (delivery,) = read_deliveries(tmp_path)
    assert delivery["rcpt_tos"] == ["ok@y.example"]


async def test_a_greylisting_mta_gets_the_message_on_a_retry(tmp_path: Path) -> None:
    with start_smtp_sink(tmp_path, tempfail_first=2) as (_, port):
        result = await handoff(port).send("b@n.example", ["ok@y.example"], RAW)
    assert result.accepted == ["ok@y.example"] and not result.deferred
    assert len(read_deliveries(tmp_path)) == 1


async def test_refused_for_every_recipient_raises(tmp_path: Path) -> None:
    with (
        start_smtp_sink(tmp_path, reject=["*"]) as (_, port),
        pytest.raises(PermanentDeliveryError, match="550"),
    ):
        await handoff(port).send("b@n.example", ["a@y.example"], RAW)


async def test_an_mta_that_comes_up_late_still_gets_the_message(tmp_path: Path) -> None:
    port = free_port()
    client = handoff(port, deadline=0.1)  # the deadline is for 4xx answers, not for outages
    sending = asyncio.create_task(client.send("b@n.example", ["ok@y.example"], RAW))
    await asyncio.sleep(1.0)
    assert not sending.done()
    with start_smtp_sink(tmp_path, port=port):
        result = await asyncio.wait_for(sending, 15)
    assert result.accepted == ["ok@y.example"]
