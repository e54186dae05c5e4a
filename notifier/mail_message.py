"""One outbox row → one MIME message: plain text + HTML, passes inline (cid) and attached.

Pure: no database, no SMTP. The Message-ID is derived from the row, so a mail sent again
after a crash (accepted by the server, not yet marked sent) carries the same id and the
receiving side can tell it is the same mail.
"""

from __future__ import annotations

import base64
import hashlib
import re
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr, parseaddr

from notifier.mail_templates import PASS_LABELS, pass_cid, render

_ADDRESS = re.compile(r"[^@\s<>,;:\"()\[\]\\]+@[^@\s<>,;:\"()\[\]\\]+", re.ASCII)


class BadAddress(ValueError):
    """The recipient is not a mail address we can send to: a permanent failure."""


def envelope_address(value: str) -> str:
    """The bare address of `Name <addr>` or `addr`; BadAddress if it is not one."""
    value = value or ""
    if any(ord(c) < 32 or ord(c) == 127 for c in value):  # no header or command injection
        raise BadAddress("not a mail address")
    address = parseaddr(value)[1]
    if not _ADDRESS.fullmatch(address):
        raise BadAddress("not a mail address")
    return address


def message_id(row_id: int, dedupe_key: str, sender: str) -> str:
    domain = envelope_address(sender).rsplit("@", 1)[1]
    digest = hashlib.sha256(dedupe_key.encode()).hexdigest()[:16]
    return f"<a6pay.{row_id}.{digest}@{domain}>"


def png_of(data_url: str) -> bytes:
    """The PNG inside a pass's `data:image/png;base64,…` URL."""
    prefix = "data:image/png;base64,"
    if not data_url.startswith(prefix):
        raise ValueError("not a PNG data URL")
    return base64.b64decode(data_url[len(prefix):], validate=True)


def compose(row, booking, passes: dict[str, bytes], sender: str) -> EmailMessage:
    """`row`: id, kind, dedupe_key, recipient, details, created_at. `booking`: see
    mail_templates. `passes`: kind → PNG, attached to this mail (confirmations only)."""
    recipient = envelope_address(row["recipient"])
    kinds = tuple(k for k in PASS_LABELS if k in passes)
    rendered = render(row["kind"], booking, row["details"] or {}, kinds)
    message = EmailMessage(policy=SMTP)
    message["From"] = sender
    message["To"] = formataddr((booking["customer_name"], recipient))
    message["Subject"] = rendered.subject
    message["Date"] = format_datetime(row["created_at"])
    message["Message-ID"] = message_id(row["id"], row["dedupe_key"], sender)
    message["Auto-Submitted"] = "auto-generated"
    message["X-A6Pay-Booking"] = str(booking["id"])
    message["X-A6Pay-Kind"] = row["kind"]
    message.set_content(rendered.text)
    message.add_alternative(rendered.html, subtype="html")
    if kinds:
        html_part = message.get_payload()[1]
        for kind in kinds:  # shown in the HTML body...
            html_part.add_related(
                passes[kind], "image", "png", cid=f"<{pass_cid(kind)}>",
                disposition="inline", filename=f"{kind}-pass.png",
            )
        for kind in kinds:  # ...and attached, for clients that show no HTML, and to save
            message.add_attachment(
                passes[kind], maintype="image", subtype="png", filename=f"{kind}-pass.png"
            )
    return message
