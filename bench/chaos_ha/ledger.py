"""The ledger of a run: what was sent, answered, confirmed, doubled and lost, from the
database, the sandbox and the mail catcher, never from what the services said."""

from __future__ import annotations

from collections import defaultdict

import aiohttp
import asyncpg

PER_BOOKING = """
SELECT b.id, b.status,
    (SELECT count(*) FROM payments p WHERE p.booking_id = b.id AND p.status = 'captured')
        AS captured,
    (SELECT count(*) FROM passes s WHERE s.booking_id = b.id) AS passes,
    (SELECT count(*) FROM notifications n WHERE n.booking_id = b.id
        AND n.kind = 'payment_confirmed') AS confirmations,
    (SELECT count(*) FROM notifications n WHERE n.booking_id = b.id
        AND n.kind = 'payment_confirmed' AND n.state = 'sent') AS mailed
FROM bookings b WHERE b.id = ANY($1::bigint[])"""

ONCE = {"status": "confirmed", "captured": 1, "passes": 2, "confirmations": 1, "mailed": 1}


async def booking_rows(pool: asyncpg.Pool, booking_ids: list[int]) -> dict[int, dict]:
    rows = await pool.fetch(PER_BOOKING, booking_ids)
    return {r["id"]: {k: r[k] for k in ONCE} for r in rows}


def doubled(row: dict) -> bool:
    return any(row[k] > ONCE[k] for k in ("captured", "passes", "confirmations", "mailed"))


async def caught_mails(http: aiohttp.ClientSession, catcher: str,
                       booking_ids: list[int]) -> dict[int, set[str]]:
    """Distinct confirmation mails the catcher holds per booking (it keeps the newest)."""
    # the catcher renders every mail it keeps for this call: slow with hundreds
    async with http.get(f"{catcher}/api/mails",
                        timeout=aiohttp.ClientTimeout(total=120)) as answer:
        mails = await answer.json()
    wanted = {f"#{booking_id} ": booking_id for booking_id in booking_ids}
    found: dict[int, set[str]] = defaultdict(set)
    for mail in mails:
        for tag, booking_id in wanted.items():
            if tag in mail["subject"]:
                found[booking_id].add(mail["message_id"])
    return found


async def webhook_answers(http: aiohttp.ClientSession, sandbox: str) -> tuple[int, int]:
    """(deliveries the gateway took with a 2xx, all deliveries) at the sandbox."""
    async with http.get(f"{sandbox}/sandbox/webhooks") as answer:
        items = (await answer.json())["items"]
    return sum(item["state"] == "delivered" for item in items), len(items)


async def ledger(pool, http, stack, booking_ids: list[int], sent: int) -> dict[str, int]:
    rows = await booking_rows(pool, booking_ids)
    mails = await caught_mails(http, stack.mail_catcher, booking_ids)
    answered, deliveries = await webhook_answers(http, stack.sandbox)
    return {
        "sent": sent,
        "answered": answered,
        "deliveries": deliveries,
        "confirmed": sum(row == ONCE for row in rows.values()),
        "doubled": sum(doubled(row) for row in rows.values())
        + sum(len(ids) > 1 for ids in mails.values()),
        "lost": sum(row["status"] != "confirmed" or row["mailed"] == 0
                    for row in rows.values()) + len(set(booking_ids) - set(rows)),
        "mails_caught": sum(len(ids) for ids in mails.values()),
    }


async def settled(pool, booking_ids: list[int]) -> bool:
    rows = await booking_rows(pool, booking_ids)
    return len(rows) == len(booking_ids) and all(row == ONCE for row in rows.values())
