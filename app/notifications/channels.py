"""Channels that carry messages: email over SMTP, SMS through a provider interface."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import parseaddr
from typing import Protocol

import aiosmtplib

from app.core.settings import Settings

logger = logging.getLogger("tourline.notifications")


@dataclass(frozen=True, slots=True)
class Attachment:
    filename: str
    content: bytes
    maintype: str
    subtype: str


@dataclass(frozen=True, slots=True)
class Email:
    to: str
    subject: str
    text: str
    html: str
    attachments: list[Attachment] = field(default_factory=list)
    # The same on every attempt of one notification, so that receivers can drop a copy.
    message_id: str = ""


class DeliveryError(Exception):
    """The channel refused or could not be reached. A temporary refusal (SMTP 4xx) or a
    failure that leaves the outcome unknown (a dropped connection, a timeout) is tried
    again later; a permanent refusal (SMTP 5xx) is not."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


def message_id(key: str, mail_from: str) -> str:
    """The Message-ID of a notification, derived from its natural key."""
    domain = parseaddr(mail_from)[1].rpartition("@")[2] or "tourline.invalid"
    return f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}@{domain}>"


def _permanent(exc: Exception) -> bool:
    """An SMTP reply that says "never": 5xx for the message or for every recipient."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        return bool(exc.recipients) and all(r.code >= 500 for r in exc.recipients)
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return exc.code >= 500
    return False


async def send_email(settings: Settings, email: Email, command_timeout: float = 15) -> None:
    """Hand the message to the SMTP server; `command_timeout` bounds each step of the
    dialogue (the caller bounds the whole)."""
    message = EmailMessage()
    message["From"] = settings.mail_from
    message["To"] = email.to
    message["Subject"] = email.subject
    if email.message_id:
        message["Message-ID"] = email.message_id
    message.set_content(email.text)
    message.add_alternative(email.html, subtype="html")
    for attachment in email.attachments:
        message.add_attachment(
            attachment.content,
            maintype=attachment.maintype,
            subtype=attachment.subtype,
            filename=attachment.filename,
        )
    if not settings.smtp_host:
        logger.info("mail (no SMTP_HOST, not sent) to %s: %s", email.to, email.subject)
        return
    try:
        await aiosmtplib.send(
            message,
            hostname=settings.smtp_host,
            port=settings.smtp_port,
            username=settings.smtp_username or None,
            password=settings.smtp_password or None,
            start_tls=settings.smtp_starttls,
            timeout=command_timeout,
        )
    except (aiosmtplib.SMTPException, OSError) as exc:
        error = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, (aiosmtplib.SMTPTimeoutError, aiosmtplib.SMTPServerDisconnected)):
            error += " (the outcome is unknown)"
        raise DeliveryError(error, permanent=_permanent(exc)) from exc


class SmsProvider(Protocol):
    async def send(self, phone: str, text: str) -> None: ...


class LoggingSmsProvider:
    """Development SMS: the text goes to the log instead of a phone."""

    async def send(self, phone: str, text: str) -> None:
        logger.info("sms to %s: %s", phone, text)
