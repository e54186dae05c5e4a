"""Migrations: unique ordered numbers, and applying them one deploy at a time builds the
same schema as applying them all at once on an empty database."""

from __future__ import annotations

import re
import subprocess

import asyncpg

from shared.db import _migrations, create_database_if_missing, migrate
from testkit import infra


def test_numbers_are_unique_and_consecutive():
    numbers = [int(re.match(r"(\d{3})_[a-z0-9_]+\.sql$", name).group(1))
               for name, _ in _migrations()]
    assert numbers == list(range(1, len(numbers) + 1))


def _schema(url: str) -> str:
    dump = subprocess.run(["pg_dump", "--schema-only", "--no-owner", url],
                          check=True, capture_output=True, text=True, timeout=60).stdout
    # pg_dump's \restrict lines carry a random key per run.
    return "\n".join(line for line in dump.splitlines()
                     if not line.startswith(("\\restrict", "\\unrestrict")))


async def test_one_at_a_time_builds_the_same_schema_as_all_at_once():
    at_once, stepwise = (infra.database_url(infra.unique_name()) for _ in range(2))
    try:
        await create_database_if_missing(at_once)
        applied = await migrate(at_once)
        assert applied == [name for name, _ in _migrations()]

        await create_database_if_missing(stepwise)
        for name, sql in _migrations():  # each deploy's migration in a session of its own
            conn = await asyncpg.connect(stepwise)
            try:
                async with conn.transaction():
                    await conn.execute(
                        "CREATE TABLE IF NOT EXISTS schema_migrations"
                        " (name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())")
                    await conn.execute(sql)
                    await conn.execute("INSERT INTO schema_migrations (name) VALUES ($1)", name)
            finally:
                await conn.close()
        assert await migrate(stepwise) == []
        assert _schema(stepwise) == _schema(at_once)
    finally:
        await infra.drop_database(at_once)
        await infra.drop_database(stepwise)
