"""The SMTP sink records exactly what it accepted, and refuses on request."""

from __future__ import annotations

import hashlib
import smtplib
from email.message import EmailMessage
from pathlib import Path

import pytest

from streams.embedded.smtp_sink import read_deliveries, start_smtp_sink

pytestmark = pytest.mark.integration


def make_message(message_id: str, body: str = "hello\n") -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "alice@contoso.example"
    msg["To"] = "bob@partner1.example"
    msg["Subject"] = "test"
    msg["Message-ID"] = message_id
    msg.set_content(body)
    return msg


def test_send_appends_one_line(smtp_sink: tuple[str, int, Path], unique: str) -> None:
    host, port, directory = smtp_sink
    msg = make_message(f"<{unique}@contoso.example>")
    with smtplib.SMTP(host, port, timeout=5) as client:
        refused = client.send_message(
            msg, "alice@contoso.example", ["bob@partner1.example", "carol@partner2.example"]
        )
    assert refused == {}
    mine = [d for d in read_deliveries(directory) if d["message_id"] == msg["Message-ID"]]
    assert len(mine) == 1
    record = mine[0]
    assert record["mail_from"] == "alice@contoso.example"
    assert record["rcpt_tos"] == ["bob@partner1.example", "carol@partner2.example"]
    stored = (directory / record["file"]).read_bytes()
    assert record["size"] == len(stored)
    assert record["sha256"] == hashlib.sha256(stored).hexdigest()
    assert b"Subject: test" in stored
    assert record["time"].endswith("+00:00")


def test_rejected_and_tempfailed_recipients(tmp_path: Path) -> None:
    sink = start_smtp_sink(tmp_path, reject=["bad*@*"], tempfail=["*@slow.example"])
    with sink as (h, p), smtplib.SMTP(h, p, timeout=5) as client:
        refused = client.send_message(
            make_message("<r1@x>"),
            "a@contoso.example",
            ["bad1@partner1.example", "x@slow.example", "ok@partner1.example"],
        )
        assert refused["bad1@partner1.example"][0] == 550
        assert refused["x@slow.example"][0] == 451
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            client.send_message(make_message("<r2@x>"), "a@c.example", ["bad@x.example"])
    deliveries = read_deliveries(tmp_path)
    assert [d["rcpt_tos"] for d in deliveries] == [["ok@partner1.example"]]


def test_tempfail_first_attempts_then_accept(tmp_path: Path) -> None:
    with start_smtp_sink(tmp_path, tempfail_first=2) as (h, p):
        msg = make_message("<grey@contoso.example>")
        for _ in range(2):
            with smtplib.SMTP(h, p, timeout=5) as client, pytest.raises(
                smtplib.SMTPDataError
            ) as err:
                client.send_message(msg, "a@contoso.example", ["b@partner1.example"])
            assert err.value.smtp_code == 451
        with smtplib.SMTP(h, p, timeout=5) as client:
            client.send_message(msg, "a@contoso.example", ["b@partner1.example"])
    assert [d["message_id"] for d in read_deliveries(tmp_path)] == ["<grey@contoso.example>"]


def test_read_deliveries_skips_a_torn_last_line(tmp_path: Path) -> None:
    (tmp_path / "deliveries.jsonl").write_text('{"message_id": "<a@x>"}\n{"message_')
    assert read_deliveries(tmp_path) == [{"message_id": "<a@x>"}]
    assert read_deliveries(tmp_path / "missing") == []
