"""A local mail catcher: a real SMTP server (aiosmtpd) that keeps every mail in memory, and
a small web page that shows them with their QR passes rendered.

`make run` starts it when SMTP_HOST is not set (`python -m ops.mail_catcher`, SMTP on
SMTP_PORT, the page on MAIL_CATCHER_PORT); the mail tests start one in-process on free
ports. Nothing is relayed anywhere: this is for development, not a mail server.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import html
import itertools
import logging
import ssl
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage

from aiohttp import web
from aiosmtpd.smtp import SMTP

log = logging.getLogger(__name__)

KEEP = 500  # the newest mails kept; older ones are dropped


@dataclass
class CaughtMail:
    number: int
    received_at: datetime
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes

    @functools.cached_property
    def message(self) -> EmailMessage:
        # Parsed when first looked at, not on arrival: parsing is most of what a caught mail
        # costs, and a burst of mails is mostly never opened.
        return message_from_bytes(self.raw, policy=policy.default)

    @property
    def images(self) -> list[tuple[str, bytes]]:
        """(filename or content id, bytes) of every image part, inline or attached."""
        found = []
        for part in self.message.walk():
            if part.get_content_maintype() == "image":
                name = part.get_filename() or str(part.get("Content-ID", "image"))
                found.append((name, part.get_payload(decode=True)))
        return found

    def body(self, subtype: str) -> str | None:
        part = self.message.get_body(preferencelist=(subtype,))
        return part.get_content() if part is not None else None

    def summary(self) -> dict:
        return {
            "number": self.number,
            "received_at": self.received_at.isoformat(),
            "from": self.mail_from,
            "to": self.rcpt_tos,
            "subject": str(self.message.get("Subject", "")),
            "message_id": str(self.message.get("Message-ID", "")),
            "images": [name for name, _ in self.images],
        }


class MailCatcher:
    """aiosmtpd handler + store + web app. `refuse` holds recipient addresses answered with
    a permanent 550 at RCPT (how the tests play a mailbox that does not exist), `defer`
    those answered with a transient 450 (a mailbox that is never ready). `reply_delay`
    plays a server that has kept the mail but is slow to say so (scanning it first)."""

    def __init__(self, keep: int = KEEP):
        self.mails: deque[CaughtMail] = deque(maxlen=keep)
        self.refuse: set[str] = set()
        self.defer: set[str] = set()
        self._numbers = itertools.count(1)
        self._smtp_server: asyncio.base_events.Server | None = None
        self._web: web.AppRunner | None = None
        self.arrived = asyncio.Condition()
        self.data_delay = 0.0  # seconds each mail's DATA takes: a slow, distant server
        self.reply_delay = 0.0  # seconds between keeping a mail and answering 250
        self._in_data = 0
        self.most_at_once = 0  # the most mails ever in transfer at the same time
        self.tls_sessions = 0  # mails that arrived over TLS

    # ------------------------------------------------------------------ SMTP

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        if address.lower() in self.refuse:
            return "550 5.1.1 No such mailbox here"
        if address.lower() in self.defer:
            return "450 4.2.1 Mailbox busy, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        self._in_data += 1
        self.most_at_once = max(self.most_at_once, self._in_data)
        try:
            if self.data_delay:
                await asyncio.sleep(self.data_delay)
            self.tls_sessions += session.ssl is not None
            answer = await self._keep(envelope)
            if self.reply_delay:
                await asyncio.sleep(self.reply_delay)
            return answer
        finally:
            self._in_data -= 1

    async def _keep(self, envelope) -> str:
        raw = envelope.original_content or envelope.content
        mail = CaughtMail(
            number=next(self._numbers),
            received_at=datetime.now(UTC),
            mail_from=envelope.mail_from,
            rcpt_tos=list(envelope.rcpt_tos),
            raw=raw,
        )
        async with self.arrived:
            self.mails.append(mail)
            self.arrived.notify_all()
        log.info("mail caught", extra={"ctx": {"number": mail.number}})
        return "250 Message accepted for delivery"

    async def start_smtp(self, host: str, port: int,
                         tls_context: ssl.SSLContext | None = None) -> None:
        """`tls_context`: the server offers STARTTLS with it, and accepts no mail before."""
        loop = asyncio.get_running_loop()
        tls = {"tls_context": tls_context, "require_starttls": True} if tls_context else {}
        self._smtp_server = await loop.create_server(
            lambda: SMTP(self, hostname="a6pay-mail-catcher", data_size_limit=10 * 2**20,
                         **tls),
            host, port,
        )

    async def stop_smtp(self) -> None:
        """An outage: the port closes (sessions already open finish their mail)."""
        server, self._smtp_server = self._smtp_server, None
        if server is not None:
            server.close()
            await server.wait_closed()

    # ------------------------------------------------------------------ web page

    def web_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/", self._index)
        app.router.add_get("/healthz", lambda _: web.json_response({"status": "ok"}))
        app.router.add_get("/api/mails", self._api)
        app.router.add_get("/mails/{number}.eml", self._raw)
        return app

    async def start_web(self, host: str, port: int) -> None:
        self._web = web.AppRunner(self.web_app(), access_log=None)
        await self._web.setup()
        await web.TCPSite(self._web, host, port).start()

    async def stop(self) -> None:
        await self.stop_smtp()
        if self._web is not None:
            await self._web.cleanup()
            self._web = None

    async def _api(self, _: web.Request) -> web.Response:
        return web.json_response([m.summary() for m in reversed(self.mails)])

    async def _raw(self, request: web.Request) -> web.Response:
        number = request.match_info["number"]
        for mail in self.mails:
            if str(mail.number) == number:
                return web.Response(body=mail.raw, content_type="message/rfc822")
        raise web.HTTPNotFound(text="no such mail")

    async def _index(self, _: web.Request) -> web.Response:
        cards = "".join(_card(m) for m in reversed(self.mails)) or (
            "<p>No mail yet. Pay for a booking and its confirmation appears here.</p>")
        page = (
            "<!doctype html><html><head><meta charset='utf-8'>"
            "<meta http-equiv='refresh' content='5'><title>A6 Pay mail catcher</title>"
            "<style>body{font-family:sans-serif;margin:2em;max-width:60em}"
            "article{border:1px solid #ccc;border-radius:6px;padding:1em;margin:1em 0}"
            "pre{white-space:pre-wrap;background:#f6f6f6;padding:.5em}"
            "figure{display:inline-block;margin:.5em}</style></head><body>"
            f"<h1>Mail catcher</h1><p>{len(self.mails)} mail(s), newest first. Nothing here"
            " leaves this machine. This page refreshes every 5 s.</p>"
            f"{cards}</body></html>"
        )
        return web.Response(text=page, content_type="text/html")


def _card(mail: CaughtMail) -> str:
    h = html.escape
    unique = {data: name for name, data in reversed(mail.images)}  # inline + attached
    images = "".join(
        f"<figure><img alt='{h(name)}' src='data:image/png;base64,"
        f"{base64.b64encode(data).decode()}'><figcaption>{h(name)}</figcaption></figure>"
        for data, name in reversed(unique.items())
    )
    return (
        f"<article><h2>{h(str(mail.message.get('Subject', '(no subject)')))}</h2>"
        f"<p>To {h(', '.join(mail.rcpt_tos))} from {h(mail.mail_from)}, "
        f"{mail.received_at:%H:%M:%S} UTC · <a href='/mails/{mail.number}.eml'>raw</a></p>"
        f"<pre>{h(mail.body('plain') or '')}</pre>{images}</article>"
    )


async def serve(host: str, smtp_port: int, web_port: int) -> None:
    catcher = MailCatcher()
    await catcher.start_smtp(host, smtp_port)
    await catcher.start_web(host, web_port)
    # logged, not printed: `make run`'s banner already names the page
    log.info("mail catcher up", extra={"ctx": {"smtp_port": smtp_port, "web_port": web_port}})
    try:
        await asyncio.Future()
    finally:
        await catcher.stop()


def main() -> None:
    import contextlib

    from shared.logging import setup_logging
    from shared.settings import load_settings

    settings = load_settings()
    setup_logging("mail_catcher", settings.log_level, settings.secrets)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(settings.bind_host, settings.smtp_port, settings.mail_catcher_port))


if __name__ == "__main__":
    main()
