"""Channels that carry messages: email over SMTP, SMS through a provider interface."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from email.message import EmailMessage
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


class DeliveryError(Exception):
    """The channel refused or could not be reached; the message is tried again later."""


async def send_email(settings: Settings, email: Email) -> None:
    message = EmailMessage()
    message["From"] = settings.mail_from
    message["To"] = email.to
    message["Subject"] = email.subject
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
            timeout=15,
        )
    except (aiosmtplib.SMTPException, OSError) as exc:
        raise DeliveryError(f"{type(exc).__name__}: {exc}") from exc


class SmsProvider(Protocol):
    async def send(self, phone: str, text: str) -> None: ...


class LoggingSmsProvider:
    """Development SMS: the text goes to the log instead of a phone."""

    async def send(self, phone: str, text: str) -> None:
        logger.info("sms to %s: %s", phone, text)
