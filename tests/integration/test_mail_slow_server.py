"""The mail sender against a server that keeps a mail but is slow to say so (the catcher's
`reply_delay`): a notifier stopped meanwhile finishes that mail before it stops, so the
next one does not send it again, and hands back the mails it has not tried; an answer that
never comes in time counts as a try, so the copies stop at MAIL_MAX_ATTEMPTS."""

from __future__ import annotations

import asyncio

from notifier.mail_sender import MailSender
from testkit.factories import make_booking
from testkit.infra import eventually, own_database
from tests.support.mail import SECRET, caught_for, confirm, mails_of
from tests.support.notifier import Notifier
from tests.support.tasks import running


def mail_settings(catcher, **overrides) -> dict:
    return {"pass_signing_secret": SECRET, "smtp_host": "127.0.0.1",
            "smtp_port": catcher.port, "mail_poll_seconds": 0.2,
            "mail_retry_base_seconds": 0.2, "mail_retry_max_seconds": 1.0, **overrides}


async def test_a_notifier_stopped_mid_send_finishes_that_mail_and_it_goes_once(
        base_settings, catcher):
    """A rollout stops the notifier while the server holds the first of two mails and has
    not answered yet: the sender waits for the answer and marks the mail sent, and hands the
    second back due at once; the notifier started next sends the second, not the first."""
    catcher.reply_delay = 1.5
    lease = 8
    async with own_database(base_settings, **mail_settings(
            catcher, smtp_timeout_seconds=0.5, smtp_data_timeout_seconds=3,
            mail_lease_seconds=lease,
            mail_concurrency=1, mail_stop_grace_seconds=10)) as (settings, pool):
        first, second = await make_booking(pool), await make_booking(pool)
        await confirm(pool, first)
        await confirm(pool, second)
        notifier = await Notifier(settings).start()
        try:
            async def first_held():  # the server has it; its answer is still to come
                return caught_for(catcher, first["booking_id"])

            await eventually(first_held, timeout=30, interval=0.02)
        finally:
            await notifier.stop()
        [sent] = await mails_of(pool, first["booking_id"])
        [untried] = await mails_of(pool, second["booking_id"])
        assert sent["state"] == "sent"
        assert (untried["state"], untried["attempts"], untried["due"]) == ("pending", 0, True)

        notifier = await Notifier(settings).start()
        try:
            async def second_sent():
                [row] = await mails_of(pool, second["booking_id"])
                return row["state"] == "sent"

            await eventually(second_sent, timeout=lease / 2)  # not after a lease: at once
            await asyncio.sleep(lease)  # a lease left on the first would have run out
        finally:
            await notifier.stop()
    assert len(caught_for(catcher, first["booking_id"])) == 1
    assert len(caught_for(catcher, second["booking_id"])) == 1


async def test_a_server_that_answers_the_message_too_late_gets_max_attempts_copies(
        base_settings, catcher):
    """Each try the server keeps the mail and answers after the sender has given up on it:
    each try counts, and after MAIL_MAX_ATTEMPTS the mail is failed (with the alarm), not
    sent again every minute for ever."""
    catcher.reply_delay = 1.0  # past the data timeout, and past each command's timeout
    async with own_database(base_settings, **mail_settings(
            catcher, smtp_timeout_seconds=0.5, smtp_data_timeout_seconds=0.3,
            mail_lease_seconds=10, mail_max_attempts=3, mail_retry_base_seconds=0.05,
            mail_retry_max_seconds=0.1)) as (settings, pool):
        booking = await make_booking(pool)
        await confirm(pool, booking)
        async with running(MailSender(pool, settings).run()):
            async def over():  # given up on, or more copies than tries allow
                [row] = await mails_of(pool, booking["booking_id"])
                return (row["state"] == "failed"
                        or len(caught_for(catcher, booking["booking_id"])) > 3)

            await eventually(over, timeout=30)
            await asyncio.sleep(1)  # a few polls more: nothing else goes out
        [row] = await mails_of(pool, booking["booking_id"])
    assert len(caught_for(catcher, booking["booking_id"])) == 3
    assert (row["state"], row["attempts"]) == ("failed", 3)
    assert "no answer to the message" in row["last_error"]
