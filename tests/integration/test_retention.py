"""`a6pay prune`: old published events, old inbox rows and old webhook payloads go; fresh
ones and unsent events stay."""

import uuid

from ops.cli import prune
from testkit.infra import own_database


async def test_prune_keeps_what_is_fresh_or_unsent(base_settings):
    async with own_database(base_settings) as (settings, pool):
        await check_prune(settings, pool)


async def check_prune(settings, pool):
    old, fresh, unsent = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    async with pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO outbox (id, routing_key, body, created_at, published_at) VALUES"
            " ($1, 'x', '{}', now() - interval '40 days', now() - interval '40 days'),"
            " ($2, 'x', '{}', now(), now()),"
            " ($3, 'x', '{}', now() - interval '40 days', NULL)", old, fresh, unsent)
        await conn.execute(
            "INSERT INTO inbox (consumer, event_id, processed_at) VALUES"
            " ('retention-test', $1, now() - interval '40 days'), ('retention-test', $2, now())",
            old, fresh)
        await conn.execute(
            "INSERT INTO webhook_events (event_key, event_type, outcome, payload, received_at)"
            " VALUES ($1, 'payment.captured', 'applied', '{\"email\": \"a@b.c\"}',"
            " now() - interval '40 days'),"
            " ($2, 'payment.captured', 'applied', '{\"email\": \"a@b.c\"}', now())",
            f"old-{old}", f"fresh-{fresh}")
        result = await prune(settings, 30)
        assert result == {"older_than_days": 30, "outbox": 1, "inbox": 1, "webhook_payloads": 1}
        ids = {r["id"] for r in await conn.fetch("SELECT id FROM outbox WHERE id = ANY($1)",
                                                [old, fresh, unsent])}
        assert ids == {fresh, unsent}
        assert {r["event_id"] for r in await conn.fetch(
            "SELECT event_id FROM inbox WHERE consumer = 'retention-test'")} == {fresh}
        payloads = dict(await conn.fetch(
            "SELECT event_key, payload FROM webhook_events WHERE event_key = ANY($1)",
            [f"old-{old}", f"fresh-{fresh}"]))
        assert payloads == {f"old-{old}": {}, f"fresh-{fresh}": {"email": "a@b.c"}}
