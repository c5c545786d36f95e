"""E-mail to buyers over SMTP (aiosmtplib), plain text in UTF-8.

A 5xx answer (no such mailbox, refused as spam) is final; a 4xx answer (greylisting, mailbox
busy), a refused connection or a timeout is worth another try later."""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import formataddr, make_msgid

import aiosmtplib

from domain.contacts import mask_email
from peers.delivery import DeliveryFailed

__all__ = ["SmtpMailer"]


class SmtpMailer:
    def __init__(
        self,
        *,
        host: str,
        port: int,
        sender: str,
        sender_name: str = "",
        username: str = "",
        password: str = "",
        start_tls: bool | None = None,  # None: STARTTLS when the server offers it
        use_tls: bool = False,
        timeout: float = 10.0,
    ) -> None:
        self.host = host
        self.port = port
        self.sender = sender
        self.sender_name = sender_name
        self.username = username
        self.password = password
        self.start_tls = start_tls
        self.use_tls = use_tls
        self.timeout = timeout

    def message(self, to: str, subject: str, body: str, *, message_key: str) -> EmailMessage:
        msg = EmailMessage()
        msg["From"] = (
            formataddr((self.sender_name, self.sender)) if self.sender_name else self.sender
        )
        msg["To"] = to
        msg["Subject"] = subject
        # One id per outbox row: a resend after a lost answer carries the same Message-ID,
        # so a mail client that got both shows one.
        msg["Message-ID"] = make_msgid(
            idstring=message_key, domain=self.sender.partition("@")[2] or None
        )
        msg.set_content(body)
        return msg

    async def send(self, to: str, subject: str, body: str, *, message_key: str) -> None:
        msg = self.message(to, subject, body, message_key=message_key)
        masked = mask_email(to)
        try:
            await aiosmtplib.send(
                msg,
                hostname=self.host,
                port=self.port,
                username=self.username or None,
                password=self.password or None,
                start_tls=self.start_tls,
                use_tls=self.use_tls,
                timeout=self.timeout,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [r.code for r in exc.recipients]
            raise DeliveryFailed(
                f"mail to {masked}: refused {codes}", permanent=all(c >= 500 for c in codes)
            ) from None
        except aiosmtplib.SMTPResponseException as exc:
            raise DeliveryFailed(
                f"mail to {masked}: {exc.code} {exc.message[:200]}", permanent=exc.code >= 500
            ) from None
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise DeliveryFailed(
                f"mail to {masked}: {type(exc).__name__}", permanent=False
            ) from None
