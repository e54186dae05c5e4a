"""`a6pay`: operations commands. Each prints one JSON object on its last stdout line."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import date, timedelta

from ops import dispute_cli, settlements_cli
from shared.db import (
    Autocommit,
    create_database_if_missing,
    create_pool,
    migrate,
    transaction,
)
from shared.money import AmountError, paise_to_rupees, rupees_to_paise
from shared.refunds import MIN_REFUND_PAISE
from shared.settings import Settings, load_settings


async def demo_booking(settings: Settings, amount_rupees: float) -> dict:
    paise = rupees_to_paise(amount_rupees)
    pool = await create_pool(settings)
    try:
        async with pool.acquire() as conn, transaction(conn):
            customer = await conn.fetchrow(
                "INSERT INTO customers (name, email, phone) VALUES"
                " ('John Doe', 'john@example.com', '+919000090000') RETURNING id, name, email"
            )
            car_id = await conn.fetchval(
                "INSERT INTO cars (name, registration) VALUES ('Maruti Swift', 'KA01AB1234')"
                " RETURNING id"
            )
            start = date.today() + timedelta(days=7)
            booking_id = await conn.fetchval(
                "INSERT INTO bookings (customer_id, car_id, amount_paise, start_date, end_date)"
                " VALUES ($1, $2, $3, $4, $5) RETURNING id",
                customer["id"], car_id, paise, start, start + timedelta(days=2),
            )
    finally:
        await pool.close()
    return {
        "booking_id": booking_id,
        "customer_id": customer["id"],
        "customer_name": customer["name"],
        "customer_email": customer["email"],
        "car": "Maruti Swift",
        "amount": paise_to_rupees(paise),
        "start_date": start.isoformat(),
        "end_date": (start + timedelta(days=2)).isoformat(),
    }


async def reconcile_now(settings: Settings) -> dict:
    from order_service.reconciler import reconcile
    from shared.razorpay_client import RazorpayClient

    pool = await create_pool(settings)
    razorpay = RazorpayClient(settings)
    try:
        return await reconcile(pool, razorpay, settings, everything=True)
    finally:
        razorpay.close()
        await pool.close()


async def booking(settings: Settings, booking_id: int) -> dict:
    from notifier.report import booking_report

    pool = await create_pool(settings)
    try:
        report = await booking_report(pool, booking_id)
        if report is not None:
            report |= await dispute_cli.after_capture(pool, booking_id)
    finally:
        await pool.close()
    return report if report is not None else {"booking_id": booking_id, "error": "not found"}


async def check_pass(settings: Settings, token: str) -> dict:
    """What a scan at the counter would answer now, recording nothing: a read-only look."""
    from order_service.pass_scans import check_pass as look

    pool = await create_pool(settings)
    try:
        return await look(pool, settings, token.strip())
    finally:
        await pool.close()


PRUNE = {
    # published events: the broker and the consumers' inboxes have them now
    "outbox": "DELETE FROM outbox WHERE published_at < now() - $1::interval",
    # a redelivery older than this is far past any broker's redelivery window
    "inbox": "DELETE FROM inbox WHERE processed_at < now() - $1::interval",
    # keep the delivery record (dedupe, audit); drop the customer's details in the payload
    "webhook_payloads": "UPDATE webhook_events SET payload = '{}'::jsonb"
                        " WHERE received_at < now() - $1::interval AND payload <> '{}'::jsonb",
}


async def prune(settings: Settings, days: int) -> dict:
    """Retention: what the system no longer needs after `days` days."""
    pool = await create_pool(settings)
    try:
        done = {}
        for name, sql in PRUNE.items():
            async with pool.acquire() as conn:
                status = await Autocommit(conn).execute(sql, timedelta(days=days))
            done[name] = int(status.split()[-1])
        return {"older_than_days": days, **done}
    finally:
        await pool.close()


# Money still owed on a failed refund's payment: what it holds beyond refunds not failed and
# chargebacks, less the fee a cancellation keeps; or, for a second charge, all it holds.
_FAILED_REFUNDS = """
SELECT r.booking_id, r.amount_paise, r.failure_reason, r.updated_at,
       CASE WHEN d.id IS NULL THEN 'refund_failed' ELSE 'second_charge_refund_failed' END AS why
FROM refunds r
JOIN payments p ON p.id = r.payment_id
JOIN bookings b ON b.id = r.booking_id
LEFT JOIN duplicate_payments d ON d.id = r.duplicate_payment_id
WHERE r.status = 'failed' AND CASE WHEN d.id IS NULL
    THEN p.amount_paise - p.refunded_paise
         - (SELECT paise FROM charged_back(p.razorpay_payment_id))
         - CASE WHEN b.status = 'cancelled' THEN COALESCE(b.cancellation_fee_paise, 0) ELSE 0 END
    ELSE d.amount_paise - d.refunded_paise
         - (SELECT paise FROM charged_back(d.razorpay_payment_id))
    END >= $1
ORDER BY r.updated_at
"""
# Cancelled bookings whose payment holds more than the fee beyond refunds and chargebacks.
_CANCELLED_NOT_REFUNDED = """
SELECT id, owed, captured_at FROM (
    SELECT b.id, p.captured_at, p.amount_paise - p.refunded_paise
           - (SELECT paise FROM charged_back(p.razorpay_payment_id))
           - COALESCE(b.cancellation_fee_paise, 0) AS owed
    FROM payments p JOIN bookings b ON b.id = p.booking_id
    WHERE p.status = 'captured' AND b.status = 'cancelled') held
WHERE owed >= $1
ORDER BY captured_at
"""


async def refunds_needed(settings: Settings) -> dict:
    """Money an operator must look at: refunds Razorpay failed (their payment still holding
    money owed since: the booking's, less a cancellation's fee, or a second charge's,
    `a6pay refund ID --second-charges`), and cancelled bookings whose captured payment still
    holds more than the fee. Chargebacks count as returned. No ids beyond the booking's
    (`a6pay booking ID` shows the rest)."""
    pool = await create_pool(settings)
    try:
        failed = await pool.fetch(_FAILED_REFUNDS, MIN_REFUND_PAISE)
        owed = await pool.fetch(_CANCELLED_NOT_REFUNDED, MIN_REFUND_PAISE)
    finally:
        await pool.close()
    return {"refunds_needed": [
        {"booking_id": r["booking_id"], "why": r["why"],
         "amount": paise_to_rupees(r["amount_paise"]), "failure_reason": r["failure_reason"],
         "at": r["updated_at"]} for r in failed
    ] + [
        {"booking_id": r["id"], "why": "cancelled_but_not_refunded",
         "amount": paise_to_rupees(r["owed"]), "captured_at": r["captured_at"]} for r in owed
    ]}


async def cancel(settings: Settings, booking_id: int, fee_rupees: float | None) -> dict:
    from order_service.cancellations import cancel_booking

    fee = rupees_to_paise(fee_rupees) if fee_rupees else 0
    return await _with_pool_and_razorpay(
        settings, lambda pool, rzp: cancel_booking(pool, rzp, booking_id, fee_paise=fee))


async def refund(settings: Settings, booking_id: int, amount_rupees: float | None,
                 second_charges: bool = False) -> dict:
    from order_service.cancellations import refund_booking
    from order_service.second_charges import refund_second_charges

    if second_charges:
        return await _with_pool_and_razorpay(
            settings, lambda pool, rzp: refund_second_charges(pool, rzp, booking_id))
    amount = rupees_to_paise(amount_rupees) if amount_rupees is not None else None
    return await _with_pool_and_razorpay(
        settings, lambda pool, rzp: refund_booking(pool, rzp, booking_id, amount_paise=amount))


async def _with_pool_and_razorpay(settings: Settings, work) -> dict:
    from shared.http import HttpError
    from shared.razorpay_client import RazorpayClient

    pool = await create_pool(settings)
    razorpay = RazorpayClient(settings)
    try:
        return await work(pool, razorpay)
    except HttpError as exc:
        return {"error": exc.message, "status": exc.status}
    finally:
        razorpay.close()
        await pool.close()


async def stuck(settings: Settings) -> dict:
    """Captured payments whose booking is still not confirmed after STUCK_AFTER_SECONDS
    (the reconciler's sweep re-emits their events and raises an alarm)."""
    from order_service.repair import list_stuck

    pool = await create_pool(settings)
    try:
        rows = await list_stuck(pool, settings)
    finally:
        await pool.close()
    for row in rows:
        row["amount"] = paise_to_rupees(row.pop("amount_paise"))
    return {"stuck_after_seconds": settings.stuck_after_seconds, "stuck": rows}


async def migrate_db(settings: Settings) -> dict:
    created = await create_database_if_missing(settings.database_url)
    return {"database_created": created, "applied": await migrate(settings.database_url)}


async def dlq(settings: Settings, action: str, limit: int | None) -> dict:
    from notifier.dlq import list_dead_letters, replay_dead_letters

    if action == "list":
        return {"dead_letters": await list_dead_letters(settings, limit=limit or 50)}
    return {"replayed": await replay_dead_letters(settings, limit=limit)}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="a6pay", description="A6 Pay operations")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo-booking", help="create a customer, a car and an unpaid booking")
    demo.add_argument("--amount", type=float, default=1500.00, help="rupees (default 1500.00)")
    sub.add_parser("migrate", help="create the database if missing and apply migrations")
    sub.add_parser("reconcile", help="one reconciliation pass over every open order, now")
    show = sub.add_parser("booking", help="a booking with its payment, passes, notifications")
    show.add_argument("booking_id", type=int)
    trim = sub.add_parser("prune", help="retention: drop what is no longer needed")
    trim.add_argument("--days", type=int, default=30)
    sub.add_parser("refunds-needed", help="failed refunds, and cancelled bookings not refunded")
    cancel_cmd = sub.add_parser("cancel", help="cancel a booking (a paid one is refunded)")
    cancel_cmd.add_argument("booking_id", type=int)
    cancel_cmd.add_argument("--fee", type=float, default=None, help="rupees kept as a fee")
    refund_cmd = sub.add_parser("refund", help="refund a booking's payment (default: all left)")
    refund_cmd.add_argument("booking_id", type=int)
    what = refund_cmd.add_mutually_exclusive_group()
    what.add_argument("--amount", type=float, default=None, help="rupees")
    what.add_argument("--second-charges", action="store_true",
                      help="what remains of its second charges, not its payment")
    sub.add_parser("stuck", help="captured payments whose booking is still not confirmed")
    check = sub.add_parser("check-pass", help="check a scanned QR pass token")
    check.add_argument("token")
    dead = sub.add_parser("dlq", help="dead-lettered events: list or replay")
    dead.add_argument("action", choices=["list", "replay"])
    dead.add_argument("--limit", type=int, default=None)
    dispute_cli.add_commands(sub)
    settlements_cli.add_commands(sub)  # recon, ledger
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = load_settings()
    if args.command in settlements_cli.COMMANDS:
        return settlements_cli.run(args, settings)
    try:
        match args.command:
            case "demo-booking":
                result = asyncio.run(demo_booking(settings, args.amount))
            case "migrate":
                result = asyncio.run(migrate_db(settings))
            case "reconcile":
                result = asyncio.run(reconcile_now(settings))
            case "booking":
                result = asyncio.run(booking(settings, args.booking_id))
            case "prune":
                result = asyncio.run(prune(settings, max(args.days, 1)))
            case "refunds-needed":
                result = asyncio.run(refunds_needed(settings))
            case "cancel":
                result = asyncio.run(cancel(settings, args.booking_id, args.fee))
            case "refund":
                result = asyncio.run(refund(settings, args.booking_id, args.amount,
                                            args.second_charges))
            case "stuck":
                result = asyncio.run(stuck(settings))
            case "check-pass":
                result = asyncio.run(check_pass(settings, args.token))
            case "dlq":
                result = asyncio.run(dlq(settings, args.action, args.limit))
            case "disputes":
                result = asyncio.run(dispute_cli.disputes(settings, args.status))
            case "dispute":
                result = asyncio.run(dispute_cli.dispute(
                    settings, args.action, args.dispute_id, _with_pool_and_razorpay))
    except AmountError as exc:
        print(json.dumps({"error": str(exc)}))
        return 2
    print(json.dumps(result, default=str))
    return 1 if "error" in result or result.get("valid") is False else 0


if __name__ == "__main__":
    sys.exit(main())
