"""One outbox row → one MIME message: plain text + HTML, passes inline (cid) and attached.

Pure: no database, no SMTP. The Message-ID is derived from the row, so a mail sent again
after a crash (accepted by the server, not yet marked sent) carries the same id and the
receiving side can tell it is the same mail.

The message is written as bytes here rather than built with `email.message.EmailMessage`:
its policy machinery (header objects, content managers, the generator) costs more CPU per
confirmation mail than everything else the notifier does for a paid booking. What we send
has one fixed shape, every part 7-bit (text quoted-printable, images base64, non-ASCII
headers as RFC 2047 encoded words), so it needs none of that; the tests read it back with
the standard library's parser.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import re
from email.header import Header
from email.utils import format_datetime, formataddr, parseaddr

from notifier.mail_templates import PASS_LABELS, addressee, pass_cid, render

_ADDRESS = re.compile(r"[^@\s<>,;:\"()\[\]\\]+@[^@\s<>,;:\"()\[\]\\]+", re.ASCII)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
CRLF = "\r\n"


class BadAddress(ValueError):
    """The recipient is not a mail address we can send to: a permanent failure."""


@functools.lru_cache(maxsize=1024)  # parseaddr is slow, and the sender is asked every mail
def envelope_address(value: str) -> str:
    """The bare address of `Name <addr>` or `addr`; BadAddress if it is not one."""
    value = value or ""
    # A control character could inject a header or an SMTP command.
    if _CONTROL.search(value) or not _ADDRESS.fullmatch(address := parseaddr(value)[1]):
        raise BadAddress("not a mail address")
    if not address.isascii():
        # SMTP without SMTPUTF8 carries ASCII addresses only (and so does our message)
        raise BadAddress("not an ASCII mail address")
    return address


def message_id(row_id: int, dedupe_key: str, sender: str) -> str:
    domain = envelope_address(sender).rsplit("@", 1)[1]
    return f"<a6pay.{row_id}.{_digest(dedupe_key)}@{domain}>"


def _digest(dedupe_key: str) -> str:
    return hashlib.sha256(dedupe_key.encode()).hexdigest()[:16]


def png_of(data_url: str) -> bytes:
    """The PNG inside a pass's `data:image/png;base64,…` URL."""
    prefix = "data:image/png;base64,"
    if not data_url.startswith(prefix):
        raise ValueError("not a PNG data URL")
    return base64.b64decode(data_url[len(prefix):], validate=True)


def compose(row, booking, passes: dict[str, bytes], sender: str) -> bytes:
    """The whole message, CRLF line endings, ready for SMTP DATA.

    `row`: id, kind, dedupe_key, recipient, details, created_at. `booking`: see
    mail_templates. `passes`: kind → PNG, attached to this mail (confirmations only).
    """
    recipient = envelope_address(row["recipient"])
    kinds = tuple(k for k in PASS_LABELS if k in passes)
    rendered = render(row["kind"], booking, row["details"] or {}, kinds)
    sender_name, sender_address = parseaddr(sender)
    digest = _digest(row["dedupe_key"])
    mid = message_id(row["id"], row["dedupe_key"], sender)
    headers = [
        ("From", _address_header(sender_name, envelope_address(sender_address))),
        ("To", _address_header(addressee(row["kind"], booking), recipient)),
        ("Subject", _text_header("Subject", rendered.subject)),
        ("Date", format_datetime(row["created_at"])),
        ("Message-ID", mid),
        ("Auto-Submitted", "auto-generated"),
        ("X-A6Pay-Booking", str(booking["id"])),
        ("X-A6Pay-Kind", row["kind"]),
        ("MIME-Version", "1.0"),
    ]
    # Boundaries: "=_" appears in neither quoted-printable nor base64 output; the message
    # id's digest keeps a resend byte-for-byte the same.
    html = _text_part("html", rendered.html)
    if kinds:  # shown in the HTML body...
        html = _multipart("related", f"=_rel_{digest}", [html] + [
            _png_part(passes[k], "inline", f"{k}-pass.png", pass_cid(k)) for k in kinds])
    body = _multipart("alternative", f"=_alt_{digest}", [_text_part("plain", rendered.text), html])
    if kinds:  # ...and attached, for clients that show no HTML, and to save
        body = _multipart("mixed", f"=_mix_{digest}", [body] + [
            _png_part(passes[k], "attachment", f"{k}-pass.png") for k in kinds])
    head = CRLF.join(f"{name}: {value}" for name, value in headers)
    return (head + CRLF + body).encode("ascii")


def _address_header(name: str, address: str) -> str:
    # A name is one line of text: no CR/LF or other control characters can start a header.
    name = _CONTROL.sub(" ", name or "").strip()
    return formataddr((name, address), charset="utf-8")


def _text_header(field: str, value: str) -> str:
    value = _CONTROL.sub(" ", value).strip()
    charset = "us-ascii" if value.isascii() else "utf-8"
    return Header(value, charset, header_name=field).encode(linesep=CRLF)


def _text_part(subtype: str, text: str) -> str:
    lines = text.replace("\r\n", "\n").replace("\r", "\n")  # CRLF below, whatever came in
    encoded = binascii.b2a_qp(lines.encode(), istext=True).decode("ascii")
    return (f'Content-Type: text/{subtype}; charset="utf-8"{CRLF}'
            f"Content-Transfer-Encoding: quoted-printable{CRLF}{CRLF}"
            # the text's own last line break, then the one the next boundary line takes
            + encoded.replace("\n", CRLF) + CRLF)


def _png_part(png: bytes, disposition: str, filename: str, cid: str | None = None) -> str:
    lines = ["Content-Type: image/png", "Content-Transfer-Encoding: base64",
             f'Content-Disposition: {disposition}; filename="{filename}"']
    if cid is not None:
        lines.append(f"Content-ID: <{cid}>")
    encoded = base64.encodebytes(png).decode("ascii")
    return CRLF.join(lines) + CRLF + CRLF + CRLF.join(encoded.splitlines()) + CRLF


def _multipart(subtype: str, boundary: str, parts: list[str]) -> str:
    head = (f'Content-Type: multipart/{subtype}; boundary="{boundary}"{CRLF}{CRLF}')
    inner = "".join(f"--{boundary}{CRLF}{part}" for part in parts)
    return head + inner + f"--{boundary}--{CRLF}"
