"""Disputes against the real database and the sandbox, through the official SDK: events in
any order and again, before the capture; refunds refused while open; contested with a PDF
the sandbox accepts and won after a late under_review; accepted and lost; what a lost one
leaves to refund; a refund written before a dispute waits for its decision; the admin API."""

from __future__ import annotations

import asyncio
import io
import json
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from aiohttp.test_utils import TestClient, TestServer
from pypdf import PdfReader

from order_service import cancellations, disputes
from order_service.app import create_app
from order_service.dispute_schemas import CANNOT_CONTEST
from order_service.dispute_watch import watch_disputes
from order_service.evidence import gather_evidence, summary
from order_service.evidence_pdf import evidence_pdf
from order_service.pass_scans import GONE, scan_pass
from order_service.refund_worker import refund_pass
from shared import metrics
from shared.dispute_state import OPEN_STATUSES
from shared.disputes import LOCK_DISPUTED, apply_dispute, report_of_webhook
from shared.http import HttpError
from shared.outbox import outbox_transaction
from shared.pass_store import issue_passes
from shared.refunds import DISPUTE_HOLD, RefundWhileDisputed, create_refund, submit_refund
from tests.support.plans import explain
from tests.support.refunds import control, open_order, paid_booking
from tests.support.sandbox import sdk, sdk_client
from tests.support.webhooks import apply_webhook


def dispute_webhook(event: str, dispute: dict, payment: dict, at: int | None = None) -> dict:
    return {"entity": "event", "event": event, "created_at": at or int(time.time()),
            "payload": {"payment": {"entity": payment}, "dispute": {"entity": dispute}}}


def key() -> str:
    return "id:" + uuid.uuid4().hex


async def captured_payment_id(pool, booking_id) -> str:
    return await pool.fetchval(
        "SELECT razorpay_payment_id FROM payments WHERE booking_id = $1 AND status = 'captured'",
        booking_id)


async def raise_dispute(settings, razorpay, payment_id: str, **body) -> tuple[dict, dict]:
    dispute = await control(settings, f"/sandbox/payments/{payment_id}/dispute",
                            {"webhooks": {"enabled": False}, **body})
    return dispute, await razorpay.fetch_payment(payment_id)


async def deliver(pool, event: str, dispute: dict, payment: dict, at=None) -> str:
    return await apply_webhook(pool, key(), dispute_webhook(event, dispute, payment, at), None)


async def collection_pass(pool, settings, booking_id) -> str:
    """Confirms the booking and issues its passes, as verify-payment does; the collection
    pass's token."""
    async with pool.acquire() as conn:
        await conn.execute("UPDATE bookings SET status = 'confirmed', confirmed_at = now()"
                           " WHERE id = $1", booking_id)
        await issue_passes(conn, booking_id, settings.pass_signing_secret)
    return await pool.fetchval(
        "SELECT token FROM passes WHERE booking_id = $1 AND kind = 'collection'", booking_id)


async def dispute_row(pool, dispute_id):
    return await pool.fetchrow("SELECT * FROM disputes WHERE razorpay_dispute_id = $1",
                               dispute_id)


async def test_contested_with_our_pdf_and_won_after_a_late_under_review(pool, razorpay, settings):
    booking_id = await paid_booking(pool, razorpay, settings)
    payment_id = await captured_payment_id(pool, booking_id)
    dispute, payment = await raise_dispute(settings, razorpay, payment_id)
    opened = int(time.time()) - 5

    assert await deliver(pool, "payment.dispute.created", dispute, payment, opened) == "applied"
    assert await deliver(pool, "payment.dispute.created", dispute, payment, opened) == "stale"
    row = await dispute_row(pool, dispute["id"])
    assert (row["status"], row["booking_id"], row["amount_paise"]) == ("open", booking_id,
                                                                      150_000)
    assert row["respond_by"] is not None

    for refund in (cancellations.refund_booking(pool, razorpay, booking_id),
                   cancellations.cancel_booking(pool, razorpay, booking_id)):
        with pytest.raises(HttpError) as refused:
            await refund
        assert (refused.value.status, refused.value.message) == (409, cancellations.DISPUTED)
    assert not await pool.fetchval("SELECT count(*) FROM refunds WHERE booking_id = $1",
                                   booking_id)

    answer = await disputes.contest_dispute(pool, razorpay, dispute["id"])
    assert answer["dispute"]["status"] == "under_review"
    at_razorpay = await sdk(sdk_client(settings).dispute.fetch, dispute["id"])
    evidence = at_razorpay["evidence"]
    assert at_razorpay["status"] == "under_review" and evidence["submitted_at"]
    assert len(evidence["proof_of_service"]) == 1 and evidence["proof_of_service"][0].startswith(
        "doc_")
    assert f"#{booking_id}" in evidence["summary"] and len(evidence["summary"]) <= 1000
    with pytest.raises(HttpError) as again:  # submitted: nothing more to contest
        await disputes.contest_dispute(pool, razorpay, dispute["id"])
    assert again.value.status == 409

    won = await control(settings, f"/sandbox/disputes/{dispute['id']}/decide",
                        {"decision": "won", "webhooks": {"enabled": False}})
    assert await deliver(pool, "payment.dispute.won", won, payment) == "applied"
    late = {**won, "status": "under_review"}
    assert await deliver(pool, "payment.dispute.under_review", late, payment, opened) == "stale"
    row = await dispute_row(pool, dispute["id"])
    assert (row["status"], row["amount_deducted_paise"]) == ("won", 0)
    changes = await pool.fetch("SELECT to_status FROM dispute_changes WHERE dispute_id = $1"
                               " ORDER BY id", row["id"])
    assert [c["to_status"] for c in changes] == ["open", "under_review", "won"]
    # decided: refunds are possible again
    assert (await cancellations.refund_booking(pool, razorpay, booking_id, amount_paise=100)
            )["refund"]["amount"] == 1.0


async def test_the_evidence_pdf_carries_our_records(pool, razorpay, settings):
    booking_id = await paid_booking(pool, razorpay, settings)
    payment = await pool.fetchrow(
        "SELECT * FROM payments WHERE booking_id = $1 AND status = 'captured'", booking_id)
    async with pool.acquire() as conn:
        records = await gather_evidence(conn, booking_id, payment["id"], "card")
    text = "".join(page.extract_text() for page in PdfReader(
        io.BytesIO(evidence_pdf(records, "disp_X"))).pages)
    for expected in (f"booking #{booking_id}", records.booking["car_name"],
                     records.booking["customer_name"], "INR 1,500.00", "Method: card",
                     "Cancellation policy"):
        assert expected in text
    assert "used at the counter" not in text and "collected" not in summary(records)


async def test_the_evidence_names_when_the_car_was_collected(pool, razorpay, settings):
    booking_id = await paid_booking(pool, razorpay, settings)
    payment = await pool.fetchrow(
        "SELECT * FROM payments WHERE booking_id = $1 AND status = 'captured'", booking_id)
    token = await collection_pass(pool, settings, booking_id)
    any_day = settings.model_copy(update={"pass_grace_hours": 24 * 3650})
    assert (await scan_pass(pool, any_day, token)).status == 200
    async with pool.acquire() as conn:
        records = await gather_evidence(conn, booking_id, payment["id"], "card")
    text = "".join(page.extract_text() for page in PdfReader(
        io.BytesIO(evidence_pdf(records, "disp_X"))).pages)
    assert "used at the counter" in text
    assert "collected with the customer's pass" in summary(records)
    assert len(summary(records)) <= 1000


async def evidence_summary(pool, booking_id) -> str:
    payment_id = await pool.fetchval(
        "SELECT id FROM payments WHERE booking_id = $1 AND status = 'captured'", booking_id)
    async with pool.acquire() as conn:
        return summary(await gather_evidence(conn, booking_id, payment_id, "card"))


async def test_the_evidence_says_what_became_of_the_service(pool, razorpay, settings):
    booking_id = await paid_booking(pool, razorpay, settings)
    await collection_pass(pool, settings, booking_id)
    assert "The car has not been picked up yet" in await evidence_summary(
        pool, booking_id)

    await pool.execute("UPDATE passes SET revoked_at = now() WHERE booking_id = $1", booking_id)
    revoked = await evidence_summary(pool, booking_id)
    assert "The passes were revoked" in revoked and "never used" in revoked

    await cancellations.cancel_booking(pool, razorpay, booking_id, reason="plans changed")
    cancelled = await evidence_summary(pool, booking_id)
    assert "The booking was cancelled" in cancelled and "(plans changed)" in cancelled
    assert "before the car was picked up" in cancelled
    for text in (revoked, cancelled):
        assert "provided as booked" not in text and len(text) <= 1000


async def test_accepted_and_lost(pool, razorpay, settings):
    booking_id = await paid_booking(pool, razorpay, settings)
    dispute, payment = await raise_dispute(settings, razorpay,
                                           await captured_payment_id(pool, booking_id),
                                           amount=50_000, phase="pre_arbitration")
    await deliver(pool, "payment.dispute.created", dispute, payment)

    answer = await disputes.accept_dispute(pool, razorpay, dispute["id"])

    assert answer["dispute"]["status"] == "lost"
    assert (await sdk(sdk_client(settings).dispute.fetch, dispute["id"]))["status"] == "lost"
    row = await dispute_row(pool, dispute["id"])
    assert (row["status"], row["amount_deducted_paise"], row["phase"]) == (
        "lost", 50_000, "pre_arbitration")
    lost_event = {**dispute, "status": "lost", "amount_deducted": 50_000}
    assert await deliver(pool, "payment.dispute.lost", lost_event, payment) == "stale"
    with pytest.raises(HttpError) as refused:
        await disputes.accept_dispute(pool, razorpay, dispute["id"])
    assert refused.value.status == 409
    with pytest.raises(HttpError) as unknown:
        await disputes.accept_dispute(pool, razorpay, "disp_Unknown0000000")
    assert unknown.value.status == 404


@pytest.mark.parametrize("lost", ["accepted", "reported without amount_deducted"])
async def test_a_lost_dispute_leaves_only_the_rest_to_refund(pool, razorpay, settings, lost):
    booking_id = await paid_booking(pool, razorpay, settings)  # ₹1,500
    payment_id = await captured_payment_id(pool, booking_id)
    dispute, payment = await raise_dispute(settings, razorpay, payment_id, amount=50_000)
    await deliver(pool, "payment.dispute.created", dispute, payment)
    if lost == "accepted":  # the bank returned ₹500
        await disputes.accept_dispute(pool, razorpay, dispute["id"])
    else:  # the disputed amount is what went back
        assert await deliver(pool, "payment.dispute.lost",
                             {**dispute, "status": "lost", "amount_deducted": 0}, payment,
                             int(time.time()) + 1) == "applied"

    answer = await cancellations.refund_booking(pool, razorpay, booking_id)

    assert (answer["refund"]["amount"], answer["remaining"]) == (1000.0, 0.0)
    with pytest.raises(HttpError) as nothing_left:
        await cancellations.refund_booking(pool, razorpay, booking_id, amount_paise=100)
    assert (nothing_left.value.status, nothing_left.value.message) == (
        409, cancellations.NOTHING_LEFT)
    captured = await pool.fetchrow(
        "SELECT * FROM payments WHERE booking_id = $1 AND status = 'captured'", booking_id)
    async with outbox_transaction(pool) as conn:  # the database refuses it, whoever writes it
        with pytest.raises(RefundWhileDisputed):
            await create_refund(conn, captured, 100, cause="admin", producer="test")
    assert [r["amount"] for r in await razorpay.fetch_payment_refunds(payment_id)] == [100_000]


async def test_a_payment_charged_back_whole_admits_nobody_and_is_cancelled_unrefunded(
        pool, razorpay, settings):
    booking_id = await paid_booking(pool, razorpay, settings)
    token = await collection_pass(pool, settings, booking_id)
    payment_id = await captured_payment_id(pool, booking_id)
    dispute, payment = await raise_dispute(settings, razorpay, payment_id)
    await deliver(pool, "payment.dispute.created", dispute, payment)
    await disputes.accept_dispute(pool, razorpay, dispute["id"])

    any_day = settings.model_copy(update={"pass_grace_hours": 24 * 3650})
    refused = await scan_pass(pool, any_day, token)
    assert (refused.status, refused.body["message"]) == (410, GONE["refunded", "collection"])
    cancelled = await cancellations.cancel_booking(pool, razorpay, booking_id)
    assert (cancelled["status"], cancelled["refund"]) == ("cancelled", None)
    assert await razorpay.fetch_payment_refunds(payment_id) == []


async def test_a_refund_written_while_its_dispute_is_applied_waits_and_is_refused(
        pool, razorpay, settings):
    booking_id = await paid_booking(pool, razorpay, settings)
    captured = await pool.fetchrow(
        "SELECT * FROM payments WHERE booking_id = $1 AND status = 'captured'", booking_id)
    dispute, payment = await raise_dispute(settings, razorpay, captured["razorpay_payment_id"])
    opened = report_of_webhook(dispute_webhook("payment.dispute.created", dispute, payment))

    async def refund() -> None:
        async with outbox_transaction(pool) as conn:
            await create_refund(conn, captured, 100, cause="admin", producer="test")

    async with pool.acquire() as conn:
        webhook = conn.transaction()  # the dispute's webhook, not committed yet
        await webhook.start()
        assert (await apply_dispute(conn, opened))[0] == "applied"
        racer = asyncio.create_task(refund())
        await asyncio.sleep(0.3)
        assert not racer.done()  # its running total waits for the payment's row
        await webhook.commit()
        with pytest.raises(RefundWhileDisputed):
            await racer
    assert not await pool.fetchval("SELECT count(*) FROM refunds WHERE booking_id = $1",
                                   booking_id)


@pytest.mark.parametrize("decision", ["won", "lost"])
async def test_a_refund_written_before_its_dispute_waits_for_the_decision(
        pool, razorpay, settings, caplog, decision):
    booking_id = await paid_booking(pool, razorpay, settings)
    payment_id = await captured_payment_id(pool, booking_id)
    captured = await pool.fetchrow(
        "SELECT * FROM payments WHERE booking_id = $1 AND status = 'captured'", booking_id)
    async with outbox_transaction(pool) as conn:  # written, not yet sent (Razorpay was away)
        refund = await create_refund(conn, captured, 150_000, cause="admin", producer="test")
    dispute, payment = await raise_dispute(settings, razorpay, payment_id)
    await deliver(pool, "payment.dispute.created", dispute, payment)

    held = await submit_refund(pool, razorpay, refund["id"])

    assert (held["status"], held["attempts"]) == ("requested", 0)
    assert held["next_check_at"] > await pool.fetchval(
        "SELECT now() + $1::interval - interval '1 minute'", DISPUTE_HOLD)
    assert await razorpay.fetch_payment_refunds(payment_id) == []

    decided = await control(settings, f"/sandbox/disputes/{dispute['id']}/decide",
                            {"decision": decision, "webhooks": {"enabled": False}})
    assert await deliver(pool, f"payment.dispute.{decision}", decided, payment) == "applied"
    await pool.execute("UPDATE refunds SET next_check_at = now() WHERE id = $1",
                       refund["id"])  # the hold is over
    await refund_pass(pool, razorpay)

    after = await pool.fetchrow("SELECT * FROM refunds WHERE id = $1", refund["id"])
    sent = [r["amount"] for r in await razorpay.fetch_payment_refunds(payment_id)]
    if decision == "won":  # the money stayed with us: the customer is owed the refund
        assert after["status"] in ("pending", "processed") and sent == [150_000]
    else:  # their bank returned it: a refund would pay them twice
        assert after["status"] == "requested" and sent == []
        assert any(getattr(r, "ctx", {}).get("alarm") == "refund_charged_back"
                   for r in caplog.records)


async def test_before_the_capture_kept_then_linked_mailed_to_ops_and_measured(
        pool, razorpay, settings):
    booking_id, order_id = await open_order(pool, razorpay)
    paid = await control(settings, f"/sandbox/orders/{order_id}/pay",
                         {"webhooks": {"enabled": False}})  # not recorded by us yet
    dispute, payment = await raise_dispute(settings, razorpay, paid["razorpay_payment_id"],
                                           respond_in_seconds=3600)
    action = {**dispute, "status": "open"}
    # action_required and under_review before created, all before the capture
    assert await deliver(pool, "payment.dispute.action_required", action, payment) == "applied"
    assert await deliver(pool, "payment.dispute.created", dispute, payment) == "stale"
    row = await dispute_row(pool, dispute["id"])
    assert (row["status"], row["booking_id"]) == ("action_required", None)

    await apply_webhook(pool, key(), {"entity": "event", "event": "payment.captured",
                                      "created_at": int(time.time()),
                                      "payload": {"payment": {"entity": payment}}}, None)
    await watch_disputes(pool, "ops@example.test")
    await watch_disputes(pool, "ops@example.test")

    row = await dispute_row(pool, dispute["id"])
    assert row["booking_id"] == booking_id and row["ops_notified_at"] is not None
    mails = await pool.fetch("SELECT recipient, kind FROM notifications WHERE booking_id = $1"
                             " AND kind = 'dispute_opened'", booking_id)
    assert [(m["recipient"], m["kind"]) for m in mails] == [("ops@example.test",
                                                            "dispute_opened")]
    assert metrics.REGISTRY.get_sample_value("a6pay_disputes_open") >= 1
    nearest = metrics.REGISTRY.get_sample_value("a6pay_dispute_respond_by_seconds")
    assert 0 < nearest <= timedelta(hours=1).total_seconds()


async def test_only_a_dispute_still_open_is_mailed_to_ops(pool, razorpay, settings):
    """A dispute first heard decided (its earlier webhooks lost) wants no evidence: no
    "respond by" mail for it, and the watch is done with it; an open one is mailed."""
    decided = await paid_booking(pool, razorpay, settings)
    won, payment = await raise_dispute(settings, razorpay,
                                       await captured_payment_id(pool, decided))
    assert await deliver(pool, "payment.dispute.won", {**won, "status": "won"},
                         payment) == "applied"
    pending = await paid_booking(pool, razorpay, settings)
    opened, payment = await raise_dispute(settings, razorpay,
                                          await captured_payment_id(pool, pending))
    assert await deliver(pool, "payment.dispute.created", opened, payment) == "applied"

    await watch_disputes(pool, "ops@example.test")

    mailed = "SELECT count(*) FROM notifications WHERE booking_id = $1 AND kind = 'dispute_opened'"
    assert await pool.fetchval(mailed, decided) == 0
    assert await pool.fetchval(mailed, pending) == 1
    row = await dispute_row(pool, won["id"])
    assert (row["status"], row["booking_id"]) == ("won", decided)
    assert row["ops_notified_at"] is not None  # looked at once, never again


async def test_the_admin_api_lists_contests_once_per_key(pool, razorpay, settings, own):
    booking_id = await paid_booking(pool, razorpay, settings)
    dispute, payment = await raise_dispute(settings, razorpay,
                                           await captured_payment_id(pool, booking_id))
    await deliver(pool, "payment.dispute.created", dispute, payment)
    app = create_app(settings.model_copy(update={"admin_api_token": "secret"}),
                     relay=False, reconciler=False)
    auth = {"Authorization": "Bearer secret"}
    async with TestClient(TestServer(app)) as client:
        listed = await client.get("/api/razorpay/disputes?status=open", headers=auth)
        body = await listed.json()
        assert listed.status == 200
        [mine] = [d for d in body["disputes"] if d["dispute_id"] == dispute["id"]]
        assert (mine["booking_id"], mine["amount"], mine["status"]) == (booking_id, 1500.0,
                                                                       "open")
        bad = await client.get("/api/razorpay/disputes?status=maybe", headers=auth)
        assert bad.status == 400 and "status must be one of" in (await bad.json())["message"]

        path = f"/api/razorpay/disputes/{dispute['id']}/contest"
        headers = {**auth, "Idempotency-Key": str(uuid.uuid4())}
        first = await client.post(path, headers=headers)
        second = await client.post(path, headers=headers)
        assert first.status == 200 and (await first.json())["dispute"]["status"] == (
            "under_review")
        assert (second.status, await second.json()) == (200, await first.json())
        other_key = await client.post(path, headers={**auth, "Idempotency-Key": "k2"})
        assert other_key.status == 409
        missing = await client.post("/api/razorpay/disputes/disp_None/accept",
                                    headers={**auth, "Idempotency-Key": "k3"})
        assert (missing.status, await missing.json()) == (404, {"message": "Dispute not found"})


async def answered_late(settings) -> None:
    """Razorpay takes the next dispute call but answers after our client has stopped waiting."""
    await control(settings, "/sandbox/faults", {
        "mode": "slow", "delay_seconds": settings.razorpay_timeout_seconds + 1,
        "path_prefix": "/v1/disputes", "count": 1})


async def until_razorpay_says(razorpay, dispute_id, status) -> None:
    for _ in range(100):
        if (await razorpay.fetch_dispute(dispute_id))["status"] == status:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the sandbox never moved the dispute to {status}")


async def test_a_contest_whose_answer_was_lost_is_answered_on_retry(pool, razorpay, settings):
    booking_id = await paid_booking(pool, razorpay, settings)
    dispute, payment = await raise_dispute(settings, razorpay,
                                           await captured_payment_id(pool, booking_id))
    await deliver(pool, "payment.dispute.created", dispute, payment, int(time.time()) - 5)
    app = create_app(settings.model_copy(update={"admin_api_token": "secret"}),
                     relay=False, reconciler=False)
    path = f"/api/razorpay/disputes/{dispute['id']}/contest"
    headers = {"Authorization": "Bearer secret", "Idempotency-Key": str(uuid.uuid4())}
    async with TestClient(TestServer(app)) as client:
        await answered_late(settings)
        lost = await client.post(path, headers=headers)
        assert lost.status == 504
        await until_razorpay_says(razorpay, dispute["id"], "under_review")

        retried = await client.post(path, headers=headers)
        body = await retried.json()
        assert retried.status == 200, body
        assert (body["message"], body["dispute"]["status"]) == ("Dispute contested",
                                                                "under_review")
        again = await client.post(path, headers=headers)
        assert (again.status, await again.json()) == (200, body)
    row = await dispute_row(pool, dispute["id"])
    at_razorpay = await razorpay.fetch_dispute(dispute["id"])
    assert row["status"] == "under_review" and row["evidence_submitted_at"] is not None
    assert row["document_ids"] == at_razorpay["evidence"]["proof_of_service"]


async def test_an_acceptance_whose_answer_was_lost_is_answered_on_retry(
        pool, razorpay, settings):
    booking_id = await paid_booking(pool, razorpay, settings)
    dispute, payment = await raise_dispute(settings, razorpay,
                                           await captured_payment_id(pool, booking_id))
    await deliver(pool, "payment.dispute.created", dispute, payment, int(time.time()) - 5)
    await answered_late(settings)
    with pytest.raises(HttpError) as lost:
        await disputes.accept_dispute(pool, razorpay, dispute["id"])
    assert lost.value.status == 504
    await until_razorpay_says(razorpay, dispute["id"], "lost")

    answer = await disputes.accept_dispute(pool, razorpay, dispute["id"])
    assert (answer["message"], answer["dispute"]["status"]) == ("Dispute accepted", "lost")
    assert (await dispute_row(pool, dispute["id"]))["status"] == "lost"


async def test_a_refusal_from_a_dispute_decided_meanwhile_is_recorded_and_kept(
        pool, razorpay, settings):
    booking_id = await paid_booking(pool, razorpay, settings)
    dispute, payment = await raise_dispute(settings, razorpay,
                                           await captured_payment_id(pool, booking_id))
    await deliver(pool, "payment.dispute.created", dispute, payment, int(time.time()) - 5)
    await control(settings, f"/sandbox/disputes/{dispute['id']}/decide",
                  {"decision": "won", "webhooks": {"enabled": False}})  # its webhook is late

    with pytest.raises(HttpError) as refused:
        await disputes.contest_dispute(pool, razorpay, dispute["id"])
    assert (refused.value.status, refused.value.message) == (409, CANNOT_CONTEST)
    row = await dispute_row(pool, dispute["id"])
    assert (row["status"], row["evidence_submitted_at"]) == ("won", None)


async def test_open_disputes_are_listed_first_whatever_the_history(pool):
    tag, now = uuid.uuid4().hex[:8], datetime.now(UTC)
    await pool.execute(
        "INSERT INTO disputes (razorpay_dispute_id, razorpay_payment_id, amount_paise, status,"
        " respond_by, razorpay_updated_at, ops_notified_at)"
        " SELECT 'disp_old' || $1 || g, 'pay_old' || $1 || g, 100,"
        "  (ARRAY['won', 'lost', 'closed'])[g % 3 + 1], $2::timestamptz - g * interval '1 hour',"
        "  $2, $2 FROM generate_series(1, $3) g", tag, now, 600)
    await pool.execute(
        "INSERT INTO disputes (razorpay_dispute_id, razorpay_payment_id, amount_paise, status,"
        " respond_by, razorpay_updated_at, ops_notified_at) VALUES ($1, $2, 100, 'open', $3,"
        " $4, $4)",
        f"disp_new{tag}", f"pay_new{tag}", now + timedelta(days=3), now)
    await pool.execute("ANALYZE disputes")

    for listed in ((await disputes.list_disputes(pool))["disputes"],
                   (await disputes.list_disputes(pool, "open"))["disputes"]):
        assert f"disp_new{tag}" in [d["dispute_id"] for d in listed]
        still_open = [d["status"] in OPEN_STATUSES for d in listed]
        assert still_open == sorted(still_open, reverse=True)  # open ones first
        deadlines = [d["respond_by"] for d in listed if d["status"] in OPEN_STATUSES]
        assert deadlines == sorted(deadlines, key=lambda r: (r is None, r))
    assert len((await disputes.list_disputes(pool, "lost"))["disputes"]) >= 200

    async with pool.acquire() as conn:  # the open ones come from their partial index
        plan = await explain(conn, disputes.LIST_DISPUTES,
                             (None, OPEN_STATUSES, disputes.LIST_LIMIT), generic=False)
    assert '"disputes_open"' in json.dumps(plan), plan


@pytest.mark.parametrize("dispute_first", [False, True])
async def test_a_dispute_on_a_second_charge_is_the_bookings_and_mailed_to_ops(
        pool, razorpay, settings, dispute_first):
    booking_id = await paid_booking(pool, razorpay, settings)
    kept = await pool.fetchrow(
        "SELECT * FROM payments WHERE booking_id = $1 AND status = 'captured'", booking_id)
    second = await control(settings, f"/sandbox/orders/{kept['razorpay_order_id']}/second-capture",
                           {"webhooks": {"enabled": False}})
    captured = {"entity": "event", "event": "payment.captured", "created_at": int(time.time()),
                "payload": {"payment": {"entity": second}}}
    if not dispute_first:
        assert await apply_webhook(pool, key(), captured, None) == "conflict"
    dispute, payment = await raise_dispute(settings, razorpay, second["id"])
    assert await deliver(pool, "payment.dispute.created", dispute, payment) == "applied"
    if dispute_first:
        assert await apply_webhook(pool, key(), captured, None) == "conflict"

    await watch_disputes(pool, "ops@example.test")

    row = await dispute_row(pool, dispute["id"])
    assert (row["booking_id"], row["payment_id"]) == (booking_id, kept["id"])
    assert row["ops_notified_at"] is not None
    assert await pool.fetchval("SELECT count(*) FROM notifications WHERE booking_id = $1"
                               " AND kind = 'dispute_opened'", booking_id) == 1
    async with pool.acquire() as conn:
        listed = await disputes.disputes_of_booking(conn, booking_id)
    assert [d["dispute_id"] for d in listed] == [dispute["id"]]


async def test_a_contest_answered_while_a_dispute_webhook_is_applied_waits_not_deadlocks(
        pool, razorpay, settings):
    """Every dispute write takes its payment's lock before the dispute's row. A webhook's
    transaction holds the payment's lock while the contest's answer is recorded: the contest
    waits for it rather than holding the dispute's row against it (a deadlock, then a 500)."""
    booking_id = await paid_booking(pool, razorpay, settings)
    payment_id = await captured_payment_id(pool, booking_id)
    dispute, payment = await raise_dispute(settings, razorpay, payment_id)
    assert await deliver(pool, "payment.dispute.created", dispute, payment) == "applied"

    async with pool.acquire() as hook:
        webhook = hook.transaction()
        await webhook.start()
        try:
            await hook.execute(LOCK_DISPUTED, payment_id)  # as apply_dispute does first
            contest = asyncio.create_task(disputes.contest_dispute(pool, razorpay,
                                                                   dispute["id"]))
            for _ in range(200):  # until the contest's transaction waits on a lock
                if contest.done() or await pool.fetchval(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname ="
                        " current_database() AND wait_event_type = 'Lock'"):
                    break
                await asyncio.sleep(0.05)
            # the webhook goes on to the dispute's row, as its _MOVE does, and commits
            await hook.execute("SELECT 1 FROM disputes WHERE razorpay_dispute_id = $1"
                               " FOR UPDATE", dispute["id"])
        finally:
            await webhook.commit()
    answer = await contest
    assert answer["dispute"]["status"] == "under_review"
    assert (await dispute_row(pool, dispute["id"]))["document_ids"]
