"""Email to users (health changes), with the standard library's smtplib. Off unless MAIL_SERVER is
set. STARTTLS is used whenever the server offers it; MAIL_PORT 465 speaks TLS from the start."""

from __future__ import annotations

import logging
import smtplib
import ssl
from email.message import EmailMessage

from flask import current_app

log = logging.getLogger(__name__)
SMTP_TIMEOUT = 10


def mail_configured() -> bool:
    return bool(current_app.config.get("MAIL_SERVER"))


def one_line(text: str, limit: int = 150) -> str:
    """A header value: no line breaks (they would add headers), bounded."""
    return " ".join(str(text).split())[:limit]


def send_mail(to: str, subject: str, body: str) -> bool:
    """Send one plain-text email; False (logged, never raised) when it could not be sent."""
    config = current_app.config
    message = EmailMessage()
    message["From"] = config.get("MAIL_FROM") or "localboxs@localhost"
    message["To"] = one_line(to, 254)
    message["Subject"] = one_line(subject)
    message.set_content(body)
    server, port = config["MAIL_SERVER"], int(config.get("MAIL_PORT") or 25)
    try:
        if port == 465:
            with smtplib.SMTP_SSL(server, port, timeout=SMTP_TIMEOUT, context=ssl.create_default_context()) as smtp:
                smtp.send_message(message)
            return True
        with smtplib.SMTP(server, port, timeout=SMTP_TIMEOUT) as smtp:
            smtp.ehlo()
            if smtp.has_extn("starttls"):
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo()
            smtp.send_message(message)
        return True
    except (OSError, smtplib.SMTPException) as exc:
        log.warning("email to user could not be sent via %s:%s: %s", server, port, type(exc).__name__)
        return False
