"""The mail sender: delivers the `notifications` outbox over SMTP, each mail once.

Per round: claim due pending rows (FOR UPDATE SKIP LOCKED inside one UPDATE that pushes
their next_attempt_at a lease ahead, committed at once, so no transaction or lock is held
while SMTP talks), send them over one SMTP connection, and mark each row right after the
server accepts or refuses it:
- accepted: `sent` (with its Message-ID, stable per row, so a resend after a crash between
  "accepted" and "marked" can be recognised as the same mail);
- refused for good (5xx on the recipient or the message, an address that is not one):
  `failed`, logged as an alarm, never retried;
- anything transient (connection refused or dropped, timeouts, 4xx, a login or sender
  problem an operator must fix): back to pending, retried with doubling back-off; a mail
  refused or unwritable on its own (not the server away) `MAIL_MAX_ATTEMPTS` times is
  `failed`, with the alarm;
- no answer once the message data went (a timeout, a dropped connection): the server may
  have taken it, so the try counts like a refusal; `MAIL_MAX_ATTEMPTS` bounds the copies a
  slow server gets. Only what fails before the data (connect, EHLO, MAIL, RCPT) is the
  server away, and free.
A sender killed after claiming leaves rows pending under a lease: when it expires, any
sender claims them again. Nothing is lost; at worst a mail goes twice with one Message-ID.
A sender cancelled (the notifier stopping) is not killed: it finishes the mail in transfer
and marks it, then releases the rest of its claim for any sender at once.
`MAIL_CONCURRENCY` senders run these rounds side by side in each notifier, as senders in
other notifier processes do: a claimed row is no other sender's until its lease ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

import aiosmtplib
import asyncpg

from notifier.mail_message import BadAddress, compose, envelope_address, message_id, png_of
from shared.db import Autocommit
from shared.http import DB_ERRORS
from shared.logging import log_ctx
from shared.mail_state import MailState
from shared.metrics import MAILS, MAILS_PENDING
from shared.pass_store import BookingNotPaid, issue_passes
from shared.passes import PASS_KINDS
from shared.settings import SMTP_STEPS_BEFORE_DATA, Settings, SmtpTls

log = logging.getLogger(__name__)


# Due rows only, read through the partial index `notifications_due`: a claim costs what is
# due, never what waits (a confirmation mail is written due a moment after its confirmation,
# notifier/handlers.py: CONFIRM_BOOKINGS).
CLAIM_DUE = """
WITH due AS (
    SELECT id FROM notifications n
    WHERE state = 'pending' AND next_attempt_at <= now()
    ORDER BY next_attempt_at, id LIMIT $1 FOR UPDATE SKIP LOCKED)
UPDATE notifications n
SET attempts = n.attempts + 1, next_attempt_at = now() + $2::interval
FROM due WHERE n.id = due.id
RETURNING n.id, n.booking_id, n.kind, n.dedupe_key, n.recipient, n.details, n.attempts,
          n.created_at
"""

# The booking as the mail shows it, and its pass images if the mail carries them: read
# right before each mail is sent, so passes go out only while they admit someone (not for
# a booking cancelled meanwhile, nor passes revoked by a full refund).
BOOKING_FOR_MAIL = """
SELECT b.id, b.status, b.amount_paise, b.start_date, b.end_date,
       c.name AS customer_name, car.name AS car_name, p.kinds AS pass_kinds,
       p.images AS pass_images
FROM bookings b JOIN customers c ON c.id = b.customer_id JOIN cars car ON car.id = b.car_id
LEFT JOIN LATERAL (
    SELECT array_agg(kind ORDER BY kind) AS kinds,
           array_agg(qr_data_url ORDER BY kind) AS images
    FROM passes WHERE booking_id = b.id AND revoked_at IS NULL AND $2
      AND b.status = 'confirmed') p ON true
WHERE b.id = $1
"""

MARK_SENT = (
    "UPDATE notifications SET state = 'sent', sent_at = now(), message_id = $2,"
    " last_error = NULL WHERE id = $1 AND state = 'pending'"
)
MARK_FAILED = (
    "UPDATE notifications SET state = 'failed', last_error = $2"
    " WHERE id = $1 AND state = 'pending'"
)
MARK_RETRY = (
    "UPDATE notifications SET next_attempt_at = now() + $2::interval, last_error = $3"
    " WHERE id = $1 AND state = 'pending'"
)
# The server is away, not refusing this mail: its claim is not counted against
# MAIL_MAX_ATTEMPTS, and the back-off follows the outage instead (MailSender.away_rounds).
MARK_SERVER_AWAY = (
    "UPDATE notifications SET next_attempt_at = now() + $2::interval, last_error = $3,"
    " attempts = greatest(attempts - 1, 0) WHERE id = $1 AND state = 'pending'"
)
RELEASE = (  # claimed but not tried: due again now, the claim not counted
    "UPDATE notifications SET next_attempt_at = now(), attempts = attempts - 1"
    " WHERE id = ANY($1::bigint[]) AND state = 'pending' AND attempts > 0"
)
COUNT_PENDING = "SELECT count(*) FROM notifications WHERE state = 'pending'"


@dataclass(frozen=True)
class Outcome:
    state: MailState  # pending: tried again later
    error: str | None = None
    connection_lost: bool = False  # the rest of the round would fail the same way


class MailSender:
    def __init__(self, pool: asyncpg.Pool, settings: Settings,
                 give_way: Callable[[], Awaitable[None]] | None = None):
        self.pool = pool
        self.give_way = give_way  # awaited before each mail: lets more urgent work go first
        self.settings = settings
        self.sender = settings.smtp_from
        self.pass_secret = settings.pass_signing_secret
        envelope_address(self.sender)  # a From that is not an address: fail at start-up
        self._idle: list[asyncio.Event] = []  # senders waiting for work, each its own bell
        self._woken_while_busy = False
        self._busy = 0  # senders in a round
        self._stopping = False  # cancelled: no mail starts, the ones in transfer finish
        self._database_away = False  # an outage is one line each way, not one per round
        self.server_away = False  # the last round could not reach the SMTP server
        self.away_rounds = 0  # rounds in a row that could not reach it: the outage's back-off

    def wake(self) -> None:
        """Look for due mails now (the notifier calls this when it has enqueued one).
        While a sender is busy, it goes round again when done and takes this mail with
        any others that came meanwhile, over one connection; otherwise one idle sender
        goes (a mail is one claim, not one per sender). A backlog brings in the others:
        a sender whose claim comes back full wakes another before it sends."""
        if self._busy == 0 and self._idle:
            self._idle.pop().set()
        else:
            self._woken_while_busy = True

    async def run(self) -> None:
        """`mail_concurrency` senders, each over its own SMTP connection: a backlog goes out
        that many mails at a time; a mail or two takes one of them."""
        await asyncio.gather(*(self._sender(first=i == 0)
                               for i in range(self.settings.mail_concurrency)))

    async def _sender(self, first: bool) -> None:
        # Polls every mail_poll_seconds, sooner when woken: mails enqueued by another
        # service wait at most one poll, and no connection is spent on LISTEN.
        bell = asyncio.Event()
        while True:
            # A wake before this point is for a mail committed before the claim below
            self._woken_while_busy = False
            self._busy += 1
            try:
                # Another batch at once while batches come full, unless the server is away.
                while (await self.send_due() == self.settings.mail_batch_size
                       and not self.server_away):
                    pass
                if first:  # one count per poll is enough for the gauge
                    MAILS_PENDING.set(await self.pool.fetchval(COUNT_PENDING))
                if self._database_away:
                    self._database_away = False
                    log.warning("mail sender: database back")
            except asyncio.CancelledError:
                raise
            except DB_ERRORS as exc:
                if not self._database_away:
                    self._database_away = True
                    log.warning("mail sender: database unavailable (%s)", type(exc).__name__)
            except Exception:
                log.exception("mail sender round failed")
            finally:
                self._busy -= 1
            if self._woken_while_busy:
                continue
            bell.clear()
            self._idle.append(bell)
            try:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(bell.wait(), self.settings.mail_poll_seconds)
            finally:
                if bell in self._idle:
                    self._idle.remove(bell)

    async def send_due(self) -> int:
        """One round: claim, send, mark. Returns how many rows were claimed.

        Cancelled, the round starts no other mail, but the one in transfer is finished and
        marked (for up to MAIL_STOP_GRACE_SECONDS) and the rest of the claim released; then
        CancelledError. Cut off mid-transfer, a mail the server took would stay pending and
        go again when its lease ends, and the rows not tried would wait for that lease."""
        round_ = asyncio.ensure_future(self._round())
        try:
            return await asyncio.shield(round_)
        except asyncio.CancelledError:
            self._stopping = True
            try:
                await asyncio.wait_for(round_, self.settings.mail_stop_grace_seconds)
            except TimeoutError:
                log.warning("mail sender: stopped mid-send; that mail goes again after its"
                            " lease")
            except Exception:
                log.exception("mail sender round failed while stopping")
            raise

    async def _round(self) -> int:
        s = self.settings
        claimed_at = asyncio.get_running_loop().time()  # the lease starts after this
        async with self.pool.acquire() as conn:
            rows = await Autocommit(conn).fetch(CLAIM_DUE, s.mail_batch_size,
                                                timedelta(seconds=s.mail_lease_seconds))
        if not rows:
            return 0
        if len(rows) == s.mail_batch_size and self._idle:
            self._idle.pop().set()  # likely more due: another sender takes the next batch
        # A mail starts only while the lease has room for its longest send, or another
        # sender could claim a row this one is still sending; what is left is released
        # for the next round.
        deadline = claimed_at + s.mail_lease_seconds - s.mail_send_seconds_at_most
        smtp: aiosmtplib.SMTP | None = None
        self.server_away = False
        try:
            for index, row in enumerate(rows):
                if self.give_way is not None:
                    await self.give_way()
                if self._stopping or asyncio.get_running_loop().time() > deadline:
                    async with self.pool.acquire() as conn:
                        await Autocommit(conn).execute(RELEASE, [r["id"] for r in rows[index:]])
                    break
                outcome, smtp = await self._deliver(row, smtp)
                if outcome.connection_lost:
                    self.away_rounds += 1
                elif outcome.state is MailState.SENT:
                    self.away_rounds = 0
                await self._record(row, outcome)
                if outcome.connection_lost:
                    smtp, self.server_away = None, True
                    for rest in rows[index + 1:]:  # the server is away: same back-off
                        await self._record(rest, outcome)
                    break
        finally:
            if smtp is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(smtp.quit(), self.settings.smtp_timeout_seconds)
        return len(rows)

    async def _deliver(self, row, smtp):
        try:
            message = await self._compose(row)
        except BadAddress:
            return Outcome(MailState.FAILED, "bad address: not a mail address"), smtp
        except DB_ERRORS:
            raise  # the database is away: the round ends, every row waits for it
        except Exception as exc:
            # Whatever this one mail holds that we cannot write: it fails alone (and
            # after MAIL_MAX_ATTEMPTS for good); the rest of the batch goes on.
            log.exception("mail sender: cannot compose the mail")
            return Outcome(MailState.PENDING, f"cannot compose: {type(exc).__name__}"), smtp
        try:
            # Before the data the server has taken nothing, whatever goes wrong. Bounded as
            # a whole: login may try several methods, and the lease counts on this bound.
            async with asyncio.timeout(self.settings.smtp_timeout_seconds
                                       * SMTP_STEPS_BEFORE_DATA):
                if smtp is None:
                    smtp = self._client()
                    await smtp.connect()
                await smtp.mail(envelope_address(self.sender))
                await smtp.rcpt(envelope_address(row["recipient"]))
        except aiosmtplib.SMTPRecipientRefused as exc:
            said = f"{exc.code} {exc.message}".replace("\n", " ")[:300]
            return _by_code(exc.code, f"recipient refused: {said}"), await _reset(smtp)
        except (aiosmtplib.SMTPSenderRefused, aiosmtplib.SMTPAuthenticationError,
                aiosmtplib.SMTPNotSupported) as exc:
            # Our From, our login or our TLS settings: every mail would fail the same way.
            # An operator fixes the settings; the mails wait instead of failing for good.
            log.error("mail sender: SMTP refuses our settings (%s)", _describe(exc))
            return (Outcome(MailState.PENDING, f"settings refused: {_describe(exc)}", True),
                    _dropped(smtp))
        except aiosmtplib.SMTPResponseException as exc:  # e.g. the greeting or EHLO
            return _by_code(exc.code, f"refused: {_describe(exc)}"), await _reset(smtp)
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            return (Outcome(MailState.PENDING, f"server unreachable: {_describe(exc)}", True),
                    _dropped(smtp))
        try:
            # The server may take the mail from here on: its answer gets a timeout of its own
            # (it may check the mail first), and no answer is not "the server away".
            async with asyncio.timeout(self.settings.smtp_data_timeout_seconds):
                await smtp.data(message, timeout=None)
        except aiosmtplib.SMTPResponseException as exc:  # DATA or the message refused
            outcome = _by_code(exc.code, f"message refused: {_describe(exc)}")
            return outcome, await _reset(smtp)
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            # Taken or not, nobody knows: a try that counts, so a server that keeps the mail
            # but answers too late gets at most MAIL_MAX_ATTEMPTS copies, not one a retry.
            return (Outcome(MailState.PENDING, f"no answer to the message: {_describe(exc)}"),
                    _dropped(smtp))
        return Outcome(MailState.SENT), smtp

    def _client(self) -> aiosmtplib.SMTP:
        s = self.settings
        return aiosmtplib.SMTP(
            hostname=s.smtp_host,
            port=s.smtp_port,
            username=s.smtp_username or None,
            password=s.smtp_password or None,
            # auto: None, aiosmtplib's "upgrade whenever the server offers STARTTLS"
            start_tls={SmtpTls.AUTO: None, SmtpTls.REQUIRED: True,
                       SmtpTls.OFF: False}[s.smtp_tls],
            cert_bundle=s.smtp_ca_file or None,
            timeout=s.smtp_timeout_seconds,
        )

    async def _compose(self, row) -> bytes:
        async with self.pool.acquire() as conn:
            booking = await conn.fetchrow(
                BOOKING_FOR_MAIL, row["booking_id"], row["kind"] == "payment_confirmed")
            images = dict(zip(booking["pass_kinds"] or (), booking["pass_images"] or (),
                              strict=True))
            if booking["pass_kinds"] is not None and (
                    set(images) != set(PASS_KINDS) or None in images.values()):
                # Not drawn yet (the booking was confirmed by a webhook and nobody has
                # looked at the passes since): rendered and stored now, off the event loop.
                try:
                    stored = await issue_passes(conn, row["booking_id"], self.pass_secret)
                except BookingNotPaid:  # cancelled or refunded whole meanwhile: none admit
                    stored = {}
                images = {kind: url for kind, (_, url) in stored.items()
                          if kind in booking["pass_kinds"]}  # live ones only
        passes = {kind: png_of(url) for kind, url in images.items()}
        return compose(row, booking, passes, self.sender)

    async def _record(self, row, outcome: Outcome) -> None:
        ctx = log_ctx(notification_id=row["id"], booking_id=row["booking_id"],
                      kind=row["kind"], attempts=row["attempts"])
        if (outcome.state is MailState.PENDING and not outcome.connection_lost
                and row["attempts"] >= self.settings.mail_max_attempts):
            # Refused for this mail alone, time after time: an alarm, not a retry forever.
            # A server that is away (connection_lost) fails every mail alike: those wait.
            outcome = Outcome(MailState.FAILED, f"gave up after {row['attempts']} attempts:"
                                                f" {outcome.error}")
        if outcome.state is MailState.SENT:
            await self._mark(
                MARK_SENT, row["id"], message_id(row["id"], row["dedupe_key"], self.sender))
            log.info("mail sent", extra=ctx)
        elif outcome.state is MailState.FAILED:
            await self._mark(MARK_FAILED, row["id"], outcome.error)
            # An alarm: the customer will not get this mail unless someone acts.
            log.error("mail refused for good: %s", outcome.error, extra=ctx)
        else:
            attempts, sql = ((self.away_rounds, MARK_SERVER_AWAY) if outcome.connection_lost
                             else (row["attempts"], MARK_RETRY))
            delay = self.backoff(attempts)
            await self._mark(sql, row["id"], timedelta(seconds=delay), outcome.error)
            log.warning("mail delayed %.1fs: %s", delay, outcome.error, extra=ctx)
        MAILS.labels(kind=row["kind"], outcome=_METRIC[outcome.state]).inc()

    async def _mark(self, sql: str, *args) -> None:
        """The server has answered: record it even if the database blinks meanwhile (for
        a while: past the lease the row would be claimed and sent again anyway)."""
        delay, give_up = 0.2, asyncio.get_running_loop().time() + self.settings.mail_lease_seconds
        while True:
            try:
                async with self.pool.acquire() as conn:
                    await Autocommit(conn).execute(sql, *args)
                return
            except DB_ERRORS:
                if asyncio.get_running_loop().time() + delay > give_up:
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    def backoff(self, attempts: int) -> float:
        base = self.settings.mail_retry_base_seconds * 2 ** min(max(attempts - 1, 0), 20)
        return min(base, self.settings.mail_retry_max_seconds) * random.uniform(0.8, 1.0)


_METRIC = {MailState.SENT: "sent", MailState.PENDING: "retried", MailState.FAILED: "failed"}


def _by_code(code: int, error: str) -> Outcome:
    """5xx: refused for good. 4xx (and anything odd): try again later."""
    return Outcome(MailState.FAILED if 500 <= code < 600 else MailState.PENDING, error)


def _dropped(smtp: aiosmtplib.SMTP | None) -> None:
    """Closes a connection given up on: a timeout cancels the command, not the connection,
    and the late answer would be read as the next command's."""
    if smtp is not None:
        smtp.close()


async def _reset(smtp: aiosmtplib.SMTP) -> aiosmtplib.SMTP | None:
    """After a refusal, RSET: the next mail on this connection starts a clean transaction.
    The connection if it is still good, else None."""
    try:
        await smtp.rset()
    except (aiosmtplib.SMTPException, OSError, TimeoutError):
        return _dropped(smtp)
    return smtp if smtp.is_connected else None


def _describe(exc: BaseException) -> str:
    code = getattr(exc, "code", None)
    message = getattr(exc, "message", None) or str(exc)
    text = f"{code} {message}" if code else f"{type(exc).__name__}: {message}"
    return text.replace("\n", " ")[:300]
