"""Hand-off to the MTA over SMTP: one persistent connection, retried until the MTA takes the mail.

smtplib is blocking, so every call runs in a worker thread and the event loop keeps serving
other partitions. Temporary trouble (connection refused, 4xx) is retried with capped backoff —
a message is never dropped because the MTA was briefly away. A 5xx is permanent and raised.
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
import threading

from streams.settings import SmtpSettings

log = logging.getLogger(__name__)


class PermanentDeliveryError(Exception):
    """The MTA refused the message for good (5xx)."""


class SmtpHandoff:
    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings
        self._conn: smtplib.SMTP | None = None
        self._lock = threading.Lock()

    def _send_blocking(self, mail_from: str, recipients: list[str], raw: bytes) -> str:
        with self._lock:
            try:
                if self._conn is None:
                    self._conn = smtplib.SMTP(
                        self.settings.host, self.settings.port, timeout=self.settings.timeout_s
                    )
                refused = self._conn.sendmail(mail_from, recipients, raw)
                return f"250 accepted; refused={sorted(refused)}" if refused else "250 accepted"
            except smtplib.SMTPResponseException as exc:
                if exc.smtp_code >= 500:
                    self._reset_connection()
                    raise PermanentDeliveryError(f"{exc.smtp_code} {exc.smtp_error!r}") from exc
                self._close()
                raise
            except smtplib.SMTPRecipientsRefused as exc:
                self._reset_connection()
                codes = {code for code, _ in exc.recipients.values()}
                if all(code >= 500 for code in codes):
                    raise PermanentDeliveryError(f"all recipients refused: {codes}") from exc
                raise
            except (OSError, smtplib.SMTPException):
                self._close()
                raise

    def _reset_connection(self) -> None:
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

    async def send(self, mail_from: str, recipients: list[str], raw: bytes) -> str:
        """Deliver one message; returns the MTA's answer. Retries temporary failures forever."""
        delay = self.settings.retry_backoff_s
        while True:
            try:
                return await asyncio.to_thread(self._send_blocking, mail_from, recipients, raw)
            except PermanentDeliveryError:
                raise
            except (OSError, smtplib.SMTPException) as exc:
                log.warning("MTA hand-off failed (%r); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.settings.retry_backoff_max_s)

    def close(self) -> None:
        with self._lock:
            self._close()
