"""The delivery sink: a real SMTP server (aiosmtpd) that records every accepted message.

The demo and the integration tests need proof of what was *delivered*, not what the pipeline
believes it sent. Each accepted message becomes one JSON line in ``<dir>/deliveries.jsonl``
(flushed and fsynced before the 250 reply, so a line exists for every "250 OK" a client saw)
and a copy under ``<dir>/mail/``. Duplicate deliveries therefore show up as duplicate lines
with the same ``message_id``.

Recipients or whole messages can be rejected (5xx) or temp-failed (4xx) by pattern, and the
first N attempts of every message can be temp-failed, so retry paths are testable.

CLI: ``python -m streams.embedded.smtp_sink --dir D --port N`` prints ``ready 127.0.0.1:N``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fnmatch
import hashlib
import json
import os
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

from streams.embedded.procs import (
    LOOPBACK,
    exit_when_stdin_closes,
    free_port,
    serve_until_signalled,
    serving,
)

__all__ = ["SinkHandler", "SinkPolicy", "read_deliveries", "serve", "start_smtp_sink"]

DELIVERIES = "deliveries.jsonl"


@dataclass
class SinkPolicy:
    """Which recipients to refuse, as fnmatch patterns on the lower-cased address.

    ``tempfail_first`` temp-fails the first N DATA attempts of each message (by Message-ID, or
    by body hash without one), then accepts: the shape of a greylisting receiver.
    """

    reject: Sequence[str] = ()
    tempfail: Sequence[str] = ()
    tempfail_first: int = 0
    _attempts: Counter[str] = field(default_factory=Counter)

    def rcpt_reply(self, address: str) -> str | None:
        """The refusal for ``address`` (an SMTP reply line), or None to accept it."""
        addr = address.lower()
        if any(fnmatch.fnmatchcase(addr, p.lower()) for p in self.reject):
            return "550 5.1.1 Recipient rejected by sink policy"
        if any(fnmatch.fnmatchcase(addr, p.lower()) for p in self.tempfail):
            return "451 4.3.0 Recipient temporarily refused by sink policy"
        return None

    def data_reply(self, key: str) -> str | None:
        """A 4xx for the first ``tempfail_first`` attempts of message ``key``, else None."""
        if self.tempfail_first <= 0:
            return None
        self._attempts[key] += 1
        if self._attempts[key] <= self.tempfail_first:
            return "451 4.7.1 Try again later (sink greylisting)"
        return None


class SinkHandler:
    """aiosmtpd handler that stores accepted messages and appends their delivery records."""

    def __init__(self, directory: str | os.PathLike[str], policy: SinkPolicy | None = None):
        self.dir = Path(directory)
        self.mail_dir = self.dir / "mail"
        self.mail_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.dir / DELIVERIES
        self.policy = policy or SinkPolicy()
        self._seq = 0

    async def handle_RCPT(  # aiosmtpd's hook name
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        """Accept or refuse one recipient according to the policy."""
        refusal = self.policy.rcpt_reply(address)
        if refusal is not None:
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(  # aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        """Store the message and append its JSON line (fsynced) before answering 250."""
        raw = envelope.original_content or envelope.content or b""
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        sha = hashlib.sha256(raw).hexdigest()
        headers = BytesHeaderParser().parsebytes(raw)
        message_id = (headers.get("Message-ID") or "").strip() or None
        refusal = self.policy.data_reply(message_id or sha)
        if refusal is not None:
            return refusal
        now = datetime.now(UTC)
        self._seq += 1
        name = f"{now.strftime('%Y%m%dT%H%M%S%f')}-{self._seq:06d}-{sha[:12]}.eml"
        (self.mail_dir / name).write_bytes(raw)
        record: dict[str, Any] = {
            "message_id": message_id,
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "size": len(raw),
            "sha256": sha,
            "time": now.isoformat(),
            "file": f"mail/{name}",
            "peer": session.peer[0] if isinstance(session.peer, tuple) else str(session.peer),
        }
        line = json.dumps(record, separators=(",", ":"), ensure_ascii=False) + "\n"
        with open(self.log_path, "a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())
        return f"250 2.0.0 OK queued as {sha[:12]}"


def read_deliveries(directory: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """All delivery records in ``<directory>/deliveries.jsonl``, oldest first.

    A final line without a newline (a write cut short) is skipped rather than misparsed.
    """
    path = Path(directory) / DELIVERIES
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    lines = text.split("\n")
    complete = lines[:-1]  # the last element is "" when the file ends with a newline
    return [json.loads(line) for line in complete if line.strip()]


async def serve(
    directory: str | os.PathLike[str],
    host: str = LOOPBACK,
    port: int = 2525,
    policy: SinkPolicy | None = None,
) -> asyncio.Server:
    """Start the SMTP sink on the running loop; returns the listening server."""
    handler = SinkHandler(directory, policy)
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        lambda: SMTP(handler, hostname="sentinelle-sink", enable_SMTPUTF8=True),
        host=host,
        port=port,
    )


async def _main_async(args: argparse.Namespace) -> None:
    policy = SinkPolicy(
        reject=args.reject, tempfail=args.tempfail, tempfail_first=args.tempfail_first
    )
    server = await serve(args.dir, args.host, args.port, policy)
    await serve_until_signalled(f"ready {args.host}:{args.port}")
    server.close()
    await server.wait_closed()


def main(argv: Sequence[str] | None = None) -> None:
    """CLI entry point: run the sink until SIGINT/SIGTERM (or stdin EOF with the flag)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", required=True, help="where deliveries.jsonl and mail/ go")
    parser.add_argument("--host", default=LOOPBACK)
    parser.add_argument("--port", type=int, default=2525)
    parser.add_argument("--reject", action="append", default=[], metavar="PATTERN",
                        help="reject recipients matching this fnmatch pattern (550)")
    parser.add_argument("--tempfail", action="append", default=[], metavar="PATTERN",
                        help="temp-fail recipients matching this fnmatch pattern (451)")
    parser.add_argument("--tempfail-first", type=int, default=0, metavar="N",
                        help="temp-fail the first N DATA attempts of every message")
    parser.add_argument("--exit-on-stdin-eof", action="store_true",
                        help="exit when stdin closes (the parent died)")
    args = parser.parse_args(argv)
    if args.exit_on_stdin_eof:
        exit_when_stdin_closes()
    asyncio.run(_main_async(args))


@contextlib.contextmanager
def start_smtp_sink(
    directory: str | os.PathLike[str],
    port: int | None = None,
    *,
    reject: Sequence[str] = (),
    tempfail: Sequence[str] = (),
    tempfail_first: int = 0,
    timeout: float = 15.0,
) -> Iterator[tuple[str, int]]:
    """Run the sink as a child process for the ``with`` block; yields ``(host, port)``."""
    port = port or free_port("tcp")
    Path(directory).mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "streams.embedded.smtp_sink", "--dir", str(directory),
            "--port", str(port), "--exit-on-stdin-eof",
            "--tempfail-first", str(tempfail_first)]
    for pattern in reject:
        argv += ["--reject", pattern]
    for pattern in tempfail:
        argv += ["--tempfail", pattern]
    with serving(argv, name=f"smtp-sink-{port}", port=port, ready_text="ready",
                 timeout=timeout) as address:
        yield address


if __name__ == "__main__":
    main()
