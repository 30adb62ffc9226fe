"""Hand-off to the MTA over SMTP: one persistent connection, retried until the MTA decides.

smtplib is blocking, so every call runs in a worker thread and the event loop keeps serving
other partitions. Three kinds of trouble, three answers:

- the MTA is unreachable or drops the connection: retry with capped backoff, without limit —
  nothing can be delivered anyway, and dropping mail because the MTA restarted would lose it;
- the MTA answers 4xx for the message or some recipients: retry only what is still pending, for
  at most ``retry_deadline_s``; then report those recipients as deferred (the caller records them),
  so one full mailbox cannot stall every sender behind it;
- 5xx: permanent, reported per recipient; a message refused for every recipient raises.
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
import threading
import time
from dataclasses import dataclass, field

from streams.settings import SmtpSettings

log = logging.getLogger(__name__)


class PermanentDeliveryError(Exception):
    """The MTA refused the message for good (5xx) for every recipient."""


class MessageTempFail(Exception):
    """The MTA answered 4xx for the whole message (MAIL FROM or DATA)."""


@dataclass
class HandoffResult:
    accepted: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)  # recipient -> permanent 5xx answer
    deferred: dict[str, str] = field(default_factory=dict)  # recipient -> last 4xx answer

    def describe(self) -> str:
        parts = [f"250 accepted for {len(self.accepted)}"]
        if self.refused:
            parts.append(f"refused: {self.refused}")
        if self.deferred:
            parts.append(f"deferred: {self.deferred}")
        return "; ".join(parts)


def _answer(code: int, text: bytes | str) -> str:
    body = text.decode(errors="replace") if isinstance(text, bytes) else text
    return f"{code} {body}"[:300]


class SmtpHandoff:
    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings
        self._conn: smtplib.SMTP | None = None
        self._lock = threading.Lock()

    def _send_blocking(
        self, mail_from: str, recipients: list[str], raw: bytes
    ) -> dict[str, tuple[int, bytes]]:
        """One SMTP transaction; returns the recipients the MTA refused, with its answers."""
        with self._lock:
            try:
                if self._conn is None:
                    self._conn = smtplib.SMTP(
                        self.settings.host, self.settings.port, timeout=self.settings.timeout_s
                    )
                return dict(self._conn.sendmail(mail_from, recipients, raw))
            except smtplib.SMTPRecipientsRefused as exc:
                self._reset()
                return dict(exc.recipients)
            except smtplib.SMTPResponseException as exc:
                self._reset()
                if exc.smtp_code >= 500:
                    raise PermanentDeliveryError(_answer(exc.smtp_code, exc.smtp_error)) from exc
                raise MessageTempFail(_answer(exc.smtp_code, exc.smtp_error)) from exc
            except (OSError, smtplib.SMTPException):
                self._close()
                raise

    def _reset(self) -> None:
        try:
            if self._conn is not None:
                self._conn.rset()
        except (OSError, smtplib.SMTPException):
            self._close()

    def _close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None

    async def send(self, mail_from: str, recipients: list[str], raw: bytes) -> HandoffResult:
        """Deliver one message; see the module docstring for what is retried and for how long."""
        result = HandoffResult()
        pending = list(recipients)
        deadline = time.monotonic() + self.settings.retry_deadline_s
        delay = self.settings.retry_backoff_s
        while pending:
            try:
                refused = await asyncio.to_thread(self._send_blocking, mail_from, pending, raw)
            except (PermanentDeliveryError, MessageTempFail) as exc:
                if isinstance(exc, PermanentDeliveryError) or time.monotonic() > deadline:
                    target = (result.refused if isinstance(exc, PermanentDeliveryError)
                              else result.deferred)
                    target.update({r: str(exc) for r in pending})
                    break
                log.warning("MTA deferred the message (%s); retrying in %.1fs", exc, delay)
            except (OSError, smtplib.SMTPException) as exc:
                log.warning("MTA unreachable (%r); retrying in %.1fs", exc, delay)
            else:
                result.accepted += [r for r in pending if r not in refused]
                result.refused.update({r: _answer(code, text) for r, (code, text)
                                       in refused.items() if code >= 500})
                pending = [r for r, (code, _) in refused.items() if code < 500]
                if pending and time.monotonic() > deadline:
                    result.deferred.update({r: _answer(*refused[r]) for r in pending})
                    break
                if not pending:
                    break
                log.warning("MTA deferred %d recipients; retrying in %.1fs", len(pending), delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.settings.retry_backoff_max_s)
        if not result.accepted and not result.deferred:
            raise PermanentDeliveryError(f"every recipient refused: {result.refused}")
        return result

    def close(self) -> None:
        with self._lock:
            self._close()
