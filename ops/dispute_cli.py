"""`a6pay disputes`, `a6pay dispute contest|accept ID`, and what `a6pay booking` adds about
the money after capture (its disputes and second captures)."""

from __future__ import annotations

from shared.db import create_pool
from shared.money import paise_to_rupees
from shared.settings import Settings


def add_commands(sub) -> None:
    """The commands, on `a6pay`'s subparsers."""
    listing = sub.add_parser("disputes", help="disputes (chargebacks), nearest respond_by first")
    listing.add_argument("--status", default=None)
    answer = sub.add_parser("dispute", help="answer a dispute: contest (our evidence) or accept")
    answer.add_argument("action", choices=["contest", "accept"])
    answer.add_argument("dispute_id")


async def disputes(settings: Settings, status: str | None) -> dict:
    from order_service.disputes import list_disputes
    from shared.http import HttpError

    pool = await create_pool(settings)
    try:
        return await list_disputes(pool, status)
    except HttpError as exc:
        return {"error": exc.message, "status": exc.status}
    finally:
        await pool.close()


async def dispute(settings: Settings, action: str, dispute_id: str, with_razorpay) -> dict:
    from order_service.disputes import accept_dispute, contest_dispute

    operation = contest_dispute if action == "contest" else accept_dispute
    return await with_razorpay(settings, lambda pool, rzp: operation(pool, rzp, dispute_id))


async def after_capture(pool, booking_id: int) -> dict:
    """The booking's disputes and second captures, for `a6pay booking`."""
    from order_service.disputes import disputes_of_booking
    from shared.duplicate_payments import duplicates_of

    async with pool.acquire() as conn:
        found = await disputes_of_booking(conn, booking_id)
        duplicates = await duplicates_of(conn, booking_id)
    return {
        "disputes": found,
        "duplicate_payments": [
            {"amount": paise_to_rupees(d["amount_paise"]),
             "refunded": paise_to_rupees(d["refunded_paise"]), "found_by": d["found_by"],
             "found_at": d["created_at"].isoformat()} for d in duplicates],
    }
